package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Sizes of the growth tests on real files.
const (
	// growStepBytes is the allocation step of the growth tests.
	growStepBytes = 64 << 10
	// growSegmentBytes holds several steps and a partial last one.
	growSegmentBytes = 5*growStepBytes + growStepBytes/2
	// growFrameBodyBytes makes frames that do not divide a step, so that
	// appends cross step boundaries inside a frame.
	growFrameBodyBytes = 7000
	// emptyLogBlocksMaxBytes is the most an empty partition may allocate.
	emptyLogBlocksMaxBytes = 1 << 20
)

// allocatedBytes is what a file holds on disk: stat's blocks, in the
// 512-byte units st_blocks counts in.
func allocatedBytes(t *testing.T, name string) (size, allocated int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Size, st.Blocks * 512
}

// folderAllocatedBytes sums the allocated blocks of a folder's files.
func folderAllocatedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		_, a := allocatedBytes(t, filepath.Join(dir, e.Name()))
		n += a
	}
	return n
}

// TestEmptyLogAllocatesAlmostNothing: with the default 1 GiB segments and
// 10 MiB indexes, a new partition holds no data blocks; its index files are
// their full size but sparse; only the checkpoint takes a block.
func TestEmptyLogAllocatesAlmostNothing(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if n := folderAllocatedBytes(t, dir); n >= emptyLogBlocksMaxBytes {
		t.Fatalf("an empty log allocates %d bytes, want under %d", n, emptyLogBlocksMaxBytes)
	}
	if size, _ := allocatedBytes(t, logPath(dir, 0)); size != 0 {
		t.Fatalf("empty data file is %d bytes long", size)
	}
	if size, _ := allocatedBytes(t, indexPath(dir, 0)); size != indexBytesDefault {
		t.Fatalf("offset index is %d bytes long, want its full %d", size, indexBytesDefault)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening an empty log allocates nothing either.
	if l, err = Open(dir, Config{}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if n := folderAllocatedBytes(t, dir); n >= emptyLogBlocksMaxBytes {
		t.Fatalf("a reopened empty log allocates %d bytes", n)
	}
}

// wantAllocated is the data end a segment holding size bytes is grown to.
func wantAllocated(size int64) int64 {
	return min((size+growStepBytes-1)/growStepBytes*growStepBytes, growSegmentBytes)
}

// checkGrowth checks the active data file and indexes against the data
// they hold: the file is as long as whole steps (the last one cut at the
// segment size), its blocks are those steps, and the index files hold no
// more blocks than the entries of that much data can fill.
//
// indexData, when larger than the data's steps, is the data end the index
// files may hold blocks for: recovery allocates the indexes for the whole
// file it walks before it knows where the data ends.
func checkGrowth(t *testing.T, l *Log, cfg Config, indexData int64) {
	t.Helper()
	a := l.core.Active()
	want := wantAllocated(a.size)
	size, alloc := allocatedBytes(t, logPath(l.dir, a.base))
	if size != want || alloc < want || alloc >= want+growStepBytes || a.Allocated() != want {
		t.Fatalf("segment %d with %d bytes: file %d bytes long, %d allocated, core %d; want %d",
			a.base, a.size, size, alloc, a.Allocated(), want)
	}
	for _, ix := range []struct {
		name      string
		entrySize int
	}{{indexPath(l.dir, a.base), offsetEntrySize}, {timeIndexPath(l.dir, a.base), timeEntrySize}} {
		size, alloc := allocatedBytes(t, ix.name)
		max := cfg.indexAllocateBytes(max(want, indexData), ix.entrySize)
		if size != cfg.IndexBytes/offsetEntrySize*int64(ix.entrySize) || alloc > max || (a.size > 0 && alloc == 0) {
			t.Fatalf("index %s: %d bytes long, %d allocated, want at most %d", ix.name, size, alloc, max)
		}
	}
}

func growConfig() Config {
	return Config{SegmentBytes: growSegmentBytes, AllocateStepBytes: growStepBytes,
		IndexIntervalBytes: 4096, IndexBytes: 64 << 10, Flush: FlushNever,
		SegmentMs: Unlimited, RetentionMs: Unlimited, RetentionBytes: Unlimited}
}

// TestLogGrowsInSteps appends to real files through several rolls: after
// every append the active segment is allocated in whole steps covering its
// data, and a rolled segment is cut to its data.
func TestLogGrowsInSteps(t *testing.T) {
	dir := t.TempDir()
	cfg := growConfig()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg, _ = cfg.withDefaults()
	checkGrowth(t, l, cfg, 0)
	rolls := 0
	for i := 0; rolls < 2; i++ {
		before := l.core.Active()
		if _, err := l.Append(testFrame(3, growFrameBodyBytes, int64(i), uint64(i))); err != nil {
			t.Fatal(err)
		}
		if a := l.core.Active(); a != before {
			rolls++
			size, alloc := allocatedBytes(t, logPath(dir, before.base))
			if size != before.size || alloc >= before.size+growStepBytes {
				t.Fatalf("rolled segment %d: %d bytes long, %d allocated, holds %d", before.base, size, alloc, before.size)
			}
		}
		checkGrowth(t, l, cfg, 0)
	}
}

// TestReopenShortSegment reopens a log whose active file is shorter than
// SegmentBytes in each state a crash can leave it: cut at the data (the
// step's size never reached the disk), allocated further than the data
// (the step did, the writes did not), and with a torn frame inside the
// step. Recovery finds the same frames, grows the file to the step that
// holds them, and appends go on.
func TestReopenShortSegment(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, f *os.File, size int64)
		// indexSteps is how many steps past the data the file was
		// allocated to: recovery allocates index blocks for all of it.
		indexSteps int64
	}{
		{"cut at the data", func(t *testing.T, f *os.File, size int64) {
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"allocated past the step", func(t *testing.T, f *os.File, size int64) {
			if err := unix.Fallocate(int(f.Fd()), 0, 0, wantAllocated(size)+2*growStepBytes); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"torn frame in the step", func(t *testing.T, f *os.File, size int64) {
			torn := testFrame(1, 500, 1, 77)
			if _, err := f.WriteAt(torn[:len(torn)/2], size); err != nil {
				t.Fatal(err)
			}
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := growConfig()
			l, err := Open(dir, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for i := 0; i < 12; i++ {
				f := testFrame(2, growFrameBodyBytes, int64(i), uint64(i))
				if _, err := l.Append(f); err != nil {
					t.Fatal(err)
				}
				want = append(want, f...)
			}
			base, size, end := l.core.Active().base, l.core.Active().size, l.End()
			if base != 0 {
				t.Fatalf("the test's frames rolled the segment")
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(logPath(dir, base), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, f, size)
			f.Close()
			// No checkpoint: recovery walks the segment.
			if err := os.Remove(filepath.Join(dir, checkpointName)); err != nil {
				t.Fatal(err)
			}
			if l, err = Open(dir, cfg); err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.End() != end || l.core.Active().size != size {
				t.Fatalf("reopened at end %d with %d bytes, want %d and %d", l.End(), l.core.Active().size, end, size)
			}
			c, _ := cfg.withDefaults()
			indexData := wantAllocated(size) + tc.indexSteps*growStepBytes
			checkGrowth(t, l, c, indexData)
			if got := readAll(t, l, 0); !bytes.Equal(got, want) {
				t.Fatalf("reopened log holds %d bytes, not the %d appended", len(got), len(want))
			}
			for i := 12; i < 20; i++ {
				f := testFrame(2, growFrameBodyBytes, int64(i), uint64(i))
				if _, err := l.Append(f); err != nil {
					t.Fatal(err)
				}
				want = append(want, f...)
				checkGrowth(t, l, c, indexData)
			}
			if got := readAll(t, l, 0); !bytes.Equal(got, want) {
				t.Fatalf("log holds %d bytes after more appends, not %d", len(got), len(want))
			}
		})
	}
}

// TestFailedStepAllocateFailsStop: the fallocate of a later step inside a
// segment fails (ENOSPC, as a full disk does). The append that needed it
// fails with ErrStorageFailed, nothing after it is accepted, the log closes
// without a checkpoint, and after a crash every acknowledged append is
// there.
func TestFailedStepAllocateFailsStop(t *testing.T) {
	mem := NewMemFS()
	efs := newErrFS(mem, faultNone, 1)
	cfg := memConfig(efs)
	cfg.SegmentBytes = 64 << 10
	cfg.AllocateStepBytes = 4096
	cfg.Flush = FlushEveryAck
	l, err := Open("/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Growing a segment allocates its data file and both index prefixes;
	// the second step's data allocate is the fourth Allocate from here.
	efs.arm(faultAllocate, 4)
	var acked []byte
	var failedAt int
	for i := 0; ; i++ {
		f := testFrame(1, 1000, int64(i), uint64(i))
		_, err := l.Append(f)
		if err != nil {
			if !errors.Is(err, ErrStorageFailed) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("append %d: %v", i, err)
			}
			failedAt = i
			break
		}
		acked = append(acked, f...)
		if i > 20 {
			t.Fatal("the injected allocate never failed")
		}
	}
	if !efs.hasFired() || l.core.Active().base != 0 || int64(len(acked)) > cfg.AllocateStepBytes {
		t.Fatalf("failed at append %d with %d bytes acknowledged, segment %d", failedAt, len(acked), l.core.Active().base)
	}
	if _, err := l.Append(testFrame(1, 10, 1, 99)); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append after the failure: %v", err)
	}
	if err := l.Flush(); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("flush after the failure: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("close of the failed log: %v", err)
	}
	mem.Crash()
	efs.disarm()
	if l, err = Open("/p", cfg); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := readAll(t, l, 0); !bytes.Equal(got, acked) {
		t.Fatalf("after the crash the log holds %d bytes, want the %d acknowledged", len(got), len(acked))
	}
}

// TestAllocateStepBounds: the step defaults to 32 MiB or the segment size,
// and a step above the segment size or below the floor is refused.
func TestAllocateStepBounds(t *testing.T) {
	for _, tc := range []struct {
		seg, step, want int64
	}{
		{0, 0, allocateStepBytesDefault},
		{1 << 20, 0, 1 << 20},
		{1 << 20, 4096, 4096},
		{1 << 20, 1 << 20, 1 << 20},
	} {
		c, err := Config{SegmentBytes: tc.seg, AllocateStepBytes: tc.step}.withDefaults()
		if err != nil || c.AllocateStepBytes != tc.want {
			t.Errorf("segment %d step %d: %d, %v; want %d", tc.seg, tc.step, c.AllocateStepBytes, err, tc.want)
		}
	}
	for _, step := range []int64{1<<20 + 1, allocateStepBytesMin - 1, -1} {
		if _, err := (Config{SegmentBytes: 1 << 20, AllocateStepBytes: step}).withDefaults(); err == nil {
			t.Errorf("step %d accepted for 1 MiB segments", step)
		}
	}
}
