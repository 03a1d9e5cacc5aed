package segment

import "fmt"

// Hooks for a driver that runs the data path itself (segment/ringlog, on a
// shard's io_uring). Such a driver opens the partition with Open, so that
// recovery, index loading, rolls, checkpoints, truncation, retention and
// cold reads stay here, and then appends, commits and syncs through the
// core on its own. It must be the log's only user, on one goroutine: the
// core has no lock of its own, and the Log's methods take the Log's lock but
// cannot see what the driver does with the core between calls.

// Core returns the log's core for a driver that runs the data path itself.
func (l *Log) Core() *Core { return l.core }

// DataFile returns a segment's open data file (opening it on first use, for
// trusted closed segments), so a driver can submit I/O against its Fd.
func (l *Log) DataFile(s *Segment) (File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return nil, err
	}
	return l.dataFile(s)
}

// IndexFiles returns a segment's open index files (offset, time), so that a
// driver can grow them with its own fallocates (see Growth). The active
// segment's are always open.
func (l *Log) IndexFiles(s *Segment) (off, tim File, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return nil, nil, err
	}
	files := s.Handle.(*segFiles)
	if files.off == nil || files.tim == nil {
		return nil, nil, fmt.Errorf("segment: index files of segment %d are not open", s.base)
	}
	return files.off, files.tim, nil
}

// BeginRoll closes the active segment and starts a new one at the log end,
// like a roll inside Append, but leaves the old segment's files unsynced:
// it returns them (data, offset index, time index) for the driver to sync
// however it likes, after which the driver calls FinishRoll. Every prepared
// append must be committed first, and the active segment must hold data.
func (l *Log) BeginRoll() (old *Segment, sync []File, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return nil, nil, err
	}
	if l.core.Active().size == 0 {
		// A new segment would take the empty one's name, and its files.
		return nil, nil, fmt.Errorf("segment: roll of empty segment %d", l.core.Active().base)
	}
	old, err = l.beginRoll()
	if err != nil {
		return nil, nil, err
	}
	return old, old.Handle.(*segFiles).syncFiles(), nil
}

// FinishRoll completes a roll begun with BeginRoll once the files it
// returned are synced: the folder is synced, the recovery point moves past
// the old segment and the checkpoint is rewritten. Rolls finish in the order
// they began, and before any truncation below the old segment's end.
func (l *Log) FinishRoll(old *Segment) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if old.next > l.core.End() {
		return fmt.Errorf("segment: finish roll of segment %d ending at %d past the log end %d", old.base, old.next, l.core.End())
	}
	return l.finishRoll(old)
}

// KeepDeletedDataFiles hands the driver, instead of closing it, the open
// data file of every segment that a deletion, retention pass or truncation
// removes, once the segment is out of the core and its files are unlinked
// (a trusted segment never read has no open data file and hands nothing).
// A driver whose reads name the file by descriptor in I/O that is still
// queued (a splice to a socket) closes it when that I/O is done; closing it
// at once would let the number be reused by another file under the
// kernel. fn runs with the log's lock held and must not call into the Log.
func (l *Log) KeepDeletedDataFiles(fn func(s *Segment, data File)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keepDeleted = fn
}

// IntervalMs is the interval of a FlushIntervalMs policy; ok is false for
// the other policies (compare those with FlushEveryAck and FlushNever).
func (p FlushPolicy) IntervalMs() (ms int64, ok bool) {
	return p.intervalMs, p.kind == flushInterval
}
