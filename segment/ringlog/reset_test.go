package ringlog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-db/strata/segment"
)

// TestRingResetTo: a follower's log of several segments and epochs,
// replicated frames, is reset past its end (its leader's log start moved
// past it). The reset waits for the log to be idle; afterwards the log is
// empty at the new offset with no epochs, replicated frames continue from
// there, and a reopen finds exactly them.
func TestRingResetTo(t *testing.T) {
	r := shardRing(t)
	dir := t.TempDir()
	cfg := testConfig(segment.FlushEveryAck)
	cfg.SegmentBytes = 2 << 10 // about eight frames each
	snk := newSink()
	l, err := Open(r, dir, cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	sh := newShard(t, r, l)
	base, tok := int64(0), uint64(0)
	for i := range 30 {
		f, h := replicatedFrame(base, int32(1+i/10), 3, uint64(i))
		if _, err := l.AppendReplicated(f, h, tok); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := l.ResetTo(1000); !errors.Is(err, ErrBusy) {
				t.Fatalf("reset with a write in flight: %v", err)
			}
		}
		tok++
		base = h.NextOffset()
	}
	sh.until(func() bool { return snk.nAppends == 30 })
	sh.until(l.Idle)
	if len(l.Segments()) < 2 {
		t.Fatalf("setup: %d segments", len(l.Segments()))
	}
	to := base + 500
	if err := l.ResetTo(to); err != nil {
		t.Fatal(err)
	}
	if l.LogStart() != to || l.End() != to || len(l.Segments()) != 1 || l.Segments()[0].Base() != to {
		t.Fatalf("after reset: %d..%d in %d segments, want empty at %d", l.LogStart(), l.End(), len(l.Segments()), to)
	}
	wantRingEpochs(t, l)
	if _, err := l.Read(to-1, 100, -1); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("read below the new start: %v", err)
	}
	var want []byte
	base = to
	for i := range 5 {
		f, h := replicatedFrame(base, 7, 2, uint64(100+i))
		got, err := l.AppendReplicated(f, h, tok)
		if err != nil || got != base {
			t.Fatalf("replicated append after the reset at %d: %d, %v", base, got, err)
		}
		tok++
		base = h.NextOffset()
		want = append(want, f...)
	}
	sh.until(func() bool { return snk.nAppends == 35 })
	if got := readAll(t, l, to, 1<<20); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes after the reset, %d appended", len(got), len(want))
	}
	wantRingEpochs(t, l, segment.EpochEntry{Epoch: 7, StartOffset: to})
	sh.until(l.Idle)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := reopenedBytes(t, dir, cfg); !bytes.Equal(got, want) {
		t.Fatalf("reopened log holds %d bytes, %d were appended after the reset", len(got), len(want))
	}
}
