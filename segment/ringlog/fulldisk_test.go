package ringlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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
	// fullDiskHeldMore is how many appends go in after the one held.
	fullDiskHeldMore = 3
	// fullDiskRemountBytes is the space the "operator" gives back.
	fullDiskRemountBytes = 1 << 20
	// fullDiskPageBytes is the tmpfs page: the unit of its allocation.
	fullDiskPageBytes = 4096
)

// mountSmallTmpfs mounts a tmpfs of size bytes on dir (as root; the test
// skips without), unmounted at the end; extra are more mount options.
func mountSmallTmpfs(t *testing.T, dir string, size int, extra ...string) {
	t.Helper()
	opts := "size=" + strconv.Itoa(size)
	for _, o := range extra {
		opts += "," + o
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// untilTicking runs the loop, ticking the log as the shard does, until
// cond holds.
func (s *shard) untilTicking(cond func() bool) {
	s.t.Helper()
	s.until(func() bool {
		s.l.Tick(time.Now().UnixMilli())
		return cond()
	})
}

// reopenedBytes reopens dir with the synchronous log and returns every
// frame's bytes from the log start.
func reopenedBytes(t *testing.T, dir string, cfg segment.Config) []byte {
	t.Helper()
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
	return got
}

// TestFullDiskHoldsAppends runs the log on a real filesystem that fills
// up: a step of the third segment cannot be allocated (its FALLOCATE
// completes with ENOSPC from the kernel). The log does not go offline: the
// append that needed the step and those after it are held, unwritten and
// unacknowledged, nothing fails, reads serve exactly what was acknowledged,
// and a retry on a still-full disk holds them again. Once the operator
// gives room back (a remount larger) the next retry writes them, every
// append is acknowledged in order, the log closes cleanly, and reopening
// finds every append byte for byte.
func TestFullDiskHoldsAppends(t *testing.T) {
	dir := t.TempDir()
	mountSmallTmpfs(t, dir, fullDiskBytes)
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
		if err != nil {
			t.Errorf("append %d failed on a full disk: %v", token, err)
		}
	}
	var frames [][]byte
	held := -1
	for i := 0; i < fullDiskFramesMax && held < 0; i++ {
		f := makeFrame(1, fullDiskFrameBytes-64, int64(i), uint64(i))
		if _, err := l.Append(f, uint64(i)); err != nil {
			t.Fatalf("append %d refused with %v", i, err)
		}
		frames = append(frames, f)
		s.until(func() bool {
			noSpace, _ := l.NoSpace()
			return snk.appends[i].done || noSpace
		})
		if !snk.appends[i].done {
			held = i
		}
	}
	if held < 0 {
		t.Fatalf("the disk never filled up: %d appends acknowledged", len(frames))
	}
	_, cause := l.NoSpace()
	if !errors.Is(cause, unix.ENOSPC) || l.Err() != nil {
		t.Fatalf("held for %v, log error %v", cause, l.Err())
	}
	acked := bytes.Join(frames[:held], nil)
	for k := range fullDiskHeldMore {
		i := held + 1 + k
		f := makeFrame(1, fullDiskFrameBytes-64, int64(i), uint64(i))
		if _, err := l.Append(f, uint64(i)); err != nil {
			t.Fatalf("append %d while held: %v", i, err)
		}
		frames = append(frames, f)
	}
	// A retry on a disk still full holds them again.
	before := l.Stats().NoSpace
	s.untilTicking(func() bool { return l.Stats().NoSpace > before })
	if snk.nAppends != held || l.Err() != nil || l.Idle() {
		t.Fatalf("after a retry on a full disk: %d reported, %d acknowledged before, error %v, idle %v",
			snk.nAppends, held, l.Err(), l.Idle())
	}
	if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, acked) {
		t.Fatalf("reads serve %d bytes while held, %d were acknowledged", len(got), len(acked))
	}
	t.Logf("%d appends acknowledged, %d held; %v", held, len(frames)-held, cause)

	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT, "size="+strconv.Itoa(fullDiskRemountBytes)); err != nil {
		t.Fatalf("remount larger: %v", err)
	}
	s.untilTicking(func() bool { return snk.nAppends == len(frames) })
	for i := range frames {
		if res := snk.appends[i]; res.err != nil || res.base != int64(i) {
			t.Fatalf("append %d: base %d, %v", i, res.base, res.err)
		}
	}
	if noSpace, _ := l.NoSpace(); noSpace {
		t.Fatal("still holding once every append is written")
	}
	all := bytes.Join(frames, nil)
	if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, all) {
		t.Fatalf("reads serve %d bytes, %d were appended", len(got), len(all))
	}
	s.until(l.Idle)
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := reopenedBytes(t, dir, cfg); !bytes.Equal(got, all) {
		t.Fatalf("reopened log holds %d bytes, %d were acknowledged", len(got), len(all))
	}
}

