package schema

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/pierrec/lz4/v4"
)

func readAll(t testing.TB, frame []byte) (FrameHeader, []Record) {
	t.Helper()
	var r BatchReader
	if err := r.Reset(frame); err != nil {
		t.Fatal(err)
	}
	var out []Record
	var v RecordView
	for i := 0; r.Next(&v); i++ {
		if v.Offset != r.Header().BaseOffset+int64(i) {
			t.Fatalf("record %d offset %d", i, v.Offset)
		}
		rec := Record{Key: v.Key, Value: v.Value, TimestampMs: v.TimestampMs}
		for j := 0; j < v.HeadersLen(); j++ {
			k, val := v.Header(j)
			rec.Headers = append(rec.Headers, RecordHeader{Key: k, Value: val})
		}
		if k, val := v.Header(v.HeadersLen()); k != nil || val != nil {
			t.Fatal("header out of range returned data")
		}
		out = append(out, rec)
	}
	if len(out) != r.Len() {
		t.Fatalf("walked %d of %d", len(out), r.Len())
	}
	return r.Header(), out
}

func sameRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if (g.Key == nil) != (w.Key == nil) || !bytes.Equal(g.Key, w.Key) ||
			(g.Value == nil) != (w.Value == nil) || !bytes.Equal(g.Value, w.Value) ||
			g.TimestampMs != w.TimestampMs || len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: got %+v want %+v", i, g, w)
		}
		for j := range w.Headers {
			gh, wh := g.Headers[j], w.Headers[j]
			if !bytes.Equal(gh.Key, wh.Key) || (gh.Value == nil) != (wh.Value == nil) || !bytes.Equal(gh.Value, wh.Value) {
				t.Fatalf("record %d header %d: got %+v want %+v", i, j, gh, wh)
			}
		}
	}
}

func TestBatchRoundTrip(t *testing.T) {
	for _, comp := range []uint16{CompressionNone, CompressionLZ4} {
		t.Run(fmt.Sprint("compression", comp), func(t *testing.T) {
			recs := sampleRecords()
			for i := 0; i < 50; i++ { // compressible filler
				recs = append(recs, Record{Key: []byte("key"), Value: bytes.Repeat([]byte("value "), 20), TimestampMs: 1001})
			}
			frame := buildFrame(t, BatchOptions{Compression: comp, ProducerID: 9, ProducerEpoch: 2, BaseSequence: 77}, recs)
			PatchBaseOffset(frame, 1000)
			PatchLeaderEpoch(frame, 4)
			h, got := readAll(t, frame)
			sameRecords(t, got, recs)
			if h.Compression() != comp || h.RecordCount != uint32(len(recs)) || h.BaseOffset != 1000 || h.LeaderEpoch != 4 ||
				h.FirstTimestampMs != 1000 || h.MaxTimestampMs != 1005 || h.ProducerID != 9 || h.ProducerEpoch != 2 || h.BaseSequence != 77 {
				t.Fatalf("header %+v", h)
			}
		})
	}
}

func TestBatchLZ4Shrinks(t *testing.T) {
	var recs []Record
	for i := 0; i < 2000; i++ {
		recs = append(recs, Record{Value: bytes.Repeat([]byte{'z'}, 100), TimestampMs: 5})
	}
	plain := buildFrame(t, BatchOptions{}, recs)
	packed := buildFrame(t, BatchOptions{Compression: CompressionLZ4}, recs)
	if len(packed)*5 > len(plain) {
		t.Fatalf("lz4 frame %d bytes vs %d plain", len(packed), len(plain))
	}
	_, got := readAll(t, packed)
	sameRecords(t, got, recs)
}

func TestBatchLZ4IncompressibleStoredPlain(t *testing.T) {
	val := make([]byte, 4096)
	x := uint64(88172645463325252)
	for i := range val { // xorshift: no repeats for lz4 to find
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		val[i] = byte(x)
	}
	frame := buildFrame(t, BatchOptions{Compression: CompressionLZ4}, []Record{{Value: val}})
	h, got := readAll(t, frame)
	if h.Compression() != CompressionNone {
		t.Fatal("incompressible body stored compressed")
	}
	sameRecords(t, got, []Record{{Value: val}})
}

