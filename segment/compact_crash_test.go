package segment

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// crashFS is MemFS that dies at its nth mutating operation: that
// operation and every later one fail without effect, as if the machine
// lost power just before it. The test then crashes the MemFS (Crash or
// CrashTorn) and opens the folder again.
type crashFS struct {
	mem   *MemFS
	mu    sync.Mutex
	n     int // mutating operations so far
	at    int // the operation that dies; 0: never
	dead  bool
	trace []string
}

var errPowerCut = errors.New("power cut")

func (c *crashFS) step(op, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return &fsError{op, name, errPowerCut}
	}
	c.n++
	if c.at != 0 && c.n >= c.at {
		c.dead = true
		return &fsError{op, name, errPowerCut}
	}
	c.trace = append(c.trace, op+" "+name)
	return nil
}

func (c *crashFS) Create(name string) (File, error) {
	if err := c.step("create", name); err != nil {
		return nil, err
	}
	f, err := c.mem.Create(name)
	if err != nil {
		return nil, err
	}
	return &crashFile{File: f, fs: c, name: name}, nil
}

func (c *crashFS) Open(name string) (File, error) {
	f, err := c.mem.Open(name)
	if err != nil {
		return nil, err
	}
	return &crashFile{File: f, fs: c, name: name}, nil
}

func (c *crashFS) Remove(name string) error {
	if err := c.step("remove", name); err != nil {
		return err
	}
	return c.mem.Remove(name)
}

func (c *crashFS) Rename(o, n string) error {
	if err := c.step("rename", o+" -> "+n); err != nil {
		return err
	}
	return c.mem.Rename(o, n)
}

func (c *crashFS) ReadDir(dir string) ([]DirEntry, error) { return c.mem.ReadDir(dir) }
func (c *crashFS) MkdirAll(dir string) error              { return c.mem.MkdirAll(dir) }
func (c *crashFS) SyncDir(dir string) error {
	if err := c.step("syncdir", dir); err != nil {
		return err
	}
	return c.mem.SyncDir(dir)
}

type crashFile struct {
	File
	fs   *crashFS
	name string
}

func (f *crashFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fs.step("write", f.name); err != nil {
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

func (f *crashFile) Datasync() error {
	if err := f.fs.step("fdatasync", f.name); err != nil {
		return err
	}
	return f.File.Datasync()
}

func (f *crashFile) Truncate(size int64) error {
	if err := f.fs.step("truncate", f.name); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *crashFile) Allocate(size int64) error {
	if err := f.fs.step("allocate", f.name); err != nil {
		return err
	}
	return f.File.Allocate(size)
}

// crashWorkload builds the same log on fs every time: several closed
// segments of overwritten keys (one segment whose keys are all
// overwritten later, so that it is removed whole), lz4 and plain frames,
// keyless records, a tombstone, and an active segment.
func crashWorkload(t tb, fs FS, now *int64) ([]kv, *Log) {
	l := mustOpen(t, "/p", compactLogConfig(fs, now))
	var written []kv
	for r := 0; r < 3; r++ {
		for k := 0; k < 6; k++ {
			written = append(written, appendKeyed(t, l, uint16(k%2), []kv{
				{key: key(k), value: []byte(fmt.Sprintf("v%d-%d", r, k))},
				{key: key(k + 10), value: []byte(fmt.Sprintf("w%d-%d", r, k))},
			})...)
		}
		if r == 1 {
			written = append(written, appendKeyed(t, l, 0, []kv{{key: nil, value: []byte("keyless")}, {key: key(3), value: nil}})...)
		}
		if err := l.Roll(); err != nil {
			t.Fatalf("roll: %v", err)
		}
	}
	written = append(written, appendKeyed(t, l, 0, []kv{{key: key(0), value: []byte("active")}})...)
	return written, l
}

// rangeRecords are the records of recs with offsets in [from, to).
func rangeRecords(recs []kv, from, to int64) []kv {
	var out []kv
	for _, r := range recs {
		if r.offset >= from && r.offset < to {
			out = append(out, r)
		}
	}
	return out
}

func recordsEqual(a, b []kv) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].offset != b[i].offset || string(a[i].key) != string(b[i].key) || string(a[i].value) != string(b[i].value) || (a[i].value == nil) != (b[i].value == nil) {
			return false
		}
	}
	return true
}

