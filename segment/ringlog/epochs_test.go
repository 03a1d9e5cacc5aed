package ringlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
)

// epochFileName is the epoch file in a partition folder (segment/doc.go).
const epochFileName = "leader-epoch.checkpoint"

// replicatedFrame is a frame as a leader sent it: base offset and epoch set.
func replicatedFrame(base int64, epoch int32, records uint32, seed uint64) ([]byte, schema.FrameHeader) {
	f := makeFrame(records, 200, 0, seed)
	schema.PatchBaseOffset(f, base)
	schema.PatchLeaderEpoch(f, epoch)
	h, err := schema.CheckFrame(f)
	if err != nil {
		panic(err)
	}
	return f, h
}

func wantRingEpochs(t *testing.T, l *Log, want ...segment.EpochEntry) {
	t.Helper()
	if got := l.Epochs(); !slices.Equal(got, want) {
		t.Fatalf("epochs %v, want %v", got, want)
	}
}

func TestRingLeaderAppendsStampEpoch(t *testing.T) {
	r := shardRing(t)
	dir := t.TempDir()
	snk := newSink()
	l, err := Open(r, dir, testConfig(segment.FlushEveryAck), testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	sh := newShard(t, r, l)
	var want []byte
	tok := uint64(0)
	for i, epoch := range []int32{3, 3, 3, 7, 7, 9} {
		if epoch != l.LeaderEpoch() {
			if err := l.SetLeaderEpoch(epoch); err != nil {
				t.Fatal(err)
			}
		}
		f := makeFrame(2, 300, int64(i), uint64(i))
		// Several in flight: the epoch's entry is there at acceptance.
		if _, err := l.Append(f, tok); err != nil {
			t.Fatal(err)
		}
		tok++
		want = append(want, f...)
	}
	wantRingEpochs(t, l, segment.EpochEntry{Epoch: 3, StartOffset: 0}, segment.EpochEntry{Epoch: 7, StartOffset: 6}, segment.EpochEntry{Epoch: 9, StartOffset: 10})
	if err := l.SetLeaderEpoch(8); !errors.Is(err, segment.ErrEpochRegress) {
		t.Fatalf("epoch 8 after 9: %v", err)
	}
	sh.until(func() bool { return snk.nAppends == int(tok) })
	for i := range tok {
		if snk.appends[i].err != nil {
			t.Fatal(snk.appends[i].err)
		}
	}
	got := readAll(t, l, 0, 1<<20)
	if !bytes.Equal(got, want) {
		t.Fatal("frames read back differ")
	}
	for i, b := 0, got; len(b) > 0; i++ {
		h, _ := schema.CheckFrame(b)
		if w := []int32{3, 3, 3, 7, 7, 9}[i]; h.LeaderEpoch != w {
			t.Fatalf("frame %d has epoch %d, want %d", i, h.LeaderEpoch, w)
		}
		b = b[h.Length:]
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	sl, err := segment.Open(dir, testConfig(segment.FlushEveryAck))
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	if err := sl.CheckEpochs(); err != nil {
		t.Fatal(err)
	}
	if sl.LeaderEpoch() != 9 {
		t.Fatalf("reopened leader epoch %d", sl.LeaderEpoch())
	}
}

func TestRingAppendReplicated(t *testing.T) {
	r := shardRing(t)
	dir := t.TempDir()
	snk := newSink()
	l, err := Open(r, dir, testConfig(segment.FlushNever), testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sh := newShard(t, r, l)
	// Pipelined: each frame at the end of the previous one, in flight.
	base, tok := int64(0), uint64(0)
	var want []byte
	for i, epoch := range []int32{1, 1, 4, 4, 4, 6} {
		f, h := replicatedFrame(base, epoch, 3, uint64(i))
		got, err := l.AppendReplicated(f, h, tok)
		if err != nil || got != base {
			t.Fatalf("replicated append %d at %d: %d, %v", i, base, got, err)
		}
		tok++
		base = h.NextOffset()
		want = append(want, f...)
	}
	wantRingEpochs(t, l, segment.EpochEntry{Epoch: 1, StartOffset: 0}, segment.EpochEntry{Epoch: 4, StartOffset: 6}, segment.EpochEntry{Epoch: 6, StartOffset: 15})
	before, err := os.ReadFile(filepath.Join(dir, epochFileName))
	if err != nil {
		t.Fatal(err)
	}
	stats := l.Stats()
	for _, c := range []struct {
		base  int64
		epoch int32
		err   error
	}{
		{base - 3, 6, segment.ErrOffsetMismatch}, // the log has it (in flight)
		{base + 1, 6, segment.ErrOffsetMismatch}, // a gap
		{base, 5, segment.ErrEpochRegress},
		{base, -1, segment.ErrEpochRegress},
	} {
		f, h := replicatedFrame(c.base, c.epoch, 1, 99)
		if _, err := l.AppendReplicated(f, h, tok); !errors.Is(err, c.err) {
			t.Fatalf("frame at %d epoch %d: %v, want %v", c.base, c.epoch, err, c.err)
		}
		after, _ := os.ReadFile(filepath.Join(dir, epochFileName))
		if l.Err() != nil || l.Stats() != stats || !bytes.Equal(after, before) {
			t.Fatalf("refused frame changed the log: %v, %+v", l.Err(), l.Stats())
		}
	}
	wantRingEpochs(t, l, segment.EpochEntry{Epoch: 1, StartOffset: 0}, segment.EpochEntry{Epoch: 4, StartOffset: 6}, segment.EpochEntry{Epoch: 6, StartOffset: 15})
	// A leader append under an older epoch than the replicated frames is
	// refused; after SetLeaderEpoch it is stamped.
	if _, err := l.Append(makeFrame(1, 10, 0, 5), tok); !errors.Is(err, segment.ErrEpochRegress) {
		t.Fatalf("leader append under epoch %d after epoch 6: %v", l.LeaderEpoch(), err)
	}
	if err := l.SetLeaderEpoch(7); err != nil {
		t.Fatal(err)
	}
	f := makeFrame(1, 10, 0, 5)
	if _, err := l.Append(f, tok); err != nil {
		t.Fatal(err)
	}
	tok++
	want = append(want, f...)
	wantRingEpochs(t, l, segment.EpochEntry{Epoch: 1, StartOffset: 0}, segment.EpochEntry{Epoch: 4, StartOffset: 6}, segment.EpochEntry{Epoch: 6, StartOffset: 15}, segment.EpochEntry{Epoch: 7, StartOffset: 18})
	sh.until(l.Idle)
	if snk.nAppends != int(tok) {
		t.Fatalf("%d appends reported, %d accepted", snk.nAppends, tok)
	}
	if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, want) {
		t.Fatal("replicated frames not stored as sent")
	}
	// A follower truncating to the leader's epoch end.
	if err := l.Truncate(9); err != nil {
		t.Fatal(err)
	}
	wantRingEpochs(t, l, segment.EpochEntry{Epoch: 1, StartOffset: 0}, segment.EpochEntry{Epoch: 4, StartOffset: 6})
	f, h := replicatedFrame(9, 5, 1, 100)
	if _, err := l.AppendReplicated(f, h, tok); err != nil {
		t.Fatal(err)
	}
	wantRingEpochs(t, l, segment.EpochEntry{Epoch: 1, StartOffset: 0}, segment.EpochEntry{Epoch: 4, StartOffset: 6}, segment.EpochEntry{Epoch: 5, StartOffset: 9})
	sh.until(l.Idle)
}

// A failure writing the epoch file takes the log offline: the append that
// needed it is refused, appends in flight before it fail, nothing is
// acknowledged afterwards.
func TestRingEpochFileFailureIsFailStop(t *testing.T) {
	for _, kind := range []faultKind{faultCreate, faultWrite, faultSync, faultRename, faultDirSync} {
		t.Run(kind.String(), func(t *testing.T) {
			r := shardRing(t)
			dir := t.TempDir()
			snk := newSink()
			fs := newCrashFS(faultNone, 1)
			cfg := testConfig(segment.FlushEveryAck)
			cfg.FS = fs
			l, err := Open(r, dir, cfg, testPrefix, snk)
			if err != nil {
				t.Fatal(err)
			}
			l.faults = fs
			sh := newShard(t, r, l)
			if _, err := l.Append(makeFrame(1, 100, 0, 1), 0); err != nil {
				t.Fatal(err)
			}
			sh.until(l.Idle)
			if _, err := l.Append(makeFrame(1, 100, 0, 2), 1); err != nil { // in flight
				t.Fatal(err)
			}
			if err := l.SetLeaderEpoch(2); err != nil {
				t.Fatal(err)
			}
			fs.mu.Lock()
			fs.kind, fs.left = kind, 0
			fs.mu.Unlock()
			_, err = l.Append(makeFrame(1, 100, 0, 3), 2)
			if !errors.Is(err, ErrFailed) || !errors.Is(err, segment.ErrStorageFailed) || !fs.hasFired() {
				t.Fatalf("append of a new epoch with its file failing: %v (fired %v)", err, fs.hasFired())
			}
			sh.until(l.Idle)
			if !snk.appends[0].done || snk.appends[0].err != nil {
				t.Fatalf("first append: %+v", snk.appends[0])
			}
			if !snk.appends[1].done || snk.appends[1].err == nil || snk.appends[2].done {
				t.Fatalf("in-flight append %+v, refused append %+v", snk.appends[1], snk.appends[2])
			}
			wantRingEpochs(t, l, segment.EpochEntry{Epoch: 0, StartOffset: 0})
			if _, err := l.Append(makeFrame(1, 100, 0, 4), 3); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after the failure: %v", err)
			}
			if err := l.Close(); !errors.Is(err, ErrFailed) {
				t.Fatalf("close: %v", err)
			}
			if err := fs.crash(dir); err != nil {
				t.Fatal(err)
			}
			sl, err := segment.Open(dir, testConfig(segment.FlushEveryAck))
			if err != nil {
				t.Fatal(err)
			}
			defer sl.Close()
			if sl.End() < 1 || !slices.Equal(sl.Epochs(), []segment.EpochEntry{{Epoch: 0, StartOffset: 0}}) {
				t.Fatalf("after the crash: end %d, epochs %v", sl.End(), sl.Epochs())
			}
			if err := sl.CheckEpochs(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A follower's fetch answer: the frames whose base offsets lie in
// [windowStart, limit), up to a byte bound at a frame boundary, and the
// end offset of the last frame included, from Read's spans alone.
func TestRingReadForFollowerFetch(t *testing.T) {
	r := shardRing(t)
	snk := newSink()
	cfg := testConfig(segment.FlushNever)
	cfg.SegmentBytes = 4096
	l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sh := newShard(t, r, l)
	var bases []int64
	var sizes []int64
	for i := range 40 {
		f := makeFrame(uint32(1+i%3), 100+7*i, 0, uint64(i))
		base, err := l.Append(f, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		bases, sizes = append(bases, base), append(sizes, int64(len(f)))
		sh.until(l.Idle)
	}
	bases = append(bases, l.End())
	for _, c := range []struct{ from, limit, maxBytes int }{{0, 40, 1 << 20}, {3, 20, 1000}, {10, 11, 1}, {5, 40, 3000}, {39, 40, 10}} {
		spans, err := l.Read(bases[c.from], c.maxBytes, bases[c.limit])
		if err != nil {
			t.Fatal(err)
		}
		// What the fetch should hold: whole frames from c.from, below
		// the limit, within maxBytes but at least one.
		k, total := c.from, int64(0)
		for k < c.limit && (k == c.from || total+sizes[k] <= int64(c.maxBytes)) {
			total += sizes[k]
			k++
		}
		got := int64(0)
		for _, sp := range spans {
			got += sp.Len
		}
		if len(spans) == 0 || spans[0].FirstOffset != bases[c.from] || spans[len(spans)-1].NextOffset != bases[k] || got != total {
			t.Fatalf("read %+v: spans %+v end %d, %d bytes; want end %d, %d bytes", c, spans, spans[len(spans)-1].NextOffset, got, bases[k], total)
		}
	}
}

// Retention while the first frame of a new epoch is in flight keeps its
// entry: the list runs ahead of what is written.
func TestRingRetentionKeepsEpochOfAppendsInFlight(t *testing.T) {
	r := shardRing(t)
	dir := t.TempDir()
	snk := newSink()
	cfg := testConfig(segment.FlushEveryAck)
	l, err := Open(r, dir, cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	sh := newShard(t, r, l)
	if _, err := l.Append(makeFrame(2, 100, 0, 1), 0); err != nil {
		t.Fatal(err)
	}
	sh.until(l.Idle)
	if err := l.SetLeaderEpoch(2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(makeFrame(1, 100, 0, 2), 1); err != nil {
		t.Fatal(err)
	}
	if l.Idle() {
		t.Fatal("the append completed before the deletion")
	}
	if err := l.DeleteRecordsBefore(l.End()); err != nil {
		t.Fatal(err)
	}
	// Epoch 0 is wholly below the new start; epoch 2 covers it.
	wantRingEpochs(t, l, segment.EpochEntry{Epoch: 2, StartOffset: 2})
	sh.until(l.Idle)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	sl, err := segment.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	if got := sl.Epochs(); !slices.Equal(got, []segment.EpochEntry{{Epoch: 2, StartOffset: 2}}) {
		t.Fatalf("reopened epochs %v", got)
	}
	if err := sl.CheckEpochs(); err != nil {
		t.Fatal(err)
	}
}
