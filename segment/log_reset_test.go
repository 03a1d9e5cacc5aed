package segment

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// resetTestFrames is how many frames the reset tests write before the
// reset: several 4 KiB segments of memConfig.
const resetTestFrames = 24

// openResetLog opens a log on fs and writes resetTestFrames frames, the
// first epoch beginning at 0 and a second at 10.
func openResetLog(t *testing.T, fs FS) (*Log, []byte) {
	t.Helper()
	l, err := Open("/p", memConfig(fs))
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for i := range resetTestFrames {
		if i == 0 || i == 10 {
			if err := l.SetLeaderEpoch(int32(1 + i)); err != nil {
				t.Fatal(err)
			}
		}
		f := testFrame(2, 700, int64(i), uint64(i))
		if _, err := l.Append(f); err != nil {
			t.Fatal(err)
		}
		all = append(all, f...)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(l.SegmentBases()) < 3 || len(l.Epochs()) != 2 {
		t.Fatalf("setup: %d segments, epochs %v", len(l.SegmentBases()), l.Epochs())
	}
	return l, all
}

// TestResetTo: a log of several segments and two epochs is reset past its
// end. It then starts and ends there with one segment and no epochs, old
// files gone; appends continue from there and a reopen finds exactly that.
func TestResetTo(t *testing.T) {
	mem := NewMemFS()
	l, _ := openResetLog(t, mem)
	to := l.End() + 100
	if err := l.ResetTo(to); err != nil {
		t.Fatal(err)
	}
	if l.LogStart() != to || l.End() != to || l.RecoveryPoint() != to {
		t.Fatalf("after reset: start %d end %d recovery point %d, want all %d", l.LogStart(), l.End(), l.RecoveryPoint(), to)
	}
	if b := l.SegmentBases(); len(b) != 1 || b[0] != to {
		t.Fatalf("segments %v, want [%d]", b, to)
	}
	if e := l.Epochs(); len(e) != 0 {
		t.Fatalf("epochs %v after reset", e)
	}
	ents, err := mem.ReadDir("/p")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name != checkpointName && e.Name != epochFileName && !bytes.Contains([]byte(e.Name), []byte(fmt.Sprintf("%020d", to))) {
			t.Fatalf("file %s left after the reset to %d", e.Name, to)
		}
	}
	if _, err := l.Read(to-1, 1<<20, -1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the new start: %v, want out of range", err)
	}
	var after []byte
	for i := range 5 {
		f := testFrame(1, 500, int64(100+i), uint64(100+i))
		off, err := l.Append(f)
		if err != nil || off != to+int64(i) {
			t.Fatalf("append after reset: offset %d, %v; want %d", off, err, to+int64(i))
		}
		after = append(after, f...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open("/p", memConfig(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.LogStart() != to || l.End() != to+5 {
		t.Fatalf("reopened: start %d end %d, want %d and %d", l.LogStart(), l.End(), to, to+5)
	}
	if got := readAll(t, l, to); !bytes.Equal(got, after) {
		t.Fatalf("reopened log holds %d bytes after the reset, %d were appended", len(got), len(after))
	}
}

// TestResetToCrash fails each file-system step of a reset in turn (the
// log goes offline) and crashes: the reopened log is either the old one,
// whole, or empty — at its old end or at the reset's offset — and holds
// no epoch that names frames it lacks.
func TestResetToCrash(t *testing.T) {
	for _, kind := range []faultKind{faultCreate, faultWrite, faultSync, faultRename, faultDirSync} {
		for nth := 1; nth <= 6; nth++ {
			t.Run(fmt.Sprintf("%v-%d", kind, nth), func(t *testing.T) {
				mem := NewMemFS()
				efs := newErrFS(mem, faultNone, 0)
				l, all := openResetLog(t, efs)
				oldEnd := l.End()
				to := oldEnd + 100
				efs.arm(kind, nth)
				err := l.ResetTo(to)
				fired := efs.hasFired()
				efs.disarm()
				if fired == (err == nil) {
					t.Fatalf("fault fired %v, reset returned %v", fired, err)
				}
				if fired && l.Err() == nil {
					t.Fatalf("a failed reset (%v) left the log online", err)
				}
				l.Close()
				mem.Crash()
				l, err = Open("/p", memConfig(mem))
				if err != nil {
					t.Fatalf("reopen after a failed reset: %v", err)
				}
				defer l.Close()
				start, end := l.LogStart(), l.End()
				t.Logf("fired %v: reopened %d..%d (old end %d, reset to %d)", fired, start, end, oldEnd, to)
				switch {
				case start == 0 && end == oldEnd:
					if got := readAll(t, l, 0); !bytes.Equal(got, all) {
						t.Fatalf("the old log reopened with %d bytes, had %d", len(got), len(all))
					}
					if len(l.Epochs()) != 2 && len(l.Epochs()) != 0 {
						t.Fatalf("the old log reopened with epochs %v", l.Epochs())
					}
				case start == end && (end == oldEnd || end == to):
					if len(l.Epochs()) != 0 {
						t.Fatalf("empty log at %d with epochs %v", end, l.Epochs())
					}
				default:
					t.Fatalf("reopened as %d..%d; want the old 0..%d or empty at %d or %d", start, end, oldEnd, oldEnd, to)
				}
			})
		}
	}
}
