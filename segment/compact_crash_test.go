package segment

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/strata-db/strata/schema"
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
	// dirOpsDurable makes every creation, removal and rename durable at
	// once (a folder fsync after each), so that a crash finds the folder
	// at every point of a sequence of renames, not only at its fsyncs:
	// as a journaling filesystem that commits renames in order may.
	dirOpsDurable bool
}

func (c *crashFS) dirOp(dir string) {
	if c.dirOpsDurable {
		c.mem.SyncDir(dir)
	}
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
	c.dirOp(filepath.Dir(name))
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
	err := c.mem.Remove(name)
	c.dirOp(filepath.Dir(name))
	return err
}

func (c *crashFS) Rename(o, n string) error {
	if err := c.step("rename", o+" -> "+n); err != nil {
		return err
	}
	err := c.mem.Rename(o, n)
	c.dirOp(filepath.Dir(n))
	return err
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
// overwritten later, so that it is removed whole, after one that is
// kept), lz4 and plain frames,
// keyless records, a tombstone, and an active segment.
func crashWorkload(t tb, fs FS, now *int64) ([]kv, *Log) {
	l := mustOpen(t, "/p", compactLogConfig(fs, now))
	var written []kv
	// A first segment that keeps its records, then one all of whose
	// records later ones supersede: it is removed, and the one before it
	// then ends short of the next.
	for k := 0; k < 4; k++ {
		written = append(written, appendKeyed(t, l, 0, []kv{{key: key(200 + k), value: bytes.Repeat([]byte{'f'}, 100)}})...)
	}
	if err := l.Roll(); err != nil {
		t.Fatalf("roll: %v", err)
	}
	for k := 0; k < 6; k++ {
		written = append(written, appendKeyed(t, l, 0, []kv{{key: key(k), value: []byte("old")}})...)
	}
	if err := l.Roll(); err != nil {
		t.Fatalf("roll: %v", err)
	}
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
		if r < 2 {
			// Keys nothing supersedes: the cleaned segments keep
			// enough frames to have offset index entries, which must
			// never be paired with the other version's data.
			for k := 0; k < 4; k++ {
				written = append(written, appendKeyed(t, l, 0, []kv{{key: key(100 + 10*r + k), value: bytes.Repeat([]byte{'u'}, 100)}})...)
			}
		}
		if err := l.Roll(); err != nil {
			t.Fatalf("roll: %v", err)
		}
	}
	written = append(written, appendKeyed(t, l, 0, []kv{{key: key(0), value: []byte("active")}})...)
	return written, l
}

// readEveryOffset starts a read at every offset of the log, so that every
// segment's offset index is loaded and used (a sequential read uses only
// the first segment's), and checks that each finds the first record at
// or after its offset.
func readEveryOffset(t tb, l *Log, recs []kv) {
	t.Helper()
	for off := l.LogStart(); off < l.End(); off++ {
		l2 := mustReadFrom(t, l, off)
		i := sort.Search(len(recs), func(i int) bool { return recs[i].offset >= off })
		if i < len(recs) && (len(l2) == 0 || l2[0].offset != recs[i].offset) {
			t.Fatalf("a read at %d finds %v, want %v", off, l2, recs[i])
		}
	}
}

// mustReadFrom reads the first frames from offset and returns their
// records at or after it.
func mustReadFrom(t tb, l *Log, offset int64) []kv {
	t.Helper()
	spans, err := l.Read(offset, 1<<20, -1)
	if err != nil {
		t.Fatalf("read at %d: %v", offset, err)
	}
	b, err := l.ReadSpans(nil, spans)
	if err != nil {
		t.Fatalf("read at %d: %v", offset, err)
	}
	var out []kv
	var rd schema.BatchReader
	for _, f := range splitFrames(t, b) {
		if err := rd.Reset(f); err != nil {
			t.Fatalf("read at %d: %v", offset, err)
		}
		var v schema.RecordView
		for rd.Next(&v) {
			if v.Offset >= offset {
				out = append(out, kv{offset: v.Offset})
			}
		}
	}
	return out
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
// the same result afterwards. A third mode makes every folder change
// durable as it happens, so the crash also lands between two renames of
// one swap step.
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
		for mode := 0; mode < 3; mode++ {
			torn := mode == 1
			mem := NewMemFS()
			cfs := &crashFS{mem: mem, dirOpsDurable: mode == 2}
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
			readEveryOffset(t, l2, got)
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
