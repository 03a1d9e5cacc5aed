package segment

import (
	"fmt"
	"path/filepath"
)

// ResetTo empties the log and starts it again at offset, with nothing below
// it: every segment is deleted, an empty one is created at offset, and the
// leader-epoch list is emptied (the frames its entries named are gone).
// It is for a follower whose log ends below its leader's log start, or
// whose divergence point with its leader lies below its own log start
// (retention or DeleteRecords on the leader removed the records it would
// fetch next), as Kafka's truncateFullyAndStartAt: the records it held
// are all below what the leader still serves, so the follower starts
// again at the leader's log start. The reset is durable when ResetTo
// returns.
//
// The steps are ordered so that a crash after any of them reopens a log
// that its replica machine resets again or accepts (docs/replication.md,
// "A follower below its leader's log start"): the epoch list is emptied
// first (the old frames then name no epoch), the checkpoint then records
// offset as the log start (the old segments reopen clamped to an empty
// log at their end), then the segments go and the new one is created (an
// empty folder reopens as an empty log at the checkpoint's start). A
// failure on the way takes the log offline: the old log is no longer what
// the core describes.
func (l *Log) ResetTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waitSync()
	if err := l.usable(); err != nil {
		return err
	}
	switch {
	case offset < 0:
		return fmt.Errorf("segment: reset to negative offset %d", offset)
	case l.core.pending > 0:
		return ErrAppendsPending
	case len(l.rolling) > 0:
		return fmt.Errorf("segment: reset while segment %d's roll is unfinished", l.rolling[0].base)
	}
	if err := l.writeEpochFile(nil); err != nil {
		return err
	}
	l.epochs = nil
	ck := checkpoint{logStart: offset, recoveryPoint: offset}
	if err := l.replaceFile(filepath.Join(l.dir, checkpointName), ck.AppendTo(nil)); err != nil {
		return l.fail(fmt.Errorf("segment: write checkpoint for reset to %d: %w", offset, err))
	}
	old := append([]*Segment(nil), l.core.segs...)
	for _, s := range old {
		l.closeDropped(s)
		if err := l.removeSegmentFiles(s.base); err != nil {
			return l.fail(fmt.Errorf("segment: reset to %d: %w", offset, err))
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("segment: reset to %d: sync folder: %w", offset, err))
	}
	files, off, tim, err := l.createSegment(offset)
	if err != nil {
		return l.fail(fmt.Errorf("segment: reset to %d: %w", offset, err))
	}
	if err := l.core.ResetTo(offset, off, tim, files); err != nil {
		files.close()
		return l.fail(fmt.Errorf("segment: reset to %d: %w", offset, err))
	}
	l.dirDirty = false
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("segment: reset to %d: sync folder: %w", offset, err))
	}
	l.checkpointLags = false
	return nil
}

// ResetTo replaces every segment with one empty active segment at base
// (Log.ResetTo): the log starts and ends at base, all of it durable.
func (c *Core) ResetTo(base int64, off, tim []byte, handle any) error {
	if c.pending > 0 {
		return ErrAppendsPending
	}
	if err := c.checkIndexSizes(off, tim); err != nil {
		return err
	}
	clear(c.segs)
	c.segs = append(c.segs[:0], c.newSegment(base, off, tim, handle))
	c.logStart, c.end, c.reservedNext, c.recoveryPoint = base, base, base, base
	c.gen++
	c.check()
	return nil
}
