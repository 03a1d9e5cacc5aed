package ringlog

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
)

// TestRingReconfigure: on the ring, a lowered segment size refuses a new
// frame over it while a replicated one goes alone into a segment of its
// own; and leaving FlushEveryAck with appends waiting for their sync
// reports them, rather than leaving them for a sync nothing would issue.
func TestRingReconfigure(t *testing.T) {
	r := shardRing(t)
	snk := newSink()
	cfg := testConfig(segment.FlushNever)
	l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sh := newShard(t, r, l)
	f, h := replicatedFrame(0, 1, 3, 1)
	if _, err := l.AppendReplicated(f, h, 0); err != nil {
		t.Fatal(err)
	}
	sh.until(func() bool { return snk.nAppends == 1 })

	small := cfg
	small.SegmentBytes = 4096
	if err := l.Reconfigure(small); err != nil {
		t.Fatal(err)
	}
	// A frame over the new size, as a leader wrote it before the change.
	big := makeFrame(2, 6000, 0, 3)
	schema.PatchBaseOffset(big, 3)
	schema.PatchLeaderEpoch(big, 1)
	bh := mustCheck(t, big)
	fresh := makeFrame(1, 6000, 0, 4)
	if _, err := l.AppendChecked(fresh, mustCheck(t, fresh), 1); !errors.Is(err, segment.ErrFrameTooLarge) {
		t.Fatalf("a new frame over the lowered segment size: %v", err)
	}
	if _, err := l.AppendReplicated(big, bh, 2); err != nil {
		t.Fatalf("a replicated frame over the lowered segment size: %v", err)
	}
	sh.until(func() bool { return snk.nAppends == 2 })
	if r := snk.appends[2]; r.err != nil || r.base != 3 {
		t.Fatalf("replicated append: %+v", r)
	}
	if segs := l.Segments(); len(segs) != 2 || segs[1].Base() != 3 {
		t.Fatalf("%d segments: want the large frame in a segment of its own", len(segs))
	}

	// Under FlushEveryAck an append waits for its group sync; the policy
	// changes before the sync is reaped, and the append is still reported.
	if err := l.SetLeaderEpoch(1); err != nil {
		t.Fatal(err)
	}
	every := small
	every.Flush = segment.FlushEveryAck
	if err := l.Reconfigure(every); err != nil {
		t.Fatal(err)
	}
	small1 := makeFrame(1, 100, 0, 5)
	if _, err := l.AppendChecked(small1, mustCheck(t, small1), 3); err != nil {
		t.Fatal(err)
	}
	if err := l.Reconfigure(small); err != nil {
		t.Fatal(err)
	}
	sh.until(func() bool { return snk.nAppends == 3 })
	if r := snk.appends[3]; r.err != nil || r.base != 5 {
		t.Fatalf("append under the old policy: %+v", r)
	}
	bad := small
	bad.IndexBytes *= 2
	if err := l.Reconfigure(bad); err == nil {
		t.Fatal("a change of index size was accepted")
	}
}

func mustCheck(t *testing.T, f []byte) schema.FrameHeader {
	t.Helper()
	h, err := schema.CheckFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRingLeavingEveryAckReportsCommitted: under FlushEveryAck an append
// committed while a group sync is in flight waits for the next one; the
// policy then changes to FlushNever, under which no sync is owed, and the
// append must still be reported: Reconfigure owes it one. The test holds
// the first sync's completion back so that the second append commits
// behind it, whatever order the kernel completes them in.
func TestRingLeavingEveryAckReportsCommitted(t *testing.T) {
	r := shardRing(t)
	snk := newSink()
	cfg := testConfig(segment.FlushEveryAck)
	l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var held []ring.CQE // sync completions not yet handed to the log
	// run hands the log every completion but the syncs while holdSyncs,
	// until cond holds.
	run := func(what string, holdSyncs bool, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(testWaitLimit)
		batch := make([]*ring.CQE, testBatchCQEs)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; stats %+v", what, testWaitLimit, l.Stats())
			}
			if !holdSyncs {
				for _, c := range held {
					l.Complete(c)
				}
				held = held[:0]
			}
			if _, err := r.SubmitAndWaitTimeout(1, 20*time.Millisecond); err != nil && err != unix.ETIME {
				t.Fatal(err)
			}
			n := r.PeekBatchCQE(batch)
			var got []ring.CQE
			for _, c := range batch[:n] {
				got = append(got, *c)
			}
			r.CQAdvance(uint32(n))
			for _, c := range got {
				if kind, _ := l.splitTag(c.UserData); kind == kindSync && holdSyncs {
					held = append(held, c)
					continue
				}
				l.Complete(c)
			}
		}
	}
	a := makeFrame(1, 100, 0, 1)
	if _, err := l.AppendChecked(a, mustCheck(t, a), 0); err != nil {
		t.Fatal(err)
	}
	run("the first append's sync issued", true, func() bool { return l.commit == 1 && len(held) == 1 })
	b := makeFrame(1, 100, 0, 2)
	if _, err := l.AppendChecked(b, mustCheck(t, b), 1); err != nil {
		t.Fatal(err)
	}
	run("the second append committed behind the sync", true, func() bool { return l.commit == 2 })
	if snk.nAppends != 0 {
		t.Fatalf("%d appends reported before their sync", snk.nAppends)
	}
	if err := l.Reconfigure(testConfig(segment.FlushNever)); err != nil {
		t.Fatal(err)
	}
	run("both appends reported", false, func() bool { return snk.nAppends == 2 })
	for tok, base := range []int64{0, 1} {
		if got := snk.appends[tok]; got.err != nil || got.base != base {
			t.Fatalf("append %d: %+v", tok, got)
		}
	}
}
