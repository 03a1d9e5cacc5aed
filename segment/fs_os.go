package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// OSFS is the real filesystem: pwrite, fdatasync, fallocate and mmap through
// golang.org/x/sys/unix.
type OSFS struct{}

var _ FS = OSFS{}

const filePerm = 0o644
const dirPerm = 0o755

// Create implements FS.
func (OSFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

// Open implements FS.
func (OSFS) Open(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OSFS) Rename(oldName, newName string) error { return os.Rename(oldName, newName) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, dirPerm) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, 0, len(ents))
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out = append(out, DirEntry{Name: e.Name(), Size: info.Size()})
	}
	return out, nil
}

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct {
	f   *os.File
	mem []byte
}

func (o *osFile) ReadAt(b []byte, off int64) (int, error)  { return o.f.ReadAt(b, off) }
func (o *osFile) WriteAt(b []byte, off int64) (int, error) { return o.f.WriteAt(b, off) }
func (o *osFile) Fd() uintptr                              { return o.f.Fd() }

func (o *osFile) Datasync() error {
	for {
		err := unix.Fdatasync(int(o.f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// Allocate allocates blocks for [0, size) even where the file is already
// that long but sparse (an index file), extending it if it is shorter.
// fallocate skips blocks already allocated, and keeps the data in them.
func (o *osFile) Allocate(size int64) error {
	if size <= 0 {
		return nil
	}
	err := unix.Fallocate(int(o.f.Fd()), 0, 0, size)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		// Filesystems without fallocate still get a file of the right size;
		// only the up-front block reservation is lost.
		cur, serr := o.Size()
		if serr != nil || cur >= size {
			return serr
		}
		return o.f.Truncate(size)
	}
	return err
}

func (o *osFile) Truncate(size int64) error { return o.f.Truncate(size) }

func (o *osFile) Size() (int64, error) {
	st, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (o *osFile) Map(size int) ([]byte, error) {
	if o.mem != nil {
		return nil, fmt.Errorf("segment: %s is already mapped", o.f.Name())
	}
	if size <= 0 {
		return nil, fmt.Errorf("segment: cannot map %d bytes of %s", size, o.f.Name())
	}
	m, err := unix.Mmap(int(o.f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("segment: mmap %s: %w", o.f.Name(), err)
	}
	o.mem = m
	return m, nil
}

func (o *osFile) Close() error {
	var err error
	if o.mem != nil {
		err = unix.Munmap(o.mem)
		o.mem = nil
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	return err
}
