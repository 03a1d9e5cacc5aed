package ringlog

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

// crashFS is a layer over the real filesystem (segment.OSFS) that keeps
// what a power cut would leave, and injects faults. The files are real, so
// the ring writes and syncs them with their own descriptors; alongside,
// crashFS keeps each file's durable contents (read back from the file at
// every fdatasync, the synchronous driver's or one the ring is about to
// submit) and each folder's durable entries (at every folder fsync).
// Crash closes nothing of the log's (the test does) and rewrites the folder
// to exactly its durable state.
//
// Faults, like segment's errFS: the Nth operation of one kind fails once.
// Ring I/O fails through ioFaults with a descriptor the kernel refuses
// (-EBADF in the CQE); a short ring write is a shorter buffer, after which
// the resubmitted rest fails. A failed fdatasync, of either path, loses the
// file's unsynced bytes for good, as Linux may after an fdatasync error: a
// later successful sync keeps the old durable bytes wherever the file
// still holds what it held at the failure.
type crashFS struct {
	mu      sync.Mutex
	names   map[string]*shadowFile            // current namespace, by clean path
	durable map[string]map[string]*shadowFile // folder -> name -> file, as of its last fsync
	byFd    map[int]*shadowFile

	kind    faultKind
	left    int
	fired   bool
	firedOn string // the file or folder the fault hit; "" for ring I/O
}

type shadowFile struct {
	fd     int    // an open descriptor of the file, to read it back
	synced []byte // durable contents
	lost   *lostBytes
}

type lostBytes struct{ data, synced []byte }

type faultKind int

const (
	faultNone faultKind = iota
	faultSync
	faultDirSync
	faultWrite
	faultShortWrite
	faultAllocate
	faultRename
	faultTruncate
	faultCreate
	faultKinds
)

func (k faultKind) String() string {
	return [...]string{"none", "sync", "dirsync", "write", "shortwrite", "allocate", "rename", "truncate", "create"}[k]
}

var (
	_ DescriptorFS = (*crashFS)(nil)
	_ ioFaults     = (*crashFS)(nil)
)

func newCrashFS(kind faultKind, nth int) *crashFS {
	return &crashFS{
		names: make(map[string]*shadowFile), durable: make(map[string]map[string]*shadowFile),
		byFd: make(map[int]*shadowFile), kind: kind, left: nth - 1,
	}
}

func (c *crashFS) RealDescriptors() {}

func (c *crashFS) hit(k faultKind) bool {
	if c.fired || k != c.kind {
		return false
	}
	if c.left > 0 {
		c.left--
		return false
	}
	c.fired = true
	return true
}

// hitOn is hit for an operation on a named file or folder, recording it.
func (c *crashFS) hitOn(k faultKind, name string) bool {
	if !c.hit(k) {
		return false
	}
	c.firedOn = name
	return true
}

func (c *crashFS) firedOnFile() string { c.mu.Lock(); defer c.mu.Unlock(); return c.firedOn }

func (c *crashFS) hasFired() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.fired }

func injected(op, name string, err syscall.Errno) error {
	return &os.PathError{Op: "injected " + op, Path: name, Err: err}
}

// contents reads a file back through its descriptor.
func (sf *shadowFile) contents() []byte {
	var st unix.Stat_t
	if err := unix.Fstat(sf.fd, &st); err != nil {
		panic(fmt.Sprintf("crashfs: fstat: %v", err))
	}
	b := make([]byte, st.Size)
	if n, err := unix.Pread(sf.fd, b, 0); err != nil || n != len(b) {
		panic(fmt.Sprintf("crashfs: pread %d bytes: %d, %v", len(b), n, err))
	}
	return b
}

// synced makes the file's current contents durable, except bytes lost at
// a failed sync and not written since.
func (sf *shadowFile) sync() {
	data := sf.contents()
	if sf.lost != nil {
		for i := range data {
			if i < len(sf.lost.data) && data[i] == sf.lost.data[i] {
				data[i] = 0
				if i < len(sf.lost.synced) {
					data[i] = sf.lost.synced[i]
				}
			}
		}
	}
	sf.synced = data
}

func (sf *shadowFile) failSync() {
	if sf.lost == nil {
		sf.lost = &lostBytes{data: sf.contents(), synced: append([]byte(nil), sf.synced...)}
	}
}

// track notes an opened or created file. A name already known is the same
// file (O_TRUNC keeps the inode, and its durable contents, of a file that
// exists already); renames and removals keep names current.
func (c *crashFS) track(name string, f segment.File) *shadowFile {
	fd := int(f.Fd())
	sf := c.names[name]
	if sf == nil {
		sf = &shadowFile{fd: fd}
		c.names[name] = sf
	}
	if sf.fd < 0 {
		sf.fd = fd
	}
	c.byFd[fd] = sf
	return sf
}

func (c *crashFS) Create(name string) (segment.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name = filepath.Clean(name)
	if c.hitOn(faultCreate, name) {
		return nil, injected("create", name, syscall.EIO)
	}
	f, err := segment.OSFS{}.Create(name)
	if err != nil {
		return nil, err
	}
	return &crashFile{File: f, fs: c, sf: c.track(name, f), name: name}, nil
}

