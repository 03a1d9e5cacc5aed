package ringlog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

// Sizes of the ring growth tests.
const (
	// ringStepBytes is the allocation step: 16 frames of ringFrameBytes.
	ringStepBytes = 64 << 10
	// ringFrameBytes is each frame's size.
	ringFrameBytes = 4 << 10
	// ringGrowSegmentBytes holds four and a half steps.
	ringGrowSegmentBytes = 4*ringStepBytes + ringStepBytes/2
	// ringGrowFrames fills a little over two segments.
	ringGrowFrames = 160
	// ringGrowInFlight is how many appends the test keeps in flight.
	ringGrowInFlight = 32
)

// TestRingLogGrowsInSteps: appends with up to 32 in flight, completions
// handed over in kernel order and in reverse, over segments of four and a
// half 64 KiB steps. Each segment's data file is allocated in whole steps
// through FALLOCATE SQEs, never ahead of its data by a step or more, a
// rolled segment is cut to its data, and the bytes read back and reopened
// are the bytes appended.
func TestRingLogGrowsInSteps(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		r := shardRing(t)
		dir := t.TempDir()
		cfg := testConfig(segment.FlushEveryAck)
		cfg.SegmentBytes = ringGrowSegmentBytes
		cfg.AllocateStepBytes = ringStepBytes
		snk := newSink()
		l, err := Open(r, dir, cfg, testPrefix, snk)
		if err != nil {
			t.Fatal(err)
		}
		s := newShard(t, r, l)
		s.reverse = reverse
		var want []byte
		for i := 0; i < ringGrowFrames; i++ {
			f := makeFrame(1, ringFrameBytes-64, int64(i), uint64(i))
			if _, err := l.Append(f, uint64(i)); err != nil {
				t.Fatal(err)
			}
			want = append(want, f...)
			s.until(func() bool { return i+1-snk.nAppends < ringGrowInFlight })
			a := l.core.Active()
			if a.Allocated() < a.Size() || a.Allocated()%ringStepBytes != 0 && a.Allocated() != ringGrowSegmentBytes {
				t.Fatalf("segment %d holds %d bytes with %d allocated", a.Base(), a.Size(), a.Allocated())
			}
		}
		s.until(func() bool { return snk.nAppends == ringGrowFrames })
		for i := 0; i < ringGrowFrames; i++ {
			if snk.appends[i].err != nil {
				t.Fatalf("append %d: %v", i, snk.appends[i].err)
			}
		}
		segs := l.Segments()
		if len(segs) != 3 {
			t.Fatalf("%d segments, want 3", len(segs))
		}
		// Steps per segment: 5 for each full one (the last cut at the
		// segment size), and those the active one's data needs.
		active := segs[2]
		wantGrows := int64(10) + (active.Size()+ringStepBytes-1)/ringStepBytes
		if l.Stats().Grows != wantGrows {
			t.Fatalf("%d growths, want %d", l.Stats().Grows, wantGrows)
		}
		// The data files' steps alone (the index files' steps come on top).
		wantDataBytes := 2*ringGrowSegmentBytes + (active.Size()+ringStepBytes-1)/ringStepBytes*ringStepBytes
		if got := l.Stats().GrownBytes; got < int64(wantDataBytes) {
			t.Fatalf("%d bytes counted grown, below the %d the data files' steps allocated", got, wantDataBytes)
		}
		for _, sg := range segs {
			var st unix.Stat_t
			if err := unix.Fstat(mustFd(t, l, sg), &st); err != nil {
				t.Fatal(err)
			}
			wantSize := min((sg.Size()+ringStepBytes-1)/ringStepBytes*ringStepBytes, ringGrowSegmentBytes)
			if sg.Closed() {
				wantSize = sg.Size()
			}
			if st.Size != wantSize || st.Blocks*512 < wantSize || st.Blocks*512 >= wantSize+ringStepBytes {
				t.Fatalf("segment %d with %d bytes: file %d bytes, %d allocated; want %d", sg.Base(), sg.Size(), st.Size, st.Blocks*512, wantSize)
			}
		}
		if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, want) {
			t.Fatalf("read back %d bytes, appended %d", len(got), len(want))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		sl, err := segment.Open(dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if sl.End() != ringGrowFrames {
			t.Fatalf("reopened at %d, want %d", sl.End(), ringGrowFrames)
		}
		sl.Close()
	}
}

func mustFd(t *testing.T, l *Log, s *segment.Segment) int {
	t.Helper()
	fd, err := l.Fd(s)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestGrowthErrorFailsStop: the kernel refuses a step's fallocate (the file
// size limit, RLIMIT_FSIZE, lies inside the third step: EFBIG in the
// FALLOCATE's completion). The appends that needed it, and every one after
// them, fail with ErrFailed and EFBIG (and so do earlier ones whose sync
// had not completed); none of their writes was submitted;
// the log refuses more, closes without a checkpoint, and reopening finds
// exactly the appends before the step.
func TestGrowthErrorFailsStop(t *testing.T) {
	r := shardRing(t)
	dir := t.TempDir()
	cfg := testConfig(segment.FlushEveryAck)
	cfg.SegmentBytes = 1 << 20
	cfg.AllocateStepBytes = 16 << 10
	snk := newSink()
	l, err := Open(r, dir, cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	// Two steps hold 8 frames; the limit allows 10, not a third step.
	const frameBytes, good, total = 4096, 8, 16
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limit := unix.Rlimit{Cur: 10*frameBytes + 100, Max: old.Max}
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
	for i := 0; i < total; i++ {
		if _, err := l.Append(makeFrame(1, frameBytes-64, 1, uint64(i)), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.until(func() bool { return snk.nAppends == total })
	restore()
	// The appends before the step were written, but their sync may not
	// have completed before the failure: nothing is acknowledged after
	// it, so the acknowledged ones are a prefix of them.
	acked := 0
	for i := 0; i < total; i++ {
		err := snk.appends[i].err
		if err == nil {
			if i >= good || acked != i {
				t.Fatalf("append %d acknowledged after %d of the ones before it", i, acked)
			}
			acked++
			continue
		}
		if !errors.Is(err, ErrFailed) || !errors.Is(err, segment.ErrStorageFailed) || !errors.Is(err, unix.EFBIG) {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	t.Logf("%d of %d appends acknowledged; %v", acked, total, l.Err())
	if st := l.Stats(); st.Writes != good || st.Grows != 3 {
		t.Fatalf("stats %+v: want %d writes and 3 growths", st, good)
	}
	if _, err := l.Append(makeFrame(1, 10, 1, 99), 99); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after the failure: %v", err)
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
