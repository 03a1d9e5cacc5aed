// Package schema holds Strata's wire and storage formats: the FlatBuffers
// schemas (.fbs) with the Go code generated from them, the record batch frame
// that travels unchanged from producer to disk to consumer, and a verifier
// that bounds every FlatBuffer before any field is read.
//
// The frame layout is described beside its constants in frame.go and byte by
// byte in docs/format.md.
package schema
