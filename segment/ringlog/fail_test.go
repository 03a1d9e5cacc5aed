package ringlog

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

// TestWriteErrorFailsAppends: with the file size limit (RLIMIT_FSIZE) set
// in the middle of a frame, its write completes short, the rest is
// resubmitted and fails with EFBIG; that append and every one after it fail,
// and so does every one before it whose sync had not completed (fail-stop:
// nothing is acknowledged after a storage error), the log refuses more,
// closes without a checkpoint, and reopening finds every append that
// succeeded.
func TestWriteErrorFailsAppends(t *testing.T) {
	r := shardRing(t)
	dir := t.TempDir()
	cfg := testConfig(segment.FlushEveryAck)
	cfg.SegmentBytes = 1 << 20
	snk := newSink()
	l, err := Open(r, dir, cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	const frameBytes, good, total = 4096, 10, 16
	// The first append grows the segment by its one step (the whole 1 MiB)
	// before the limit is lowered, so that the limit hits a write.
	if _, err := l.Append(makeFrame(1, frameBytes-64, 1, 0), 0); err != nil {
		t.Fatal(err)
	}
	s.until(func() bool { return snk.nAppends == 1 })
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limit := unix.Rlimit{Cur: good*frameBytes + 100, Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &limit); err != nil {
		t.Skipf("cannot lower RLIMIT_FSIZE: %v", err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	for i := 1; i < total; i++ {
		if _, err := l.Append(makeFrame(1, frameBytes-64, 1, uint64(i)), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.until(func() bool { return snk.nAppends == total })
	restore()
	acked := 0
	for i := 0; i < total; i++ {
		res := snk.appends[i]
		if res.err == nil && (i >= good || acked != i) {
			t.Fatalf("append %d acknowledged after %d of the ones before it", i, acked)
		}
		if res.err == nil {
			acked++
			continue
		}
		if !errors.Is(res.err, ErrFailed) || !errors.Is(res.err, segment.ErrStorageFailed) || !errors.Is(res.err, unix.EFBIG) {
			t.Fatalf("append %d: %v", i, res.err)
		}
	}
	t.Logf("stats %+v, error %v", l.Stats(), l.Err())
	if l.Stats().ShortWrites == 0 {
		t.Fatal("the write across the limit did not complete short")
	}
	if _, err := l.Append(makeFrame(1, 10, 1, 99), 99); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after the failure: %v", err)
	}
	l.Flush(0)
	if !snk.flushes[0].done || !errors.Is(snk.flushes[0].err, ErrFailed) {
		t.Fatalf("flush after the failure: %+v", snk.flushes[0])
	}
	if l.End() != good || l.RecoveryPoint() != int64(acked) {
		t.Fatalf("end %d, recovery point %d, want %d and %d", l.End(), l.RecoveryPoint(), good, acked)
	}
	s.until(l.Idle)
	if err := l.Close(); !errors.Is(err, segment.ErrStorageFailed) {
		t.Fatalf("close of the failed log: %v", err)
	}
	sl, err := segment.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	if sl.End() != good {
		t.Fatalf("reopened end %d, want %d", sl.End(), good)
	}
}

// TestBadDescriptorFailsAppends: a write the kernel refuses (EBADF: the
// descriptor is open read-only) fails the append and the log.
func TestBadDescriptorFailsAppends(t *testing.T) {
	r := shardRing(t)
	dir := t.TempDir()
	snk := newSink()
	l, err := Open(r, dir, testConfig(segment.FlushNever), testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	if _, err := l.Append(makeFrame(1, 100, 1, 1), 0); err != nil {
		t.Fatal(err)
	}
	s.until(func() bool { return snk.nAppends == 1 })
	ro, err := unix.Open(dir+"/00000000000000000000.log", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ro)
	rw := l.activeFd
	l.activeFd = ro
	for i := 1; i < 4; i++ {
		if _, err := l.Append(makeFrame(1, 100, 1, uint64(i)), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.until(func() bool { return snk.nAppends == 4 })
	l.activeFd = rw
	if snk.appends[0].err != nil {
		t.Fatalf("append before the failure: %v", snk.appends[0].err)
	}
	for i := 1; i < 4; i++ {
		if !errors.Is(snk.appends[i].err, ErrFailed) || !errors.Is(snk.appends[i].err, unix.EBADF) {
			t.Fatalf("append %d: %v", i, snk.appends[i].err)
		}
	}
	if !errors.Is(l.Err(), unix.EBADF) || l.End() != 1 {
		t.Fatalf("log error %v, end %d", l.Err(), l.End())
	}
	s.until(l.Idle)
	if err := l.Close(); !errors.Is(err, segment.ErrStorageFailed) {
		t.Fatalf("close of the failed log: %v", err)
	}
}

func mustPanic(t *testing.T, want string, fn func()) {
	t.Helper()
	defer func() {
		p := recover()
		if p == nil || !strings.Contains(p.(string), want) {
			t.Fatalf("panic %v, want one containing %q", p, want)
		}
	}()
	fn()
}

// TestInvariantPanics: completions that cannot happen are named, not
// absorbed.
func TestInvariantPanics(t *testing.T) {
	r := shardRing(t)
	snk := newSink()
	l, err := Open(r, t.TempDir(), testConfig(segment.FlushNever), testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mustPanic(t, "invariant: write completion for slot 5", func() { l.Complete(ring.CQE{UserData: l.tag(kindWrite, 5)}) })
	mustPanic(t, "invariant: sync completion for slot 0", func() { l.Complete(ring.CQE{UserData: l.tag(kindSync, 0)}) })
	mustPanic(t, "invariant: fallocate completion for slot 1", func() { l.Complete(ring.CQE{UserData: l.tag(kindGrow, 1)}) })
	mustPanic(t, "invariant: completion 0x1", func() { l.Complete(ring.CQE{UserData: 1}) })
	mustPanic(t, "unknown kind", func() { l.Complete(ring.CQE{UserData: l.tag(7, 0)}) })
	snk.check = func(uint64, int64, error) { l.Flush(1) }
	mustPanic(t, "called back into the Log", func() {
		if _, err := l.Append(makeFrame(1, 10, 1, 1), 0); err != nil {
			t.Fatal(err)
		}
		newShard(t, r, l).until(func() bool { return snk.nAppends == 1 })
	})
}