// TestCompactCrashAtEveryStep cuts the power at every mutating operation
// of a compaction round (writing and syncing the cleaned files, each
// rename and folder sync of the swap, the cleaner's checkpoint), with
// clean and torn crashes, and checks that the reopened log holds, for
// every segment, either its records before the round or after it, never
// loses a record the cleaner was not allowed to remove, and compacts to
// the same result afterwards.
func TestCompactCrashAtEveryStep(t *testing.T) {
	now := int64(1000)
	cc := compactConfig()
	// The reference: the same round without a crash.
	ref := NewMemFS()
	written, l := crashWorkload(t, ref, &now)
	before := readRecords(t, l)
	bases := l.SegmentBases()
	end := l.End()
	if _, err := l.Compact(cc, now, -1); err != nil {
		t.Fatal(err)
	}
	after := readRecords(t, l)
	if len(l.SegmentBases()) >= len(bases) {
		t.Fatalf("the workload removes no segment: %v then %v", bases, l.SegmentBases())
	}
	l.Close()
	// The active segment's record is not the cleaner's to see.
	closedWritten, active := written[:len(written)-1], written[len(written)-1:]
	sameRecords(t, "reference", append([]kv(nil), after...), append(latestByKey(closedWritten), active...))

	steps := 0
	for at := 1; ; at++ {
		for _, torn := range []bool{false, true} {
			mem := NewMemFS()
			cfs := &crashFS{mem: mem}
			_, l := crashWorkload(t, cfs, &now)
			cfs.mu.Lock()
			cfs.at = cfs.n + at
			cfs.mu.Unlock()
			_, err := l.Compact(cc, now, -1)
			cfs.mu.Lock()
			dead := cfs.dead
			cfs.mu.Unlock()
			if !dead {
				if err != nil {
					t.Fatalf("step %d: round failed without a crash: %v", at, err)
				}
				if steps = at - 1; steps < 10 {
					t.Fatalf("a round of only %d steps", steps)
				}
				t.Logf("crashed at each of %d steps of the round", steps)
				return
			}
			l.Close()
			if torn {
				mem.CrashTorn(uint64(at))
			} else {
				mem.Crash()
			}
			l2, err := Open("/p", compactLogConfig(mem, &now))
			if err != nil {
				t.Fatalf("step %d (torn %v): reopen: %v", at, torn, err)
			}
			got := readRecords(t, l2)
			if l2.End() != end {
				t.Fatalf("step %d: end %d after the crash, want %d", at, l2.End(), end)
			}
			for i, b := range bases {
				next := end
				if i+1 < len(bases) {
					next = bases[i+1]
				}
				g := rangeRecords(got, b, next)
				if !recordsEqual(g, rangeRecords(before, b, next)) && !recordsEqual(g, rangeRecords(after, b, next)) {
					t.Fatalf("step %d (torn %v): segment %d holds %v:\nneither %v\nnor %v", at, torn, b, g,
						rangeRecords(before, b, next), rangeRecords(after, b, next))
				}
			}
			if err := l2.CheckConsistency(); err != nil {
				t.Fatalf("step %d: %v", at, err)
			}
			// The log goes on: a round from here ends where the
			// uninterrupted one did.
			for round := 0; round < 4; round++ {
				if _, err := l2.Compact(cc, now, -1); err != nil {
					t.Fatalf("step %d: round after the crash: %v", at, err)
				}
			}
			sameRecords(t, fmt.Sprintf("step %d: compacted after the crash", at), readRecords(t, l2), append([]kv(nil), after...))
			if _, err := l2.Append(keyedFrame(t, 0, []kv{{key: key(1), value: []byte("x")}})); err != nil {
				t.Fatalf("step %d: append after the crash: %v", at, err)
			}
			l2.Close()
		}
	}
}