// TestBatchLZ4KeepCodec: with KeepCodec an incompressible body is stored
// lz4 all the same, larger than it came, and reads back whole.
func TestBatchLZ4KeepCodec(t *testing.T) {
	val := make([]byte, 4096)
	x := uint64(88172645463325252)
	for i := range val {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		val[i] = byte(x)
	}
	frame := buildFrame(t, BatchOptions{Compression: CompressionLZ4, KeepCodec: true}, []Record{{Value: val}})
	h, got := readAll(t, frame)
	if h.Compression() != CompressionLZ4 {
		t.Fatal("KeepCodec stored an incompressible body uncompressed")
	}
	sameRecords(t, got, []Record{{Value: val}})
	plain := buildFrame(t, BatchOptions{}, []Record{{Value: val}})
	if len(frame) <= len(plain) {
		t.Fatalf("lz4 frame of an incompressible body: %d bytes, plain %d", len(frame), len(plain))
	}
}

func TestBatchBuilderReuseNoAllocs(t *testing.T) {
	for _, comp := range []uint16{CompressionNone, CompressionLZ4} {
		b, err := NewBatchBuilder(BatchOptions{Compression: comp})
		if err != nil {
			t.Fatal(err)
		}
		rec := Record{Key: []byte("key"), Value: bytes.Repeat([]byte("v"), 100),
			Headers: []RecordHeader{{Key: []byte("h"), Value: []byte("x")}}}
		var dst []byte
		var r BatchReader
		var v RecordView
		batch := func() {
			for i := 0; i < 100; i++ {
				if err := b.Append(&rec); err != nil {
					t.Fatal(err)
				}
			}
			if dst, err = b.AppendTo(dst[:0]); err != nil {
				t.Fatal(err)
			}
			if err := r.Reset(dst); err != nil {
				t.Fatal(err)
			}
			for r.Next(&v) {
				if len(v.Value) != 100 {
					t.Fatal("value")
				}
			}
		}
		batch() // warm up: buffers reach their steady size
		if allocs := testing.AllocsPerRun(20, batch); allocs != 0 {
			t.Fatalf("compression %d: %v allocations per batch of 100 records", comp, allocs)
		}
	}
}

func TestBatchLimits(t *testing.T) {
	b, _ := NewBatchBuilder(BatchOptions{BodyBytesMax: 1000})
	if _, err := b.AppendTo(nil); !errors.Is(err, ErrBatchEmpty) {
		t.Fatalf("empty: %v", err)
	}
	rec := Record{Value: make([]byte, 300)}
	n := 0
	for ; ; n++ {
		if err := b.Append(&rec); err != nil {
			if !errors.Is(err, ErrBatchTooLarge) {
				t.Fatal(err)
			}
			break
		}
	}
	if n == 0 {
		t.Fatal("no record fit")
	}
	est := b.EstimatedBytes()
	frame, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := len(frame) - FrameHeaderSize; body > est || body > 1000 {
		t.Fatalf("body %d bytes, estimate %d, limit 1000", body, est)
	}
	if _, got := readAll(t, frame); len(got) != n {
		t.Fatalf("%d records after refusal, want %d", len(got), n)
	}
	if _, err := NewBatchBuilder(BatchOptions{Compression: 7}); !errors.Is(err, ErrBatchOptions) {
		t.Fatalf("codec: %v", err)
	}
}

// lz4Frame wraps a raw lz4 body (length word and block) in a sealed frame.
func lz4Frame(z []byte, records uint32) []byte {
	h := FrameHeader{Attributes: CompressionLZ4, RecordCount: records}
	f := AppendFrameHeader(nil, &h, len(z))
	f = append(f, z...)
	SealFrame(f)
	return f
}

func TestBatchDecompressionBomb(t *testing.T) {
	// A body that declares 1 GiB from a few bytes is refused before any
	// allocation of that size.
	z := binary.LittleEndian.AppendUint32(nil, 1<<30)
	z = append(z, 0x1f, 'a', 0, 0, 0)
	var r BatchReader
	if err := r.Reset(lz4Frame(z, 1)); !errors.Is(err, ErrBodyCompression) {
		t.Fatalf("1 GiB claim: %v", err)
	}
	if cap(r.scratch) != 0 {
		t.Fatalf("allocated %d bytes for a refused body", cap(r.scratch))
	}
	// A block that expands past what it declares fails in lz4 itself.
	big := bytes.Repeat([]byte("a"), 1<<16)
	var c lz4.Compressor
	blk := make([]byte, lz4.CompressBlockBound(len(big)))
	n, err := c.CompressBlock(big, blk)
	if err != nil || n == 0 {
		t.Fatal(err)
	}
	z = binary.LittleEndian.AppendUint32(nil, 1000)
	z = append(z, blk[:n]...)
	if err := r.Reset(lz4Frame(z, 1)); !errors.Is(err, ErrBodyCompression) {
		t.Fatalf("overflowing block: %v", err)
	}
	// And one that expands to less than it declares is refused too.
	z = binary.LittleEndian.AppendUint32(nil, 1<<16+1)
	z = append(z, blk[:n]...)
	if err := r.Reset(lz4Frame(z, 1)); !errors.Is(err, ErrBodyCompression) {
		t.Fatalf("short block: %v", err)
	}
	if err := r.Reset(lz4Frame([]byte{1, 0, 0, 0, 0}, 1)); !errors.Is(err, ErrBodyCompression) {
		t.Fatalf("garbage block: %v", err)
	}
}

