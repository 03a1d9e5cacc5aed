package replica

import "testing"

// TestEpochCacheEndOffsetFor checks Kafka's OffsetsForLeaderEpoch answers
// on a cache of epochs 1@0, 3@5, 4@9 for a log ending at 12.
func TestEpochCacheEndOffsetFor(t *testing.T) {
	c, err := NewEpochCache([]EpochStart{{1, 0}, {3, 5}, {4, 9}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{
		{NoEpoch, NoEpoch, -1},
		{0, 0, 0},  // below every entry: itself, the first start
		{1, 1, 5},  // ends where epoch 3 starts
		{2, 1, 5},  // not here: the largest below it, and its end
		{3, 3, 9},  // ends where epoch 4 starts
		{4, 4, 12}, // the latest ends at the log end
		{5, NoEpoch, -1},
	} {
		e, end := c.EndOffsetFor(tc.epoch, 12)
		if e != tc.wantEpoch || end != tc.wantEnd {
			t.Errorf("EndOffsetFor(%d) = (%d, %d), want (%d, %d)", tc.epoch, e, end, tc.wantEpoch, tc.wantEnd)
		}
	}
	if got := c.EpochOf(8); got != 3 {
		t.Errorf("EpochOf(8) = %d, want 3", got)
	}
}

// TestEpochCacheAssignDropsEmptyEpochs: an epoch that wrote nothing (a
// leadership with no appends, at offset 12) gives way to a batch of an
// older epoch appended at 12 by a follower, and truncation drops what
// starts at or past the cut.
func TestEpochCacheAssignDropsEmptyEpochs(t *testing.T) {
	c, _ := NewEpochCache([]EpochStart{{1, 0}, {4, 9}})
	c.Assign(6, 12)
	c.Assign(5, 12)
	if got := c.Entries(); len(got) != 3 || got[2] != (EpochStart{5, 12}) {
		t.Fatalf("after assigning 5@12 over the empty 6@12: %v", got)
	}
	c.Assign(5, 14)
	c.TruncateFromEnd(9)
	if got := c.Entries(); len(got) != 1 || got[0] != (EpochStart{1, 0}) {
		t.Fatalf("after truncating at 9: %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("assigning an older epoch after a newer one with records did not panic")
		}
	}()
	c.Assign(0, 20)
}

func TestNewEpochCacheRefusesDisorder(t *testing.T) {
	for _, entries := range [][]EpochStart{{{2, 0}, {2, 4}}, {{1, 5}, {2, 3}}, {{-2, 0}}} {
		if _, err := NewEpochCache(entries); err == nil {
			t.Errorf("NewEpochCache(%v) accepted", entries)
		}
	}
}
