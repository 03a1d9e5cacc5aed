package schema

// The Go code in fb/ is generated from fbs/*.fbs by flatc (Debian's
// flatbuffers-compiler 2.0.8; the output compiles against the
// github.com/google/flatbuffers v25 runtime in go.mod) and committed, so only
// a schema change needs flatc. The folder is removed first so that a table
// dropped from a schema leaves no stale file, and the output is gofmt'd so
// that regeneration is byte-for-byte deterministic.
//
// After changing a schema, update the verifier's descriptions
// (verify_batch.go, verify_wire.go); TestDescriptionsMatchSchema fails until
// they agree.

//go:generate sh -c "rm -rf fb && flatc --go --gen-object-api --go-namespace fb -o . fbs/batch.fbs fbs/wire.fbs && gofmt -w fb"
