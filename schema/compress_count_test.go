package schema

import (
	"bytes"
	"testing"
)

// BodiesDecompressed counts each lz4 body a reader expands, once per
// Reset, and nothing for an uncompressed body, for a frame check, or for
// building an lz4 frame: the count the broker tests read to show that
// produce and fetch never decompress.
func TestBodiesDecompressedCounts(t *testing.T) {
	var recs []Record
	for i := 0; i < 100; i++ {
		recs = append(recs, Record{Key: []byte{byte(i)}, Value: bytes.Repeat([]byte(`{"a":1}`), 20), TimestampMs: 5})
	}
	before := BodiesDecompressed()
	packed := buildFrame(t, BatchOptions{Compression: CompressionLZ4}, recs)
	plain := buildFrame(t, BatchOptions{}, recs)
	if _, err := CheckFrame(packed); err != nil {
		t.Fatal(err)
	}
	if got := BodiesDecompressed() - before; got != 0 {
		t.Fatalf("building and checking frames decompressed %d bodies", got)
	}
	var rd BatchReader
	if err := rd.Reset(plain); err != nil {
		t.Fatal(err)
	}
	if got := BodiesDecompressed() - before; got != 0 {
		t.Fatalf("reading an uncompressed frame counted %d", got)
	}
	for i := 1; i <= 3; i++ {
		if err := rd.Reset(packed); err != nil {
			t.Fatal(err)
		}
		if got := BodiesDecompressed() - before; got != int64(i) {
			t.Fatalf("after %d reads of an lz4 frame the count moved by %d", i, got)
		}
	}
}