func (c *crashFS) Open(name string) (segment.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name = filepath.Clean(name)
	f, err := segment.OSFS{}.Open(name)
	if err != nil {
		return nil, err
	}
	return &crashFile{File: f, fs: c, sf: c.track(name, f), name: name}, nil
}

func (c *crashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	name = filepath.Clean(name)
	if err := os.Remove(name); err != nil {
		return err
	}
	delete(c.names, name)
	return nil
}

func (c *crashFS) Rename(oldName, newName string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	oldName, newName = filepath.Clean(oldName), filepath.Clean(newName)
	if c.hitOn(faultRename, oldName) {
		return injected("rename", oldName, syscall.EIO)
	}
	if err := os.Rename(oldName, newName); err != nil {
		return err
	}
	c.names[newName] = c.names[oldName]
	delete(c.names, oldName)
	return nil
}

func (c *crashFS) ReadDir(dir string) ([]segment.DirEntry, error) { return segment.OSFS{}.ReadDir(dir) }
func (c *crashFS) MkdirAll(dir string) error                      { return segment.OSFS{}.MkdirAll(dir) }

func (c *crashFS) SyncDir(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir = filepath.Clean(dir)
	if c.hitOn(faultDirSync, dir) {
		return injected("fsync", dir, syscall.EIO)
	}
	if err := (segment.OSFS{}).SyncDir(dir); err != nil {
		return err
	}
	ents := make(map[string]*shadowFile)
	for name, sf := range c.names {
		if filepath.Dir(name) == dir {
			ents[filepath.Base(name)] = sf
		}
	}
	c.durable[dir] = ents
	return nil
}

// write implements ioFaults for the ring's writes.
func (c *crashFS) write(fd int, pos int64, b []byte) (int, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hit(faultWrite) {
		return -1, b
	}
	if len(b) > 1 && c.hit(faultShortWrite) {
		// Half goes in; the rest, resubmitted, fails.
		c.kind, c.left, c.fired = faultWrite, 0, false
		return fd, b[:len(b)/2]
	}
	return fd, b
}

// sync implements ioFaults for the ring's fdatasyncs: the durable contents
// are taken as of submission (all a sync covers for sure).
func (c *crashFS) sync(fd int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	sf := c.byFd[fd]
	if sf == nil {
		panic(fmt.Sprintf("crashfs: sync of untracked descriptor %d", fd))
	}
	if c.hit(faultSync) {
		sf.failSync()
		return -1
	}
	sf.sync()
	return fd
}

// allocate implements ioFaults for the ring's fallocates: a failure counts
// as an allocate fault, like one of the synchronous path.
func (c *crashFS) allocate(fd int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hit(faultAllocate) {
		return -1
	}
	return fd
}

// crash rewrites dir to its durable state: files without a durable entry
// go, the others get their durable contents. The log's descriptors must be
// closed.
func (c *crashFS) crash(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir = filepath.Clean(dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	for name, sf := range c.durable[dir] {
		if err := os.WriteFile(filepath.Join(dir, name), sf.synced, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type crashFile struct {
	segment.File
	fs   *crashFS
	sf   *shadowFile
	name string
}

func (f *crashFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	fail := f.fs.hitOn(faultWrite, f.name)
	short := !fail && len(b) > 1 && f.fs.hitOn(faultShortWrite, f.name)
	f.fs.mu.Unlock()
	switch {
	case fail:
		return 0, injected("write", f.name, syscall.EIO)
	case short:
		n, err := f.File.WriteAt(b[:len(b)/2], off)
		if err == nil {
			err = injected("write", f.name, syscall.ENOSPC)
		}
		return n, err
	}
	return f.File.WriteAt(b, off)
}

func (f *crashFile) Datasync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.fs.hitOn(faultSync, f.name) {
		f.sf.failSync()
		return injected("fdatasync", f.name, syscall.EIO)
	}
	if err := f.File.Datasync(); err != nil {
		return err
	}
	f.sf.sync()
	return nil
}

func (f *crashFile) Allocate(size int64) error {
	f.fs.mu.Lock()
	fail := f.fs.hitOn(faultAllocate, f.name)
	f.fs.mu.Unlock()
	if fail {
		return injected("fallocate", f.name, syscall.ENOSPC)
	}
	return f.File.Allocate(size)
}

func (f *crashFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	fail := f.fs.hitOn(faultTruncate, f.name)
	f.fs.mu.Unlock()
	if fail {
		return injected("ftruncate", f.name, syscall.EIO)
	}
	return f.File.Truncate(size)
}

func (f *crashFile) Close() error {
	f.fs.mu.Lock()
	fd := int(f.Fd())
	delete(f.fs.byFd, fd)
	if f.sf.fd == fd {
		f.sf.fd = -1
		for other, sf := range f.fs.byFd {
			if sf == f.sf {
				f.sf.fd = other
				break
			}
		}
	}
	f.fs.mu.Unlock()
	return f.File.Close()
}
