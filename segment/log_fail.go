package segment

import (
	"errors"
	"fmt"
)

// Fail-stop. After an fdatasync error the kernel may already have marked
// the dirty pages clean (or dropped them), so a second fdatasync can succeed
// without the data ever reaching the disk: retrying and then acknowledging
// would acknowledge lost data. The same holds for a failed write, fallocate,
// truncate, rename or folder sync on the partition's files: what is on disk
// is no longer known. So the first such error takes the log offline: it is
// kept, wrapped in ErrStorageFailed, and every later append, flush, roll,
// truncation, retention pass and read returns it; group-commit waiters
// whose sync had not completed fail with it; the recovery point and the
// checkpoint never move again. Close only closes the files. Opening the
// folder again recovers whatever actually reached the disk.

// fail records err as the log's storage failure (the first one wins) and
// returns the sticky error. The caller holds the lock.
func (l *Log) fail(err error) error {
	if l.failed == nil {
		if !errors.Is(err, ErrStorageFailed) {
			err = fmt.Errorf("%w: %w", ErrStorageFailed, err)
		}
		l.failed = err
		// Waiters for a sync that can no longer happen must wake.
		l.cond.Broadcast()
	}
	return l.failed
}

// usable is checked first by every operation: a closed or failed log does
// nothing. The caller holds the lock.
func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	return l.failed
}

// Err returns the storage failure that took the log offline (wrapping
// ErrStorageFailed and the original error), or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// Fail takes the log offline as if its own I/O had failed with err. A
// driver that runs the data path itself (segment/ringlog) calls it when a
// write or sync it submitted fails, so that the synchronous operations it
// still delegates here (rolls, checkpoints, truncation, retention, close)
// stop too: nothing may move the checkpoint past data whose sync failed.
func (l *Log) Fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail(err)
}
