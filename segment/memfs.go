package segment

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"sort"
	"sync"
)

// MemFS is an in-memory FS that can simulate a machine crash. Each file has
// its current contents (what the page cache would hold) and its durable
// contents (as of its last Datasync); each directory has its current entries
// and its durable entries (as of its last SyncDir). Crash throws away
// everything that was not made durable, as a power cut would.
//
// Mapped memory aliases the current contents, so writes through a mapping
// are seen by ReadAt and become durable on Datasync, as with a shared mmap.
type MemFS struct {
	mu      sync.Mutex
	files   map[string]*memNode            // current namespace, by clean path
	durable map[string]map[string]*memNode // dir -> name -> node, as of SyncDir
	dirs    map[string]bool
	nextFd  uintptr

	// Counters for tests that check how much work an operation did.
	Reads      int64
	ReadBytes  int64
	Writes     int64
	Datasyncs  int64
	DirSyncs   int64
	MapsLive   int64
	MapsOpened int64
}

type memNode struct {
	data   []byte
	synced []byte
	mapped bool
	// lost is set once a Datasync of the file failed (LoseUnsynced): the
	// pages that were dirty then were marked clean without reaching the
	// disk, as Linux does after an fdatasync error, so a later successful
	// Datasync does not make them durable unless they are written again.
	lost *lostPages
}

// lostPages is a file's current and durable contents at a failed sync.
type lostPages struct {
	data, synced []byte
}

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS {
	return &MemFS{
		files:   make(map[string]*memNode),
		durable: make(map[string]map[string]*memNode),
		dirs:    map[string]bool{"/": true, ".": true},
		nextFd:  1000,
	}
}

var _ FS = (*MemFS)(nil)

func (m *MemFS) errNotExist(op, name string) error {
	return &os.PathError{Op: op, Path: name, Err: os.ErrNotExist}
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	if !m.dirs[path.Dir(name)] {
		return nil, m.errNotExist("create", name)
	}
	n := &memNode{}
	m.files[name] = n
	m.nextFd++
	return &memFile{fs: m, n: n, name: name, fd: m.nextFd}, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	n, ok := m.files[name]
	if !ok {
		return nil, m.errNotExist("open", name)
	}
	m.nextFd++
	return &memFile{fs: m, n: n, name: name, fd: m.nextFd}, nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	if _, ok := m.files[name]; !ok {
		return m.errNotExist("remove", name)
	}
	delete(m.files, name)
	return nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldName, newName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	oldName, newName = path.Clean(oldName), path.Clean(newName)
	n, ok := m.files[oldName]
	if !ok {
		return m.errNotExist("rename", oldName)
	}
	delete(m.files, oldName)
	m.files[newName] = n
	return nil
}

// MkdirAll implements FS. Directories themselves are durable at once.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := path.Clean(dir); !m.dirs[d]; d = path.Dir(d) {
		m.dirs[d] = true
	}
	return nil
}

// ReadDir implements FS.
func (m *MemFS) ReadDir(dir string) ([]DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = path.Clean(dir)
	if !m.dirs[dir] {
		return nil, m.errNotExist("readdir", dir)
	}
	var out []DirEntry
	for name, n := range m.files {
		if path.Dir(name) == dir {
			out = append(out, DirEntry{Name: path.Base(name), Size: int64(len(n.data))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = path.Clean(dir)
	if !m.dirs[dir] {
		return m.errNotExist("syncdir", dir)
	}
	m.DirSyncs++
	ents := make(map[string]*memNode)
	for name, n := range m.files {
		if path.Dir(name) == dir {
			ents[path.Base(name)] = n
		}
	}
	m.durable[dir] = ents
	return nil
}

// Crash simulates a power cut: afterwards the namespace holds only durable
// directory entries, each file holds only its durable contents, and every
// handle and mapping from before is detached from the files.
func (m *MemFS) Crash() { m.crash(nil) }

// CrashTorn is Crash where unsynced writes were partly written back: for
// each file a random cut is chosen, and bytes before it come from the
// current contents, bytes after it from the durable ones, as when writeback
// stops part way through a file.
func (m *MemFS) CrashTorn(seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	m.crash(r)
}

func tear(n *memNode, r *rand.Rand) []byte {
	if r == nil {
		return append([]byte(nil), n.synced...)
	}
	cut := r.IntN(len(n.data) + 1)
	out := make([]byte, max(len(n.synced), cut))
	copy(out, n.data[:cut])
	if cut < len(n.synced) {
		copy(out[cut:], n.synced[cut:])
	}
	return out
}

func (m *MemFS) crash(r *rand.Rand) {
	m.mu.Lock()
	defer m.mu.Unlock()
	files := make(map[string]*memNode)
	seen := make(map[*memNode]*memNode)
	for _, dir := range sortedKeys(m.durable) {
		ents := m.durable[dir]
		for _, name := range sortedKeys(ents) {
			n := ents[name]
			c, ok := seen[n]
			if !ok {
				c = &memNode{data: tear(n, r)}
				c.synced = append([]byte(nil), c.data...)
				seen[n] = c
			}
			files[path.Join(dir, name)] = c
		}
	}
	m.files = files
	durable := make(map[string]map[string]*memNode)
	for dir, ents := range m.durable {
		d := make(map[string]*memNode)
		for name, n := range ents {
			d[name] = seen[n]
		}
		durable[dir] = d
	}
	m.durable = durable
	m.MapsLive = 0
}

// FileBytes returns a copy of a file's current contents (for tests that
// corrupt or inspect files).
func (m *MemFS) FileBytes(name string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.files[path.Clean(name)]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), n.data...), true
}

type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	fd     uintptr
	mapped bool
	closed bool
}

func (f *memFile) check(op string) error {
	if f.closed {
		return &os.PathError{Op: op, Path: f.name, Err: os.ErrClosed}
	}
	return nil
}

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("segment: memfs read %s at negative offset %d", f.name, off)
	}
	f.fs.Reads++
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(b, f.n.data[off:])
	f.fs.ReadBytes += int64(k)
	if k < len(b) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("segment: memfs write %s at negative offset %d", f.name, off)
	}
	end := off + int64(len(b))
	if end > int64(len(f.n.data)) {
		if f.n.mapped {
			return 0, fmt.Errorf("segment: memfs cannot grow mapped file %s", f.name)
		}
		f.n.data = growTo(f.n.data, end)
	}
	f.fs.Writes++
	return copy(f.n.data[off:], b), nil
}

