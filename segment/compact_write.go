package segment

import (
	"fmt"
)

// cleanedWriter writes one cleaned segment: its data file and both
// indexes, each named with cleanedSuffix, built with the same index rules
// as appends (Core.indexFrame), and with a closing time entry that covers
// the segment's whole offset range.
type cleanedWriter struct {
	l          *Log
	base, next int64
	dataMax    int64 // the original segment's size: the cleaned one is no larger
	th         *throttle
	ic         *Core // for its index rules only: holds the log's config, no segments
	seg        *Segment
	data       File
	size       int64
	failed     bool
}

func cleanedPath(p string) string { return p + cleanedSuffix }

func (w *cleanedWriter) add(frame []byte) error {
	if w.data == nil {
		f, err := w.l.fs.Create(cleanedPath(logPath(w.l.dir, w.base)))
		if err != nil {
			return err
		}
		w.data = f
		w.ic = &Core{cfg: w.l.cfg}
		// Bounds of the entries that much data can make (see
		// indexAllocateBytes): no larger than the original's.
		n := w.l.cfg.indexAllocateBytes(w.dataMax, offsetEntrySize)
		m := w.l.cfg.indexAllocateBytes(w.dataMax, timeEntrySize)
		w.seg = &Segment{base: w.base, next: w.base, idx: &segIndex{off: make([]byte, n), tim: make([]byte, m)}}
	}
	h, err := parseCheckedHeader(frame)
	if err != nil {
		return err
	}
	if _, err := w.data.WriteAt(frame, w.size); err != nil {
		return fmt.Errorf("segment: write cleaned segment %d at %d: %w", w.base, w.size, err)
	}
	w.th.did(&w.th.written, int64(len(frame)))
	w.ic.IndexFrame(w.seg, w.size, &h)
	w.size += int64(len(frame))
	w.seg.size, w.seg.next = w.size, h.NextOffset()
	return nil
}

// finish syncs the data file and writes and syncs both indexes.
func (w *cleanedWriter) finish() error {
	if err := w.data.Datasync(); err != nil {
		return fmt.Errorf("segment: sync cleaned segment %d: %w", w.base, err)
	}
	w.seg.next = w.next
	w.ic.FinishIndex(w.seg)
	ix := w.seg.idx
	for _, x := range []struct {
		name      string
		entries   []byte
		entrySize int
	}{
		{indexPath(w.l.dir, w.base), ix.off[:ix.offN*offsetEntrySize], offsetEntrySize},
		{timeIndexPath(w.l.dir, w.base), ix.tim[:ix.timN*timeEntrySize], timeEntrySize},
	} {
		if err := w.writeIndex(cleanedPath(x.name), x.entries, x.entrySize); err != nil {
			return fmt.Errorf("segment: write cleaned index of segment %d: %w", w.base, err)
		}
	}
	return nil
}

// writeIndex writes an index file at its configured size, sparse past its
// entries, and syncs it.
func (w *cleanedWriter) writeIndex(name string, entries []byte, entrySize int) error {
	f, err := w.l.fs.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(int64(w.l.cfg.indexEntries() * entrySize)); err != nil {
		return err
	}
	if len(entries) > 0 {
		if _, err := f.WriteAt(entries, 0); err != nil {
			return err
		}
		w.th.did(&w.th.written, int64(len(entries)))
	}
	return f.Datasync()
}

func (w *cleanedWriter) closeFiles() {
	if w.data != nil {
		w.data.Close()
		w.data = nil
	}
}

// discard removes whatever was written; leftovers (a failed removal) are
// removed by the next open (removeCleaningLeftovers).
func (w *cleanedWriter) discard() error {
	w.closeFiles()
	w.l.removeCleaned(w.base)
	return nil
}

// removeCleaned removes a segment's .cleaned files, if any.
func (l *Log) removeCleaned(base int64) {
	for _, p := range []string{logPath(l.dir, base), indexPath(l.dir, base), timeIndexPath(l.dir, base)} {
		l.fs.Remove(cleanedPath(p))
	}
}
