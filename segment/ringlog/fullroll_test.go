package ringlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

// A roll on a full file system: the tmpfs has blocks to spare but no
// inode for the next segment's files.
const (
	fullRollSegmentBytes = 64 << 10
	fullRollFrameBytes   = 4 << 10
	// fullRollFrames fill three segments, so that at least two rolls
	// come after the inodes ran out.
	fullRollFrames = 3 * fullRollSegmentBytes / fullRollFrameBytes
	// fullRollInodes is the tmpfs's inode limit: the folder, one
	// segment's files, the checkpoint and a few to fill by hand.
	fullRollInodes = 64
	// fullRollDiskBytes is far more room than the frames take.
	fullRollDiskBytes = 8 << 20
)

// TestFullDiskRollHolds: the next segment's files cannot be created (the
// kernel answers ENOSPC for want of an inode) when the active segment is
// full. The log does not go offline: the roll and every append behind it
// are held, unacknowledged, reads serve what was acknowledged, a retry on
// a still-full file system holds them again, and once inodes are freed
// the roll goes through, every append is acknowledged in order, and a
// reopen finds them all.
func TestFullDiskRollHolds(t *testing.T) {
	t.Run("no inode for the segment", func(t *testing.T) { fullDiskRoll(t, 0) })
	// Three inodes spare: the next segment's files are created, and the
	// checkpoint the roll then writes finds no inode for its temporary
	// file; the old checkpoint stands (it only lags) and the log goes
	// on, to hold at the roll after.
	t.Run("no inode for the checkpoint", func(t *testing.T) { fullDiskRoll(t, 3) })
}

// fullDiskRoll is TestFullDiskRollHolds with spare inodes left free.
func fullDiskRoll(t *testing.T, spare int) {
	dir := t.TempDir()
	mountSmallTmpfs(t, dir, fullRollDiskBytes, "nr_inodes="+strconv.Itoa(fullRollInodes))
	logDir := filepath.Join(dir, "log")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := shardRing(t)
	cfg := testConfig(segment.FlushEveryAck)
	cfg.SegmentBytes = fullRollSegmentBytes
	cfg.AllocateStepBytes = fullRollSegmentBytes
	snk := newSink()
	l, err := Open(r, logDir, cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	snk.check = func(token uint64, base int64, err error) {
		if err != nil {
			t.Errorf("append %d failed on a full file system: %v", token, err)
		}
	}
	// One append, so that the first segment's files and the checkpoint
	// exist; then every inode left is taken.
	var frames [][]byte
	appendFrame := func(i int) {
		t.Helper()
		f := makeFrame(1, fullRollFrameBytes-64, int64(i), uint64(i))
		if _, err := l.Append(f, uint64(i)); err != nil {
			t.Fatalf("append %d refused with %v", i, err)
		}
		frames = append(frames, f)
	}
	appendFrame(0)
	s.until(func() bool { return snk.nAppends == 1 })
	var fillers []string
	for i := 0; ; i++ {
		name := filepath.Join(dir, "filler-"+strconv.Itoa(i))
		f, err := os.Create(name)
		if errors.Is(err, unix.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		fillers = append(fillers, name)
		if i > fullRollInodes {
			t.Fatalf("%d files created on a tmpfs of %d inodes", i, fullRollInodes)
		}
	}
	for range spare {
		if err := os.Remove(fillers[len(fillers)-1]); err != nil {
			t.Fatal(err)
		}
		fillers = fillers[:len(fillers)-1]
	}
	for i := 1; i < fullRollFrames; i++ {
		appendFrame(i)
	}
	// The first frame of the segment whose files could not be created:
	// the second, or with three inodes spare (one segment's files) the
	// third.
	rollsBeforeHeld := 1
	if spare >= 3 {
		rollsBeforeHeld = 2
	}
	held := rollsBeforeHeld * fullRollSegmentBytes / fullRollFrameBytes
	s.until(func() bool {
		noSpace, _ := l.NoSpace()
		return noSpace && snk.nAppends >= held
	})
	_, cause := l.NoSpace()
	if !errors.Is(cause, unix.ENOSPC) || l.Err() != nil || snk.nAppends != held {
		t.Fatalf("held for %v, log error %v, %d appends reported; want ENOSPC, none, %d", cause, l.Err(), snk.nAppends, held)
	}
	acked := bytes.Join(frames[:held], nil)
	before := l.Stats().NoSpace
	s.untilTicking(func() bool { return l.Stats().NoSpace > before })
	if snk.nAppends != held || l.Err() != nil || l.Idle() {
		t.Fatalf("after a retry on a full file system: %d reported, %d acknowledged before, error %v, idle %v",
			snk.nAppends, held, l.Err(), l.Idle())
	}
	if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, acked) {
		t.Fatalf("reads serve %d bytes while held, %d were acknowledged", len(got), len(acked))
	}
	t.Logf("%d appends acknowledged, %d held; %v; %d checkpoints kept", held, len(frames)-held, cause, l.sync.Stats().CheckpointsKept)
	if spare > 0 && l.sync.Stats().CheckpointsKept == 0 {
		t.Fatal("no checkpoint was kept: the roll's checkpoint found room")
	}

	for _, name := range fillers {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	s.untilTicking(func() bool { return snk.nAppends == len(frames) })
	for i := range frames {
		if res := snk.appends[i]; res.err != nil || res.base != int64(i) {
			t.Fatalf("append %d: base %d, %v", i, res.base, res.err)
		}
	}
	if l.Stats().Rolls < 2 {
		t.Fatalf("%d rolls; the frames fill three segments", l.Stats().Rolls)
	}
	all := bytes.Join(frames, nil)
	if got := readAll(t, l, 0, 1<<20); !bytes.Equal(got, all) {
		t.Fatalf("reads serve %d bytes, %d were appended", len(got), len(all))
	}
	s.until(l.Idle)
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := reopenedBytes(t, logDir, cfg); !bytes.Equal(got, all) {
		t.Fatalf("reopened log holds %d bytes, %d were acknowledged", len(got), len(all))
	}
}