func growTo(b []byte, size int64) []byte {
	if int64(cap(b)) >= size {
		old := len(b)
		b = b[:size]
		clear(b[old:])
		return b
	}
	nb := make([]byte, size, size+size/4)
	copy(nb, b)
	return nb
}

func (f *memFile) Datasync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("datasync"); err != nil {
		return err
	}
	f.fs.Datasyncs++
	n := f.n
	if n.lost == nil {
		n.synced = append(n.synced[:0], n.data...)
		return nil
	}
	// A byte still holding what it held at the failed sync is on a page
	// the kernel considers clean: the disk keeps what it had then.
	synced := make([]byte, len(n.data))
	for i, c := range n.data {
		synced[i] = c
		if i < len(n.lost.data) && c == n.lost.data[i] {
			synced[i] = 0
			if i < len(n.lost.synced) {
				synced[i] = n.lost.synced[i]
			}
		}
	}
	n.synced = synced
	return nil
}

// LoseUnsynced models a failed fdatasync of the file f (which must come
// from this MemFS): what was written since the last successful Datasync
// never reaches the disk, and a later Datasync does not bring it back
// unless it is written again (the "fsyncgate" behaviour of Linux, which
// marks the dirty pages clean after reporting the error).
func (m *MemFS) LoseUnsynced(f File) {
	mf := f.(*memFile)
	m.mu.Lock()
	defer m.mu.Unlock()
	n := mf.n
	if n.lost == nil {
		n.lost = &lostPages{data: append([]byte(nil), n.data...), synced: append([]byte(nil), n.synced...)}
	}
}

func (f *memFile) Allocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("allocate"); err != nil {
		return err
	}
	if size > int64(len(f.n.data)) {
		if f.n.mapped {
			return fmt.Errorf("segment: memfs cannot grow mapped file %s", f.name)
		}
		f.n.data = growTo(f.n.data, size)
	}
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate"); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("segment: memfs truncate %s to %d", f.name, size)
	}
	if f.n.mapped && size != int64(len(f.n.data)) {
		return fmt.Errorf("segment: memfs cannot resize mapped file %s", f.name)
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size:size]
		return nil
	}
	f.n.data = growTo(f.n.data, size)
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat"); err != nil {
		return 0, err
	}
	return int64(len(f.n.data)), nil
}

func (f *memFile) Map(size int) ([]byte, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("map"); err != nil {
		return nil, err
	}
	if f.mapped || size <= 0 || size > len(f.n.data) {
		return nil, fmt.Errorf("segment: memfs cannot map %d bytes of %s (%d bytes long)", size, f.name, len(f.n.data))
	}
	f.mapped = true
	f.n.mapped = true
	f.fs.MapsLive++
	f.fs.MapsOpened++
	return f.n.data[:size:size], nil
}

func (f *memFile) Fd() uintptr { return f.fd }

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("close"); err != nil {
		return err
	}
	if f.mapped {
		f.n.mapped = false
		f.fs.MapsLive--
	}
	f.closed = true
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
