// Package schema holds Strata's wire and storage formats: the FlatBuffers
// schemas (.fbs) with the Go code generated from them, the record batch frame
// that travels unchanged from producer to disk to consumer, and a verifier
// that bounds every FlatBuffer before any field is read.
//
// A frame (frame.go, batch.go, batch_reader.go, record_decode.go):
//
//	+----------------------+--------------------------------------------+
//	| header, 64 bytes     | body: RecordBatchBody FlatBuffer ("SBAT"), |
//	| (layout in frame.go) | or u32 rawLen + lz4 block of it            |
//	+----------------------+--------------------------------------------+
//
// A request or response (envelope.go, fetch.go):
//
//	+--------+---------------------------+-------------------------------+
//	| u32 LE | Envelope FlatBuffer       | Fetch responses only: the     |
//	| length | ("SENV"), length counts it| frames_bytes regions, in order|
//	+--------+---------------------------+-------------------------------+
//
// Nothing from the network or disk is read through the generated accessors
// in fb/ before VerifyEnvelope or VerifyBody (verify.go) accepts it, or, for
// BatchReader, the walk specialised to batch.fbs that accepts exactly what
// VerifyBody accepts (record_decode.go); the decoders here do that for their
// callers.
//
// The layouts are described byte by byte in docs/format.md and
// docs/protocol.md and pinned by golden files in testdata/golden.
package schema
