package ringlog

import (
	"testing"

	"github.com/strata-db/strata/segment"
)

// TestAppendAllocatesNothing: in steady state an append, its write, its
// sync (under FlushEveryAck), its completion and a read of it from the
// frame table allocate nothing.
func TestAppendAllocatesNothing(t *testing.T) {
	r := shardRing(t)
	for _, pol := range []segment.FlushPolicy{segment.FlushNever, segment.FlushEveryAck} {
		cfg := testConfig(pol)
		cfg.SegmentBytes = 64 << 20
		snk := newSink()
		l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
		if err != nil {
			t.Fatal(err)
		}
		s := newShard(t, r, l)
		frame := makeFrame(4, 4000, 1, 1)
		i := 0
		done := func() bool { return snk.nAppends == i }
		step := func() {
			base, err := l.Append(frame, uint64(i%testMaxResults))
			if err != nil {
				t.Fatal(err)
			}
			i++
			s.until(done)
			if snk.nAppends%testMaxResults == 0 {
				clear(snk.appends)
			}
			if _, err := l.Read(base, 1<<20, -1); err != nil {
				t.Fatal(err)
			}
		}
		for range 10 {
			step()
		}
		if avg := testing.AllocsPerRun(200, step); avg != 0 {
			t.Fatalf("%v: %.2f allocations per append", pol, avg)
		}
		s.until(l.Idle)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
