package segment

import (
	"fmt"
	"io"
	"sync"
	"syscall"
)

// errFS is an error-injecting FS over MemFS, in the manner of pebble's
// errorfs: it fails the Nth operation of one kind (a data or index sync, a
// folder sync, a write, a short write, an allocate, a rename, a truncate, a
// create) once, and passes everything else through. A failed Datasync also
// makes MemFS forget the file's unsynced writes (LoseUnsynced), so a log
// that retried the sync and then acknowledged would be caught by the crash
// that follows.
type errFS struct {
	mem   *MemFS
	mu    sync.Mutex // the log syncs outside its own lock
	kind  faultKind
	left  int // operations of kind still to pass before the one that fails
	fired bool
	// firedOn is the file (or folder) the fault hit.
	firedOn string
	// beforeSync, when set, runs at the start of every Datasync, outside
	// the MemFS lock (a test holds a sync there while waiters queue up).
	beforeSync func()
}

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

// errInjected is what an injected fault returns: EIO, as a failing disk
// does (ENOSPC for allocate and short writes, as a full one does).
var errInjected = syscall.EIO

var _ FS = (*errFS)(nil)

func newErrFS(mem *MemFS, kind faultKind, nth int) *errFS {
	return &errFS{mem: mem, kind: kind, left: nth - 1}
}

// hit reports whether this operation of kind k is the one that fails.
func (e *errFS) hit(k faultKind) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fired || k != e.kind {
		return false
	}
	if e.left > 0 {
		e.left--
		return false
	}
	e.fired = true
	return true
}

// hitOn is hit for an operation on the file or folder name, which it
// records when the fault fires.
func (e *errFS) hitOn(k faultKind, name string) bool {
	if !e.hit(k) {
		return false
	}
	e.mu.Lock()
	e.firedOn = name
	e.mu.Unlock()
	return true
}

// firedOnFile is the name firedOn recorded.
func (e *errFS) firedOnFile() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.firedOn
}

// arm makes the nth operation of kind from now on fail.
func (e *errFS) arm(kind faultKind, nth int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kind, e.left, e.fired = kind, nth-1, false
}

// disarm stops injecting (for the reopen after the crash).
func (e *errFS) disarm() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kind = faultNone
}

// hasFired reports whether the fault was injected.
func (e *errFS) hasFired() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fired
}

func (e *errFS) Create(name string) (File, error) {
	if e.hitOn(faultCreate, name) {
		return nil, &fsError{"create", name, errInjected}
	}
	f, err := e.mem.Create(name)
	if err != nil {
		return nil, err
	}
	return &errFile{File: f, fs: e, name: name}, nil
}

func (e *errFS) Open(name string) (File, error) {
	f, err := e.mem.Open(name)
	if err != nil {
		return nil, err
	}
	return &errFile{File: f, fs: e, name: name}, nil
}

func (e *errFS) Remove(name string) error { return e.mem.Remove(name) }

func (e *errFS) Rename(oldName, newName string) error {
	if e.hitOn(faultRename, oldName) {
		return &fsError{"rename", oldName, errInjected}
	}
	return e.mem.Rename(oldName, newName)
}

func (e *errFS) ReadDir(dir string) ([]DirEntry, error) { return e.mem.ReadDir(dir) }
func (e *errFS) MkdirAll(dir string) error              { return e.mem.MkdirAll(dir) }

func (e *errFS) SyncDir(dir string) error {
	if e.hitOn(faultDirSync, dir) {
		return &fsError{"syncdir", dir, errInjected}
	}
	return e.mem.SyncDir(dir)
}

type fsError struct {
	op, name string
	err      error
}

func (e *fsError) Error() string { return fmt.Sprintf("injected %s %s: %v", e.op, e.name, e.err) }
func (e *fsError) Unwrap() error { return e.err }

type errFile struct {
	File
	fs   *errFS
	name string
}

func (f *errFile) WriteAt(b []byte, off int64) (int, error) {
	if f.fs.hitOn(faultWrite, f.name) {
		return 0, &fsError{"write", f.name, errInjected}
	}
	if len(b) > 1 && f.fs.hitOn(faultShortWrite, f.name) {
		// Part of the buffer reaches the file, then the disk is full.
		n, err := f.File.WriteAt(b[:len(b)/2], off)
		if err == nil {
			err = &fsError{"write", f.name, syscall.ENOSPC}
		}
		return n, err
	}
	return f.File.WriteAt(b, off)
}

func (f *errFile) Datasync() error {
	if f.fs.beforeSync != nil {
		f.fs.beforeSync()
	}
	if f.fs.hitOn(faultSync, f.name) {
		f.fs.mem.LoseUnsynced(f.File)
		return &fsError{"fdatasync", f.name, errInjected}
	}
	return f.File.Datasync()
}

func (f *errFile) Allocate(size int64) error {
	if f.fs.hitOn(faultAllocate, f.name) {
		return &fsError{"fallocate", f.name, syscall.ENOSPC}
	}
	return f.File.Allocate(size)
}

func (f *errFile) Truncate(size int64) error {
	if f.fs.hitOn(faultTruncate, f.name) {
		return &fsError{"ftruncate", f.name, errInjected}
	}
	return f.File.Truncate(size)
}

var _ io.WriterAt = (*errFile)(nil)
