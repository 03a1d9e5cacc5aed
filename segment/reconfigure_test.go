package segment

import (
	"testing"

	"github.com/strata-db/strata/schema"
)

// TestReconfigureRetentionAndSegmentSize: a log opened with large
// segments and no size retention rolls by a lowered segment size at its
// next append, and a lowered retention.bytes deletes old segments at the
// next retention pass, without reopening the log.
func TestReconfigureRetentionAndSegmentSize(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	cfg.SegmentBytes, cfg.IndexBytes = 1<<16, 1<<12
	l, err := Open("p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	frame := testFrame(1, 900, 1, 1)
	for range 4 {
		if _, err := l.Append(frame); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(l.SegmentBases()); n != 1 {
		t.Fatalf("%d segments before the change, want 1", n)
	}
	small := cfg
	small.SegmentBytes = 2 * int64(len(frame))
	if err := l.Reconfigure(small); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if _, err := l.Append(frame); err != nil {
			t.Fatal(err)
		}
	}
	// The active segment held 4 frames: the next append rolled, and the
	// six frames after the change fill segments of two.
	if n := len(l.SegmentBases()); n != 4 {
		t.Fatalf("%d segments after lowering segment size, want 4: %v", n, l.SegmentBases())
	}
	if err := l.ApplyRetention(0); err != nil {
		t.Fatal(err)
	}
	if l.LogStart() != 0 {
		t.Fatalf("retention ran with no bound: log start %d", l.LogStart())
	}
	bounded := small
	bounded.RetentionBytes = 3 * int64(len(frame))
	if err := l.Reconfigure(bounded); err != nil {
		t.Fatal(err)
	}
	if err := l.ApplyRetention(0); err != nil {
		t.Fatal(err)
	}
	if l.LogStart() == 0 {
		t.Fatal("a lowered retention.bytes deleted nothing")
	}
	bad := bounded
	bad.IndexBytes = 1 << 13
	if err := l.Reconfigure(bad); err == nil {
		t.Fatal("a change of index size was accepted")
	}
}

// TestReopenWithSmallerSegmentKeepsLargerFrames: a topic whose
// segment.bytes was lowered below frames it already holds reopens with
// every frame: recovery and reads bound a frame by what any segment may
// hold, not by today's segment size.
func TestReopenWithSmallerSegmentKeepsLargerFrames(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	cfg.SegmentBytes, cfg.IndexBytes = 1<<16, 1<<12
	l, err := Open("p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := range 3 {
		frame := testFrame(2, 8000, 1, uint64(i))
		if _, err := l.Append(frame); err != nil {
			t.Fatal(err)
		}
		want = append(want, frame...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	small := cfg
	small.SegmentBytes = 4096
	l, err = Open("p", small)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.End() != 6 {
		t.Fatalf("log end %d after reopening with smaller segments, want 6", l.End())
	}
	got := readAll(t, l, 0)
	if len(got) != len(want) {
		t.Fatalf("read %d bytes back, want %d", len(got), len(want))
	}
	// A new frame over the new size is refused; one under it goes to a
	// new segment.
	if _, err := l.Append(testFrame(1, 8000, 1, 9)); err == nil {
		t.Fatal("a frame over the lowered segment size was appended")
	}
	if _, err := l.Append(testFrame(1, 1000, 1, 9)); err != nil {
		t.Fatal(err)
	}
}

// TestReplicatedFrameOverLoweredSegmentSize: a follower copies frames the
// leader wrote before segment.bytes was lowered; a replicated frame over
// the new size goes alone into a segment of its own, while a new frame
// over it is still refused.
func TestReplicatedFrameOverLoweredSegmentSize(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	cfg.IndexBytes = 1 << 12
	l, err := Open("p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(testFrame(1, 500, 1, 1)); err != nil {
		t.Fatal(err)
	}
	big := testFrame(3, 9000, 1, 2) // over the 4096-byte segments
	schema.PatchBaseOffset(big, 1)
	if _, err := l.Append(testFrame(1, 9000, 1, 3)); err == nil {
		t.Fatal("a new frame over the segment size was appended")
	}
	if _, err := l.AppendReplicated(big); err != nil {
		t.Fatalf("replicated frame over the segment size: %v", err)
	}
	if _, err := l.Append(testFrame(1, 500, 1, 4)); err != nil {
		t.Fatal(err)
	}
	if bases := l.SegmentBases(); len(bases) != 3 || bases[1] != 1 || bases[2] != 4 {
		t.Fatalf("segments %v: want the replicated frame alone in segment 1", bases)
	}
	if got := readAll(t, l, 0); len(got) != 2*len(testFrame(1, 500, 1, 1))+len(big) {
		t.Fatalf("read back %d bytes", len(got))
	}
}
