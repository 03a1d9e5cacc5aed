package segment

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/strata-db/strata/schema"
)

// testFrame builds a sealed frame with records records, a body of bodyLen
// bytes derived from seed, and the given max timestamp.
func testFrame(records uint32, bodyLen int, maxTs int64, seed uint64) []byte {
	if bodyLen < int(records) {
		bodyLen = int(records)
	}
	h := schema.FrameHeader{RecordCount: records, FirstTimestampMs: maxTs, MaxTimestampMs: maxTs}
	b := schema.AppendFrameHeader(nil, &h, bodyLen)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := 0; i < bodyLen; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b = append(b, byte(x))
	}
	schema.SealFrame(b)
	return b
}

func memConfig(fs FS) Config {
	return Config{
		FS:                 fs,
		SegmentBytes:       4096,
		IndexIntervalBytes: 256,
		IndexBytes:         64,
		SegmentMs:          Unlimited,
		RetentionMs:        Unlimited,
		RetentionBytes:     Unlimited,
		NowMs:              func() int64 { return 0 },
	}
}

// tb is what both *testing.T and *rapid.T provide.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// readAll reads every frame from offset to the end and returns their bytes.
func readAll(t tb, l *Log, offset int64) []byte {
	t.Helper()
	var out []byte
	for offset < l.End() {
		spans, err := l.Read(offset, 1<<20, -1)
		if err != nil {
			t.Fatalf("read at %d: %v", offset, err)
		}
		if len(spans) == 0 {
			t.Fatalf("no spans at %d, end %d", offset, l.End())
		}
		out, err = l.ReadSpans(out, spans)
		if err != nil {
			t.Fatalf("read spans at %d: %v", offset, err)
		}
		offset = spans[len(spans)-1].NextOffset
	}
	return out
}

// splitFrames splits concatenated frames.
func splitFrames(t tb, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		n := int(binary.LittleEndian.Uint32(b))
		if n < schema.FrameHeaderSize || n > len(b) {
			t.Fatalf("bad frame length %d of %d", n, len(b))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func TestAppendReadReopen(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	l, err := Open("/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := 0; i < 50; i++ {
		f := testFrame(uint32(1+i%3), 100+i*7, int64(i), uint64(i))
		base, err := l.Append(f)
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := schema.ParseFrameHeader(f); h.BaseOffset != base {
			t.Fatalf("patched base %d, returned %d", h.BaseOffset, base)
		}
		want = append(want, f...)
	}
	if len(l.SegmentBases()) < 3 {
		t.Fatalf("expected rolls, segments %v", l.SegmentBases())
	}
	if got := readAll(t, l, 0); !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(want))
	}
	end := l.End()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open("/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.End() != end {
		t.Fatalf("end %d after reopen, want %d", l.End(), end)
	}
	if got := readAll(t, l, 0); !bytes.Equal(got, want) {
		t.Fatalf("after reopen read back %d bytes, want %d", len(got), len(want))
	}
	if st := l.Stats(); st.FramesChecked > 5 {
		t.Fatalf("clean reopen walked %d frames", st.FramesChecked)
	}
}
