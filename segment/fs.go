package segment

import "io"

// FS is the small filesystem surface the synchronous driver needs. It exists
// so that tests can swap the real filesystem for MemFS, which can simulate a
// crash, and so that every syscall the log makes is visible in one place.
type FS interface {
	// Create creates (or truncates) a file for reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing.
	Open(name string) (File, error)
	Remove(name string) error
	Rename(oldName, newName string) error
	// ReadDir lists the plain files of a directory with their sizes, so that
	// opening a partition learns every segment's size without opening it.
	ReadDir(dir string) ([]DirEntry, error)
	MkdirAll(dir string) error
	// SyncDir makes the directory's entries (creations, removals, renames)
	// durable.
	SyncDir(dir string) error
}

// DirEntry is one plain file of a directory.
type DirEntry struct {
	Name string
	Size int64
}

// File is an open file. Reads and writes are positional so that no file
// offset is shared state.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Datasync makes the file's data and size durable (fdatasync), including
	// pages written through a mapping from Map.
	Datasync() error
	// Allocate reserves blocks for the first size bytes (fallocate), also
	// where the file is already that long but sparse, extending it if it
	// is shorter; new bytes read as zeros, existing bytes are kept.
	Allocate(size int64) error
	Truncate(size int64) error
	Size() (int64, error)
	// Map maps the first size bytes of the file shared and writable. The file
	// must already be at least size bytes long. The mapping lives until
	// Close; a file is mapped at most once.
	Map(size int) ([]byte, error)
	// Fd is the descriptor a ring driver submits I/O against.
	Fd() uintptr
	Close() error
}
