package ringlog

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
)

// appendRandom appends n frames of random sizes with up to inFlight
// outstanding, driving the shard loop, and returns the frames' bytes (as
// patched) in offset order.
func appendRandom(t *testing.T, s *shard, snk *sink, rng *rand.Rand, n, inFlight int, tick func()) []byte {
	t.Helper()
	l := s.l
	var want []byte
	frames := make([][]byte, n)
	bases := make([]int64, n)
	first := snk.nAppends
	for i := 0; i < n; i++ {
		tok := first + i
		frames[i] = makeFrame(uint32(1+rng.IntN(5)), 1+rng.IntN(6000), int64(i), rng.Uint64())
		base, err := l.Append(frames[i], uint64(tok))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		bases[i] = base
		if i > 0 {
			h, _ := schema.ParseFrameHeader(frames[i-1])
			if base != h.NextOffset() {
				t.Fatalf("append %d got base %d, previous frame ends at %d", i, base, h.NextOffset())
			}
		}
		if tick != nil {
			tick()
		}
		if i-(snk.nAppends-first) >= inFlight-1 {
			target := i - inFlight/2
			s.until(func() bool { return snk.nAppends-first > target })
		}
	}
	s.until(func() bool { return snk.nAppends-first == n })
	for i := range frames {
		r := snk.appends[first+i]
		if r.err != nil || r.base != bases[i] {
			t.Fatalf("append %d reported base %d err %v, returned %d", i, r.base, r.err, bases[i])
		}
		h, err := schema.CheckFrame(frames[i])
		if err != nil || h.BaseOffset != bases[i] {
			t.Fatalf("frame %d patched base %d (%v), want %d", i, h.BaseOffset, err, bases[i])
		}
		want = append(want, frames[i]...)
	}
	return want
}

func TestAppendReadReopen(t *testing.T) {
	for _, pol := range []segment.FlushPolicy{segment.FlushEveryAck, segment.FlushNever, segment.FlushIntervalMs(5)} {
		for _, reverse := range []bool{false, true} {
			name := pol.String()
			if reverse {
				name += "/reversed-completions"
			}
			t.Run(name, func(t *testing.T) { testAppendReadReopen(t, pol, reverse) })
		}
	}
}

func testAppendReadReopen(t *testing.T, pol segment.FlushPolicy, reverse bool) {
	r := shardRing(t)
	dir := t.TempDir()
	cfg := testConfig(pol)
	clock := int64(1000)
	cfg.NowMs = func() int64 { return clock }
	snk := newSink()
	l, err := Open(r, dir, cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	s.reverse = reverse
	if pol == segment.FlushEveryAck {
		snk.check = func(token uint64, base int64, err error) {
			if err == nil && l.RecoveryPoint() <= base {
				t.Errorf("append %d at %d acknowledged with the recovery point at %d", token, base, l.RecoveryPoint())
			}
		}
	}
	var tick func()
	if _, ok := pol.IntervalMs(); ok {
		tick = func() { clock++; l.Tick(clock) }
	}
	rng := rand.New(rand.NewPCG(1, uint64(len(pol.String()))))
	want := appendRandom(t, s, snk, rng, 300, 32, tick)
	if len(l.Segments()) < 4 {
		t.Fatalf("%d segments: expected several rolls", len(l.Segments()))
	}
	st := l.Stats()
	if st.Rolls != int64(len(l.Segments())-1) {
		t.Fatalf("%d rolls for %d segments", st.Rolls, len(l.Segments()))
	}
	if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(want))
	}
	if st := l.Stats(); st.ColdReads != 0 || st.HotReads == 0 {
		t.Fatalf("reads of frames appended by this process: %+v", st)
	}
	switch pol {
	case segment.FlushEveryAck:
		if l.RecoveryPoint() != l.End() {
			t.Fatalf("every append acknowledged, recovery point %d, end %d", l.RecoveryPoint(), l.End())
		}
	case segment.FlushNever:
		if st.GroupSyncs != 0 {
			t.Fatalf("%d group syncs under FlushNever", st.GroupSyncs)
		}
	default:
		if st.GroupSyncs == 0 {
			t.Fatalf("no interval sync over %d ticks", 300)
		}
	}
	t.Logf("stats %+v, %d segments", l.Stats(), len(l.Segments()))
	s.until(l.Idle) // the last roll's syncs
	end := l.End()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The synchronous driver finds the same log.
	sl, err := segment.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sl.End() != end {
		t.Fatalf("segment.Open: end %d, want %d", sl.End(), end)
	}
	spans, err := sl.Read(0, 1<<30, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sl.ReadSpans(nil, spans)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("segment.Open read back %d bytes (%v), want %d", len(got), err, len(want))
	}
	if err := sl.Close(); err != nil {
		t.Fatal(err)
	}

	// So does the ring driver: cold reads first, then appends go on.
	l, err = Open(r, dir, cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s.l = l
	if l.End() != end {
		t.Fatalf("ringlog.Open: end %d, want %d", l.End(), end)
	}
	if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, want) {
		t.Fatalf("after reopen read back %d bytes, want %d", len(got), len(want))
	}
	if l.Stats().ColdReads == 0 {
		t.Fatal("reads after reopen did not take the cold path")
	}
	more := appendRandom(t, s, snk, rng, 50, 8, tick)
	want = append(want, more...)
	if got := readAll(t, l, 0, 7000); !bytes.Equal(got, want) {
		t.Fatalf("after more appends read back %d bytes, want %d", len(got), len(want))
	}
	s.until(l.Idle)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
