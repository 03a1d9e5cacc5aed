package segment

import (
	"bytes"
	"testing"
)

// TestReadSkipsHeadersByIndex: a read over many small frames reads headers
// only around its ends, not one per frame, and still returns the frames
// wanted, whole, within the byte budget and the upper bound.
func TestReadSkipsHeadersByIndex(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 1 << 20
	cfg.IndexBytes = 64 << 10
	cfg.IndexIntervalBytes = 4096
	l, err := Open("/skip", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var frames [][]byte
	for i := range 1000 {
		f := testFrame(2, 200+i%50, int64(i), uint64(i))
		if _, err := l.Append(f); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	for _, tc := range []struct{ offset, maxBytes, upper int64 }{
		{0, 1 << 20, -1}, {501, 64 << 10, -1}, {10, 1 << 20, 777}, {1998, 1 << 20, -1}, {0, 300, -1},
	} {
		before := fs.Reads
		spans, err := l.Read(tc.offset, tc.maxBytes, tc.upper)
		if err != nil {
			t.Fatal(err)
		}
		reads := fs.Reads - before
		got, err := l.ReadSpans(nil, spans) // checks every frame's CRC and offsets
		if err != nil {
			t.Fatal(err)
		}
		first := int(tc.offset / 2)
		want := []byte{}
		for i := first; i < len(frames); i++ {
			next := int64(i+1) * 2
			if (tc.upper >= 0 && next > tc.upper) || (len(want) > 0 && int64(len(want)+len(frames[i])) > tc.maxBytes) {
				break
			}
			want = append(want, frames[i]...)
		}
		// The index ends runs at entries, so a read may stop short of the
		// budget; what it returns must be a prefix of the frames wanted.
		if len(got) == 0 || !bytes.HasPrefix(want, got) {
			t.Fatalf("read %+v: %d bytes, not a prefix of the %d wanted", tc, len(got), len(want))
		}
		if tc.maxBytes >= 64<<10 && len(got) < len(want)-8192 {
			t.Fatalf("read %+v: %d bytes of %d wanted", tc, len(got), len(want))
		}
		// Headers are read only to find the first frame and to fill what
		// is left after the last index entry: at most about two index
		// intervals' worth of frames, however long the read.
		const framesPerInterval = 4096 / 200
		if reads > 2*framesPerInterval+4 {
			t.Fatalf("read %+v took %d header reads for %d bytes", tc, reads, len(got))
		}
	}
}
