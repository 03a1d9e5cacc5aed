package ringlog

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

// A real full disk: a tmpfs mounted just big enough for two segments and a
// step of a third.
const (
	fullDiskSegmentBytes = 64 << 10
	// fullDiskStepBytes is the allocation step: four per segment.
	fullDiskStepBytes = 16 << 10
	// fullDiskBytes holds two segments, their indexes and the checkpoint,
	// and about one step of a third segment with its index pages.
	fullDiskBytes = 2*fullDiskSegmentBytes + 48<<10
	// fullDiskFrameBytes is each frame's size; 16 fill a segment.
	fullDiskFrameBytes = 4 << 10
	// fullDiskFramesMax is more frames than the disk can take.
	fullDiskFramesMax = 64
	// fullDiskRemountBytes is the space the "operator" gives back before
	// the restart.
	fullDiskRemountBytes = 1 << 20
)

// TestFullDiskFailsStop runs the log on a real filesystem that fills up: a
// step of the third segment cannot be allocated (its FALLOCATE completes
// with ENOSPC from the kernel). The log goes offline at once: that append
// and every later one fail, nothing is acknowledged after the failure, the
// log refuses more and closes without a checkpoint; after space is added,
// reopening finds every acknowledged append. It needs root (to mount a
// tmpfs) and skips without.
func TestFullDiskFailsStop(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(fullDiskBytes)); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	r := shardRing(t)
	cfg := testConfig(segment.FlushEveryAck)
	cfg.SegmentBytes = fullDiskSegmentBytes
	cfg.AllocateStepBytes = fullDiskStepBytes
	snk := newSink()
	l, err := Open(r, dir, cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	snk.check = func(token uint64, base int64, err error) {
		if err == nil && l.Err() != nil {
			t.Errorf("append %d acknowledged after the failure %v", token, l.Err())
		}
	}
	frames := make([][]byte, 0, fullDiskFramesMax)
	for i := 0; i < fullDiskFramesMax; i++ {
		f := makeFrame(1, fullDiskFrameBytes-64, int64(i), uint64(i))
		if _, err := l.Append(f, uint64(i)); err != nil {
			if !errors.Is(err, ErrFailed) || !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("append %d refused with %v", i, err)
			}
			break
		}
		frames = append(frames, f)
		s.until(func() bool { return snk.nAppends == len(frames) })
	}
	if !errors.Is(l.Err(), segment.ErrStorageFailed) || !errors.Is(l.Err(), unix.ENOSPC) {
		t.Fatalf("the disk never filled up: log error %v after %d appends", l.Err(), len(frames))
	}
	var acked []byte
	for i := range frames {
		res := snk.appends[i]
		if res.err == nil {
			if len(acked) != i*len(frames[0]) {
				t.Fatalf("append %d acknowledged after one before it failed", i)
			}
			acked = append(acked, frames[i]...)
			continue
		}
		if !errors.Is(res.err, ErrFailed) || !errors.Is(res.err, unix.ENOSPC) {
			t.Fatalf("append %d: %v", i, res.err)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no append was acknowledged before the disk filled up")
	}
	t.Logf("%d of %d appends acknowledged; %v", len(acked)/len(frames[0]), len(frames), l.Err())
	if _, err := l.Append(makeFrame(1, 10, 1, 99), 99); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after the failure: %v", err)
	}
	s.until(l.Idle)
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("close of the failed log: %v", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT, "size="+strconv.Itoa(fullDiskRemountBytes)); err != nil {
		t.Fatalf("remount larger: %v", err)
	}
	cfg.FS = nil
	sl, err := segment.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	var got []byte
	for off := sl.LogStart(); off < sl.End(); {
		spans, err := sl.Read(off, 1<<20, -1)
		if err != nil || len(spans) == 0 {
			t.Fatalf("read at %d: %d spans, %v", off, len(spans), err)
		}
		if got, err = sl.ReadSpans(got, spans); err != nil {
			t.Fatal(err)
		}
		off = spans[len(spans)-1].NextOffset
	}
	if !bytes.HasPrefix(got, acked) {
		t.Fatalf("reopened log holds %d bytes, not the %d acknowledged", len(got), len(acked))
	}
}
