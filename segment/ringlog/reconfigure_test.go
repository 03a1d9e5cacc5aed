package ringlog

import (
	"errors"
	"testing"

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
