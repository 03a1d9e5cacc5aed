package ringlog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-db/strata/segment"
)

// TestReadBounds: spans hold whole frames only, at least one, never past
// maxBytes (after the first frame) or the upper offset.
func TestReadBounds(t *testing.T) {
	r := shardRing(t)
	cfg := testConfig(segment.FlushNever)
	cfg.SegmentBytes = 1 << 20
	snk := newSink()
	l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := newShard(t, r, l)
	// Ten frames of 4 records and 1,000 bytes: offsets 4i..4i+3.
	var frames [][]byte
	for i := 0; i < 10; i++ {
		f := makeFrame(4, 1000-64, int64(i), uint64(i))
		frames = append(frames, f)
		if _, err := l.Append(f, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.until(func() bool { return snk.nAppends == 10 })
	cat := func(from, to int) []byte { return bytes.Join(frames[from:to], nil) }
	cases := []struct {
		name            string
		offset          int64
		maxBytes        int
		upper           int64
		fromFrame, upTo int
	}{
		{"maxBytes below one frame gives that frame", 5, 1, -1, 1, 2},
		{"maxBytes zero still gives one frame", 0, 0, -1, 0, 1},
		{"offset inside a frame starts at its frame", 6, 2000, -1, 1, 3},
		{"maxBytes between frames", 0, 2500, -1, 0, 2},
		{"maxBytes on a frame boundary", 0, 3000, -1, 0, 3},
		{"upper cuts before the frame that crosses it", 0, 1 << 20, 18, 0, 4},
		{"upper on a frame boundary", 0, 1 << 20, 20, 0, 5},
		{"upper inside the first frame gives nothing", 0, 1 << 20, 3, 0, 0},
		{"upper at the offset gives nothing", 8, 1 << 20, 8, 0, 0},
		{"the end gives nothing", 40, 1 << 20, -1, 0, 0},
		{"everything", 0, 1 << 20, -1, 0, 10},
	}
	for _, c := range cases {
		spans, err := l.Read(c.offset, c.maxBytes, c.upper)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := preadSpans(t, l, nil, spans)
		if want := cat(c.fromFrame, c.upTo); !bytes.Equal(got, want) {
			t.Fatalf("%s: read %d bytes, want frames [%d, %d) (%d bytes)", c.name, len(got), c.fromFrame, c.upTo, len(want))
		}
		for _, sp := range spans {
			if c.upper >= 0 && sp.NextOffset > c.upper {
				t.Fatalf("%s: span ends at %d past upper %d", c.name, sp.NextOffset, c.upper)
			}
		}
	}
	if _, err := l.Read(41, 100, -1); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("read past the end: %v", err)
	}
}

// TestReadColdPath: frames older than the table are read through the
// synchronous path, with the same bounds.
func TestReadColdPath(t *testing.T) {
	r := shardRing(t)
	cfg := testConfig(segment.FlushNever)
	cfg.SegmentBytes = 1 << 20
	snk := newSink()
	l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := newShard(t, r, l)
	const n = hotFramesMax + 100
	var frames [][]byte
	for i := 0; i < n; i++ {
		f := makeFrame(1, 100, int64(i), uint64(i))
		frames = append(frames, f)
		if _, err := l.Append(f, uint64(i)); err != nil {
			t.Fatal(err)
		}
		if i%64 == 63 {
			s.until(func() bool { return snk.nAppends == i+1 })
		}
	}
	s.until(func() bool { return snk.nAppends == n })
	spans, err := l.Read(10, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := preadSpans(t, l, nil, spans); !bytes.Equal(got, frames[10]) {
		t.Fatalf("cold read of offset 10: %d bytes", len(got))
	}
	spans, err = l.Read(50, 1<<20, 60)
	if err != nil {
		t.Fatal(err)
	}
	if got := preadSpans(t, l, nil, spans); !bytes.Equal(got, bytes.Join(frames[50:60], nil)) {
		t.Fatalf("cold read of [50, 60): %d bytes", len(got))
	}
	if st := l.Stats(); st.ColdReads != 2 || st.HotReads != 0 {
		t.Fatalf("stats after two reads of old frames: %+v", st)
	}
	spans, err = l.Read(n-5, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := preadSpans(t, l, nil, spans); !bytes.Equal(got, bytes.Join(frames[n-5:], nil)) {
		t.Fatalf("hot read of the last frames: %d bytes", len(got))
	}
	if l.Stats().HotReads != 1 {
		t.Fatalf("recent frames not read from the table: %+v", l.Stats())
	}
}

// TestTruncateAndRetention: trims go through the synchronous driver, need
// the log idle, and leave the table consistent.
func TestTruncateAndRetention(t *testing.T) {
	r := shardRing(t)
	cfg := testConfig(segment.FlushNever)
	cfg.SegmentBytes = 8 << 10
	cfg.RetentionMs = 1000 // frames carry timestamps of a few ms
	snk := newSink()
	l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	var frames [][]byte
	for i := 0; i < 40; i++ {
		f := makeFrame(1, 1000, int64(i), uint64(i))
		frames = append(frames, f)
		if _, err := l.Append(f, uint64(i)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := l.Truncate(0); !errors.Is(err, ErrBusy) {
				t.Fatalf("truncate with a write in flight: %v", err)
			}
		}
	}
	s.until(func() bool { return snk.nAppends == 40 })
	s.until(l.Idle)
	if err := l.Truncate(25); err != nil {
		t.Fatal(err)
	}
	if l.End() != 25 {
		t.Fatalf("end %d after truncating at 25", l.End())
	}
	if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, bytes.Join(frames[:25], nil)) {
		t.Fatalf("after truncate read %d bytes", len(got))
	}
	f := makeFrame(1, 1000, 99, 99)
	if base, err := l.Append(f, 40); err != nil || base != 25 {
		t.Fatalf("append after truncate: %d, %v", base, err)
	}
	s.until(func() bool { return snk.nAppends == 41 })
	frames = append(frames[:25], f)
	if err := l.DeleteRecordsBefore(12); err != nil {
		t.Fatal(err)
	}
	if l.LogStart() != 12 || l.Segments()[0].Base() > 12 {
		t.Fatalf("log start %d, first segment %d", l.LogStart(), l.Segments()[0].Base())
	}
	if _, err := l.Read(11, 100, -1); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("read below the log start: %v", err)
	}
	if got := readAll(t, l, 12, 1<<20); !bytes.Equal(got, bytes.Join(frames[12:], nil)) {
		t.Fatalf("after delete read %d bytes", len(got))
	}
	if err := l.ApplyRetention(1 << 40); err != nil {
		t.Fatal(err)
	}
	if len(l.Segments()) != 1 || l.LogStart() != l.Segments()[0].Base() {
		t.Fatalf("after retention: %d segments, log start %d", len(l.Segments()), l.LogStart())
	}
	if got := readAll(t, l, l.LogStart(), 1<<20); !bytes.Equal(got, bytes.Join(frames[l.LogStart():], nil)) {
		t.Fatalf("after retention read %d bytes", len(got))
	}
	s.until(l.Idle)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
