package server

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// dataDirLockName is the file in a data folder that a broker holds an
// exclusive lock on while it runs.
const dataDirLockName = ".lock"

// lockDataDir takes an exclusive flock on the data folder's lock file, so
// that a second broker started on the same folder fails at once instead of
// writing the same partition logs and metadata log as the first. The lock
// belongs to the open file: closing it releases the lock, and so does the
// kernel when the process dies, so a crash leaves nothing to clean up.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, dataDirLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("server: data folder lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, fmt.Errorf("server: data folder %s is in use by another broker (%s is locked)", dir, path)
		}
		return nil, fmt.Errorf("server: lock %s: %w", path, err)
	}
	return f, nil
}