func TestBatchBodyDisagreesWithHeader(t *testing.T) {
	frame := buildFrame(t, BatchOptions{}, sampleRecords())
	mutate := func(f func(b []byte)) error {
		b := append([]byte{}, frame...)
		f(b)
		SealFrame(b)
		var r BatchReader
		return r.Reset(b)
	}
	// Header claims fewer records than the body holds.
	if err := mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[offRecordCount:], 2) }); !errors.Is(err, ErrBodyRecords) {
		t.Fatalf("record count: %v", err)
	}
	// Max timestamp below a record's.
	if err := mutate(func(b []byte) { binary.LittleEndian.PutUint64(b[offMaxTSMs:], 1001) }); !errors.Is(err, ErrBodyRecords) {
		t.Fatalf("max timestamp: %v", err)
	}
	// Unknown codec.
	if err := mutate(func(b []byte) { b[offAttributes] |= 3 }); !errors.Is(err, ErrBodyCompression) {
		t.Fatalf("codec: %v", err)
	}
	// A corrupted body with a valid CRC is caught by the verifier.
	if err := mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[FrameHeaderSize:], 0xfffffff0) }); !errors.Is(err, ErrBody) || !errors.Is(err, ErrVerify) {
		t.Fatalf("body: %v", err)
	}
	// Bad CRC is the frame check's.
	b := append([]byte{}, frame...)
	b[len(b)-1] ^= 1
	var r BatchReader
	if err := r.Reset(b); !errors.Is(err, ErrFrameCRC) {
		t.Fatalf("crc: %v", err)
	}
}

func TestBatchOffsetDeltasChecked(t *testing.T) {
	// Deltas out of order: built by hand with the generated builder.
	for _, deltas := range [][]uint32{{0, 0}, {1, 0}, {0, 2}} {
		body := rawBody(deltas)
		h := FrameHeader{RecordCount: 2}
		f := AppendFrameHeader(nil, &h, len(body))
		f = append(f, body...)
		SealFrame(f)
		var r BatchReader
		if err := r.Reset(f); !errors.Is(err, ErrBodyRecords) {
			t.Fatalf("deltas %v: %v", deltas, err)
		}
	}
	// A gap (as compaction leaves) is fine while under recordCount.
	body := rawBody([]uint32{0, 3})
	h := FrameHeader{RecordCount: 4}
	f := AppendFrameHeader(nil, &h, len(body))
	f = append(f, body...)
	SealFrame(f)
	var r BatchReader
	if err := r.Reset(f); err != nil {
		t.Fatal(err)
	}
	var v RecordView
	r.Next(&v)
	r.Next(&v)
	if v.Offset != 3 {
		t.Fatalf("offset %d", v.Offset)
	}
}

func TestGoldenFrame(t *testing.T) {
	h := FrameHeader{
		LeaderEpoch: 0x01020304, BaseOffset: 0x1112131415161718, Attributes: CompressionLZ4 | AttrTransactional,
		RecordCount: 3, FirstTimestampMs: 0x2122232425262728, MaxTimestampMs: 0x3132333435363738,
		ProducerID: 0x4142434445464748, ProducerEpoch: 0x5152, BaseSequence: 0x61626364,
	}
	hdr := AppendFrameHeader(nil, &h, 16)
	hdr = append(hdr, make([]byte, 16)...)
	SealFrame(hdr)
	checkGolden(t, "frame_header.hex", hdr[:FrameHeaderSize])

	frame := buildFrame(t, BatchOptions{ProducerID: -1}, sampleRecords())
	checkGolden(t, "frame_small.hex", frame)
	_, got := readAll(t, frame)
	sameRecords(t, got, sampleRecords())
}
