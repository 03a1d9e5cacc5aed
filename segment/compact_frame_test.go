package segment

import (
	"testing"

	"github.com/strata-db/strata/schema"
)

// A frame that keeps one record of many keeps its offset span (record
// count), so its body is padded up to that many bytes (uncompressed), or
// stays lz4, its compressed body padded with noise when it is too short
// to declare that many records (100,000 records: a few hundred bytes of
// noise instead of 100,000 of zeros). Every result passes the frame check
// and the body verifier, and keeps the header's other fields.
func TestRewriteKeepsOffsetSpan(t *testing.T) {
	for _, c := range []struct {
		records     int
		compression uint16
		wantCodec   uint16
	}{
		{2000, schema.CompressionNone, schema.CompressionNone},
		{2000, schema.CompressionLZ4, schema.CompressionLZ4},
		{100000, schema.CompressionLZ4, schema.CompressionLZ4},
	} {
		recs := make([]kv, c.records)
		for i := range recs {
			recs[i] = kv{key: []byte{byte(i), byte(i >> 8)}, value: []byte{1}, ts: int64(100 + i)}
		}
		frame := keyedFrame(t, c.compression, recs)
		schema.PatchBaseOffset(frame, 5000)
		schema.PatchLeaderEpoch(frame, 9)
		orig, err := schema.CheckFrame(frame)
		if err != nil || orig.Compression() != c.compression {
			t.Fatalf("%d records: test frame %+v, %v", c.records, orig, err)
		}
		w := newFrameRewriter()
		keepOffset := int64(5000 + c.records/2)
		out, err := w.rewrite(frame, func(v *schema.RecordView) bool { return v.Offset == keepOffset })
		if err != nil {
			t.Fatal(err)
		}
		h, err := schema.CheckFrame(out)
		if err != nil {
			t.Fatalf("%d records, codec %d: cleaned frame: %v", c.records, c.compression, err)
		}
		want := orig
		want.Length, want.CRC = h.Length, h.CRC
		want.Attributes = orig.Attributes&^schema.AttrCompressionMask | c.wantCodec
		if h != want {
			t.Fatalf("%d records, codec %d: header %+v, want %+v", c.records, c.compression, h, want)
		}
		var rd schema.BatchReader
		if err := rd.Reset(out); err != nil {
			t.Fatal(err)
		}
		var v schema.RecordView
		if !rd.Next(&v) || v.Offset != keepOffset || v.TimestampMs != int64(100+c.records/2) ||
			string(v.Key) != string(recs[c.records/2].key) || rd.Next(&v) {
			t.Fatalf("%d records: cleaned frame holds %+v", c.records, v)
		}
		if len(out) >= len(frame) && c.compression == schema.CompressionNone {
			t.Fatalf("cleaned frame of %d bytes from %d", len(out), len(frame))
		}
		if c.compression == schema.CompressionLZ4 && len(out) > c.records/lz4ExpansionMax+lz4PadMarginBytes+4096 {
			t.Fatalf("%d records: cleaned lz4 frame of %d bytes for one record", c.records, len(out))
		}
		// Keeping everything returns the frame itself; keeping nothing,
		// nothing.
		if same, _ := w.rewrite(frame, func(*schema.RecordView) bool { return true }); &same[0] != &frame[0] {
			t.Fatal("a frame that keeps every record was copied")
		}
		if none, err := w.rewrite(frame, func(*schema.RecordView) bool { return false }); none != nil || err != nil {
			t.Fatalf("a frame that keeps nothing: %d bytes, %v", len(none), err)
		}
	}
}
