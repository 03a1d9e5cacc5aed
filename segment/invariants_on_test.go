//go:build invariants

package segment

import "testing"

// TestInvariantsTagRunsConsistencyCheck proves that a build with the
// invariants tag runs the whole-log check after a state change: a closed
// active segment, which the cheap checks cannot see, panics.
func TestInvariantsTagRunsConsistencyCheck(t *testing.T) {
	c, err := NewCore(Config{SegmentBytes: 1024, IndexIntervalBytes: 128, IndexBytes: 64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := c.cfg.indexEntries()
	if _, err := c.AddActiveSegment(0, make([]byte, n*offsetEntrySize), make([]byte, n*timeEntrySize), "seg0"); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishOpen(0, 0); err != nil {
		t.Fatal(err)
	}
	c.Active().closed = true
	defer func() {
		if recover() == nil {
			t.Fatal("a closed active segment passed the invariant check")
		}
	}()
	c.check()
}
