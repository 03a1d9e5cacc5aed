package ringlog

import (
	"testing"

	"github.com/strata-db/strata/segment"
)

// TestGroupCommitCountsSyncs: 64 appends submitted together under
// FlushEveryAck cost at most two fdatasyncs, and none is acknowledged before
// a sync covering it completed.
func TestGroupCommitCountsSyncs(t *testing.T) {
	r := shardRing(t)
	cfg := testConfig(segment.FlushEveryAck)
	cfg.SegmentBytes = 16 << 20
	snk := newSink()
	l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	snk.check = func(token uint64, base int64, err error) {
		if err != nil || l.RecoveryPoint() <= base {
			t.Errorf("append %d at %d acknowledged (%v) with the recovery point at %d", token, base, err, l.RecoveryPoint())
		}
	}
	s := newShard(t, r, l)
	const burst = 64
	for i := 0; i < burst; i++ {
		if _, err := l.Append(makeFrame(3, 4000, 1, uint64(i)), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if snk.nAppends != 0 || l.Stats().GroupSyncs != 0 {
		t.Fatalf("reported %d appends, issued %d syncs before any write completed", snk.nAppends, l.Stats().GroupSyncs)
	}
	// The first append needed the new segment's first allocation step: the
	// writes go out once its fallocates completed.
	if l.Stats().Grows != 1 || l.Stats().Writes != 0 {
		t.Fatalf("%d growths, %d writes before the first step was allocated", l.Stats().Grows, l.Stats().Writes)
	}
	s.until(func() bool { return l.growing == 0 })
	// Let every write complete before the log sees any completion, so the
	// count below does not depend on how the kernel spreads them over time:
	// the appends are committed together and need one sync, or two when
	// the first goes out while the rest of the batch is still being read.
	if _, err := r.SubmitAndWait(burst); err != nil {
		t.Fatal(err)
	}
	s.until(func() bool { return snk.nAppends == burst })
	st := l.Stats()
	t.Logf("%d appends, %d fdatasyncs", burst, st.GroupSyncs)
	if st.GroupSyncs < 1 || st.GroupSyncs > 2 {
		t.Fatalf("%d appends together cost %d fdatasyncs, want 1 or 2", burst, st.GroupSyncs)
	}
	if l.RecoveryPoint() != l.End() || l.End() != 3*burst {
		t.Fatalf("recovery point %d, end %d", l.RecoveryPoint(), l.End())
	}
}

// TestFlushAndInterval: Flush under FlushNever syncs once and reports after;
// a Flush with nothing new reports at once; Tick syncs only when the
// interval passed.
func TestFlushAndInterval(t *testing.T) {
	r := shardRing(t)
	clock := int64(0)
	for _, pol := range []segment.FlushPolicy{segment.FlushNever, segment.FlushIntervalMs(10)} {
		cfg := testConfig(pol)
		cfg.NowMs = func() int64 { return clock }
		snk := newSink()
		l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
		if err != nil {
			t.Fatal(err)
		}
		s := newShard(t, r, l)
		for i := 0; i < 10; i++ {
			if _, err := l.Append(makeFrame(1, 100, 1, uint64(i)), uint64(i)); err != nil {
				t.Fatal(err)
			}
		}
		s.until(func() bool { return snk.nAppends == 10 })
		if l.Stats().GroupSyncs != 0 || l.RecoveryPoint() == l.End() {
			t.Fatalf("%v: appends synced without a flush: %+v, recovery point %d", pol, l.Stats(), l.RecoveryPoint())
		}
		if pol == segment.FlushNever {
			l.Flush(0)
		} else {
			l.Tick(clock + 9)
			if l.Stats().GroupSyncs != 0 {
				t.Fatalf("tick before the interval synced")
			}
			l.Tick(clock + 10)
			l.Flush(0)
		}
		if snk.nFlushes != 0 {
			t.Fatal("flush reported before its sync")
		}
		s.until(func() bool { return snk.nFlushes == 1 })
		if snk.flushes[0].err != nil || l.RecoveryPoint() != l.End() || l.Stats().GroupSyncs != 1 {
			t.Fatalf("%v: flush %v, recovery point %d of %d, %d syncs", pol, snk.flushes[0].err, l.RecoveryPoint(), l.End(), l.Stats().GroupSyncs)
		}
		l.Flush(1)
		if snk.nFlushes != 2 || snk.flushes[1].err != nil || l.Stats().GroupSyncs != 1 {
			t.Fatalf("flush of nothing new: reported %d, %+v", snk.nFlushes, l.Stats())
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFlushWaitsForWritesInFlight: a Flush issued while appends are being
// written covers them.
func TestFlushWaitsForWritesInFlight(t *testing.T) {
	r := shardRing(t)
	snk := newSink()
	l, err := Open(r, t.TempDir(), testConfig(segment.FlushNever), testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := newShard(t, r, l)
	for i := 0; i < 20; i++ {
		if _, err := l.Append(makeFrame(2, 2000, 1, uint64(i)), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	end := l.nextOffset
	l.Flush(7)
	s.until(func() bool { return snk.flushes[7].done })
	if snk.flushes[7].err != nil || l.RecoveryPoint() < end || snk.nAppends != 20 {
		t.Fatalf("flush %v: recovery point %d, want %d; %d appends reported", snk.flushes[7].err, l.RecoveryPoint(), end, snk.nAppends)
	}
	s.until(l.Idle)
}
