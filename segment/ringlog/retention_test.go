package ringlog

import (
	"errors"
	"testing"

	"github.com/strata-db/strata/segment"
)

// TestRetentionRefusedOnlyDuringARollSync: while a roll's fdatasyncs are
// in flight (they name the rolled segment's descriptors) ApplyRetention
// and DeleteRecordsBefore refuse with ErrBusy; while only a group sync of
// the active segment is in flight, which neither can delete, retention
// runs, and the appends that sync covers are still acknowledged.
func TestRetentionRefusedOnlyDuringARollSync(t *testing.T) {
	r := shardRing(t)
	cfg := testConfig(segment.FlushEveryAck)
	cfg.SegmentBytes = 8 << 10
	cfg.RetentionBytes = 8 << 10
	snk := newSink()
	l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	next := uint64(0)
	appendOne := func() {
		t.Helper()
		if _, err := l.Append(makeFrame(1, 1000, int64(next), next), next); err != nil {
			t.Fatal(err)
		}
		next++
	}
	// Fill segments until a roll's syncs are in flight.
	for !l.rollSyncInFlight() {
		appendOne()
		s.until(func() bool { return l.rollSyncInFlight() || snk.nAppends == int(next) })
	}
	if err := l.ApplyRetention(0); !errors.Is(err, ErrBusy) {
		t.Fatalf("retention with a roll sync in flight: %v", err)
	}
	if err := l.DeleteRecordsBefore(1); !errors.Is(err, ErrBusy) {
		t.Fatalf("deletion with a roll sync in flight: %v", err)
	}
	s.until(func() bool { return snk.nAppends == int(next) && l.Idle() })
	// Two more segments, then one append whose group sync is in flight.
	for len(l.Segments()) < 4 {
		appendOne()
		s.until(func() bool { return snk.nAppends == int(next) && l.Idle() })
	}
	appendOne()
	s.until(func() bool { return l.groupInFlight && !l.rollSyncInFlight() })
	before := l.LogStart()
	if err := l.ApplyRetention(0); err != nil {
		t.Fatalf("retention with a group sync in flight: %v", err)
	}
	if l.LogStart() <= before || len(l.Segments()) > 2 {
		t.Fatalf("retention moved the log start from %d to %d, %d segments left", before, l.LogStart(), len(l.Segments()))
	}
	s.until(func() bool { return snk.nAppends == int(next) && l.Idle() })
	for i := uint64(0); i < next; i++ {
		if a := snk.appends[i]; a.err != nil {
			t.Fatalf("append %d: %v", i, a.err)
		}
	}
	if l.RecoveryPoint() != l.End() {
		t.Fatalf("recovery point %d, end %d after the group sync", l.RecoveryPoint(), l.End())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
