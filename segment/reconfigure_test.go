package segment

import "testing"

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