// TestFullDiskWriteHoldsTornFrame makes a real write find the disk full
// half way: the pages past the log's end are punched out of its allocated
// data file and the rest of the tmpfs filled, so the next frame's write
// stores the bytes up to the page boundary (a short write, from the
// kernel) and its rest completes with ENOSPC. The log holds, its end stays
// before the torn frame, reads serve only what was acknowledged. Then:
//
//   - "room returns": the filler is removed; the retry writes the rest and
//     the frames after it, every one is acknowledged, and a reopen finds
//     them all;
//   - "given up": the log is failed while held (as a deleted topic's or a
//     stopping broker's is); the held appends fail, and a reopen finds
//     exactly the acknowledged frames, the torn one cut off.
func TestFullDiskWriteHoldsTornFrame(t *testing.T) {
	for _, roomReturns := range []bool{true, false} {
		name := map[bool]string{true: "room returns", false: "given up"}[roomReturns]
		t.Run(name, func(t *testing.T) { fullDiskTornFrame(t, roomReturns) })
	}
}

func fullDiskTornFrame(t *testing.T, roomReturns bool) {
	const (
		diskBytes    = 512 << 10
		segmentBytes = 256 << 10
		acked        = 5
		bodyBytes    = 3000 // frames end off page boundaries
		heldBody     = 8000 // spans two pages past the boundary
	)
	dir := t.TempDir()
	mountSmallTmpfs(t, dir, diskBytes)
	r := shardRing(t)
	cfg := testConfig(segment.FlushEveryAck)
	cfg.SegmentBytes = segmentBytes
	cfg.AllocateStepBytes = segmentBytes
	snk := newSink()
	l, err := Open(r, dir, cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	var frames [][]byte
	for i := range acked {
		f := makeFrame(1, bodyBytes, int64(i), uint64(i))
		if _, err := l.Append(f, uint64(i)); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
		s.until(func() bool { return snk.appends[i].done })
		if err := snk.appends[i].err; err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	end := int64(len(bytes.Join(frames, nil)))
	if end%fullDiskPageBytes == 0 {
		t.Fatalf("the log ends on a page boundary (%d): the write would not be torn", end)
	}
	// Punch the pages past the end's page out of the data file and fill
	// the disk, so that writing there needs pages there are none of.
	data, err := os.OpenFile(filepath.Join(dir, "00000000000000000000.log"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	hole := (end/fullDiskPageBytes + 1) * fullDiskPageBytes
	if err := unix.Fallocate(int(data.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, hole, segmentBytes-hole); err != nil {
		t.Fatalf("punch a hole: %v", err)
	}
	filler := filepath.Join(dir, "filler")
	fillDisk(t, filler)

	torn := makeFrame(1, heldBody, acked, acked)
	after := makeFrame(1, bodyBytes, acked+1, acked+1)
	frames = append(frames, torn, after)
	for i, f := range [][]byte{torn, after} {
		if _, err := l.Append(f, uint64(acked+i)); err != nil {
			t.Fatal(err)
		}
	}
	s.until(func() bool { noSpace, _ := l.NoSpace(); return noSpace })
	st := l.Stats()
	if _, cause := l.NoSpace(); !errors.Is(cause, unix.ENOSPC) || st.ShortWrites == 0 {
		t.Fatalf("held for %v after %d short writes: the write was not torn", cause, st.ShortWrites)
	}
	if snk.nAppends != acked || l.Err() != nil || l.End() != acked {
		t.Fatalf("while held: %d reported, error %v, end %d", snk.nAppends, l.Err(), l.End())
	}
	ackedBytes := bytes.Join(frames[:acked], nil)
	if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, ackedBytes) {
		t.Fatalf("reads serve %d bytes while held, %d were acknowledged", len(got), len(ackedBytes))
	}
	if roomReturns {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		s.untilTicking(func() bool { return snk.nAppends == len(frames) })
		for i := range frames {
			if res := snk.appends[i]; res.err != nil || res.base != int64(i) {
				t.Fatalf("append %d: base %d, %v", i, res.base, res.err)
			}
		}
		s.until(l.Idle)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if got, all := reopenedBytes(t, dir, cfg), bytes.Join(frames, nil); !bytes.Equal(got, all) {
			t.Fatalf("reopened log holds %d bytes, %d were acknowledged", len(got), len(all))
		}
		return
	}
	l.Fail(errors.New("test: given up while held"))
	s.until(l.Idle)
	for i := acked; i < len(frames); i++ {
		if res := snk.appends[i]; !res.done || !errors.Is(res.err, ErrFailed) {
			t.Fatalf("held append %d after the log failed: done %v, %v", i, res.done, res.err)
		}
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("close of the failed log: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if got := reopenedBytes(t, dir, cfg); !bytes.Equal(got, ackedBytes) {
		t.Fatalf("reopened log holds %d bytes, %d were acknowledged (the torn frame must be cut)", len(got), len(ackedBytes))
	}
}

// fillDisk writes path until the file system has no room left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, fullDiskPageBytes)
	for {
		if _, err := f.Write(page); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			return
		}
	}
}
