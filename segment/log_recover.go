package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-db/strata/schema"
)

// recover rebuilds the core from the folder: trusted closed segments below
// the recovery point are only listed; every other segment is walked frame by
// frame from its last index entry at or before the recovery point, and the
// log ends at the first frame that fails a check.
func (l *Log) recover() error {
	if err := l.fs.MkdirAll(l.dir); err != nil {
		return err
	}
	if err := l.removeCleaningLeftovers(); err != nil {
		return err
	}
	// Before the walk: it tells which segments may skip offsets.
	if err := l.loadCleanerState(); err != nil {
		return err
	}
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	sizes := make(map[int64]int64)
	var bases []int64
	others := make(map[int64]bool)
	ckpt, haveCkpt := checkpoint{}, false
	for _, e := range ents {
		switch base, suffix, ok := parseSegmentName(e.Name); {
		case ok && suffix == logSuffix:
			bases = append(bases, base)
			sizes[base] = e.Size
		case ok:
			others[base] = true
		case e.Name == checkpointName:
			ckpt, haveCkpt = l.readCheckpoint(e.Size)
		case strings.HasSuffix(e.Name, checkpointTmpExt):
			// A checkpoint whose rename never happened.
			if err := l.fs.Remove(filepath.Join(l.dir, e.Name)); err != nil {
				return err
			}
		}
	}
	for base := range others {
		if _, ok := sizes[base]; !ok {
			// Index files whose data file is gone belong to a segment
			// deleted before a crash.
			if err := l.removeSegmentFiles(base); err != nil {
				return err
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	rp := int64(0)
	if haveCkpt {
		rp = ckpt.recoveryPoint
	}
	walked := false
	for i, base := range bases {
		last := i == len(bases)-1
		if !last && bases[i+1] <= rp {
			if err := l.core.AddTrustedSegment(base, sizes[base], &segFiles{}); err != nil {
				return err
			}
			l.core.segs[len(l.core.segs)-1].gapped = l.cleanerGapped(base)
			continue
		}
		walked = true
		s, err := l.recoverSegment(base, sizes[base], rp)
		if err != nil {
			return err
		}
		// A segment is closed when its frames reach the next segment,
		// or fill its file and stop short of it: a cleaned segment whose
		// last frames were dropped. A torn or lost tail leaves bytes
		// that are not frames and ends the log here, as before.
		if !last && s.size > 0 && (s.next == bases[i+1] || (s.gapped && s.next < bases[i+1] && s.size == sizes[base])) {
			if err := l.core.EndRecovery(s, true); err != nil {
				return err
			}
			f := s.Handle.(*segFiles).data
			if sizes[base] != s.size {
				if err := f.Truncate(s.size); err != nil {
					return err
				}
			}
			continue
		}
		// The log ends in this segment: later segments do not follow on
		// from it, so they are not part of the log.
		for _, b := range bases[i+1:] {
			if err := l.removeSegmentFiles(b); err != nil {
				return err
			}
		}
		if err := l.core.EndRecovery(s, false); err != nil {
			return err
		}
		if err := l.preallocateActive(s, sizes[base]); err != nil {
			return err
		}
		l.resumeAge(s)
		break
	}
	if len(bases) == 0 {
		base := int64(0)
		if haveCkpt {
			base = ckpt.logStart
		}
		files, off, tim, err := l.createSegment(base)
		if err != nil {
			return err
		}
		if _, err := l.core.AddActiveSegment(base, off, tim, files); err != nil {
			files.close()
			return err
		}
		walked = true
	}
	if err := l.core.FinishOpen(ckpt.logStart, rp); err != nil {
		return err
	}
	if walked || !haveCkpt {
		// What the walk found may so far be only in the page cache: make
		// it durable, then move the recovery point to the end.
		for _, s := range l.core.segs {
			f := s.Handle.(*segFiles)
			if f.data == nil || s.next <= rp {
				continue
			}
			for _, x := range []File{f.data, f.off, f.tim} {
				if x != nil {
					if err := x.Datasync(); err != nil {
						return err
					}
				}
			}
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return err
		}
		l.core.Flushed(l.core.End())
		if err := l.writeCheckpointMayLag(); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) readCheckpoint(size int64) (checkpoint, bool) {
	if size != checkpointSize {
		return checkpoint{}, false
	}
	f, err := l.fs.Open(filepath.Join(l.dir, checkpointName))
	if err != nil {
		return checkpoint{}, false
	}
	defer f.Close()
	var b [checkpointSize]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return checkpoint{}, false
	}
	// A bad checkpoint only costs a full walk: without it nothing is
	// trusted.
	c, err := decodeCheckpoint(b[:])
	return c, err == nil
}

// preallocateActive cuts whatever follows the valid data of the last segment
// (a torn tail, garbage, or the zeros of an allocation step) and allocates
// it again to the step that holds its data, so that the bytes past the end
// are zeros and no stale frame can ever be found there.
func (l *Log) preallocateActive(s *Segment, fileSize int64) error {
	f := s.Handle.(*segFiles).data
	if fileSize > s.size {
		if err := f.Truncate(s.size); err != nil {
			return err
		}
	}
	g := l.core.GrowthTo(s, s.size)
	return l.grow(&g)
}

// resumeAge sets the age clock of the recovered active segment: the time
// of its first append (SegmentMs counts from it), which is not on disk, is
// taken as its first frame's first timestamp, so that a restart neither
// rolls every non-empty segment at its next append (an unset clock made it
// look decades old) nor starts its age again. A first timestamp in the
// future or missing (0 or less) counts from now.
func (l *Log) resumeAge(s *Segment) {
	now := l.cfg.NowMs()
	s.firstMs = now
	if s.size < schema.FrameHeaderSize {
		return
	}
	if _, err := s.Handle.(*segFiles).data.ReadAt(l.hdr[:], 0); err != nil {
		return
	}
	// The walk, or an earlier one below the recovery point, checked it.
	if h, err := schema.ParseFrameHeader(l.hdr[:]); err == nil && h.FirstTimestampMs > 0 && h.FirstTimestampMs < now {
		s.firstMs = h.FirstTimestampMs
	}
}

// recoverSegment opens a segment whose end is unknown and walks it.
func (l *Log) recoverSegment(base, fileSize, rp int64) (*Segment, error) {
	files := &segFiles{}
	var err error
	if files.data, err = l.fs.Open(logPath(l.dir, base)); err != nil {
		return nil, err
	}
	var off, tim []byte
	if files.off, off, err = l.openIndex(indexPath(l.dir, base), offsetEntrySize); err == nil {
		files.tim, tim, err = l.openIndex(timeIndexPath(l.dir, base), timeEntrySize)
	}
	if err != nil {
		files.close()
		return nil, err
	}
	// The walk writes index entries for what it finds, up to the file's
	// end: their pages get blocks first (nothing new for an index that
	// was allocated with its data).
	if err := l.allocateIndexes(files, min(fileSize, segmentBytesMax)); err != nil {
		files.close()
		return nil, err
	}
	s, startPos, startOff, err := l.core.BeginRecovery(base, off, tim, fileSize, rp, files)
	if err != nil {
		files.close()
		return nil, err
	}
	s.gapped = l.cleanerGapped(base)
	pos, expect := startPos, startOff
	for {
		h, ok := l.readFrame(files.data, pos, fileSize)
		// Frames start at or after the previous frame's next offset
		// (a cleaned segment skips the offsets it dropped), and exactly
		// where the index entry the walk starts from says.
		if ok && (h.BaseOffset < expect || ((!s.gapped || (pos == startPos && startPos > 0)) && h.BaseOffset != expect)) {
			ok = false
		}
		if ok {
			if err = l.core.RecoverFrame(s, pos, &h); err == nil {
				pos, expect = pos+int64(h.Length), h.NextOffset()
				continue
			}
			if !errors.Is(err, errRecoveryRestart) {
				return nil, err
			}
		}
		if pos == startPos && startPos > 0 {
			// The index entry the walk started from does not match
			// the data: walk the whole segment and rebuild its index.
			l.core.RestartRecovery(s)
			l.stats.IndexRebuilds++
			pos, expect, startPos = 0, base, 0
			continue
		}
		break
	}
	if pos < fileSize && pos < l.cfg.SegmentBytes {
		if b, ok := l.peekNonZero(files.data, pos, fileSize); ok && b {
			l.stats.Truncations++
		}
	}
	return s, nil
}

// peekNonZero reports whether the bytes at pos start with anything but
// zeros (a torn or corrupt tail rather than the rest of an allocated step).
func (l *Log) peekNonZero(f File, pos, fileSize int64) (bool, bool) {
	n := min(int64(len(l.hdr)), fileSize-pos)
	if n <= 0 {
		return false, false
	}
	if _, err := f.ReadAt(l.hdr[:n], pos); err != nil {
		return false, false
	}
	for _, c := range l.hdr[:n] {
		if c != 0 {
			return true, true
		}
	}
	return false, true
}

// openIndex opens and maps an index file, recreating it zeroed when it is
// missing or not of the configured size (the walk then rebuilds it).
func (l *Log) openIndex(name string, entrySize int) (File, []byte, error) {
	size := l.cfg.indexEntries() * entrySize
	f, err := l.fs.Open(name)
	if err == nil {
		var n int64
		if n, err = f.Size(); err == nil && n == int64(size) {
			m, err := f.Map(size)
			if err == nil {
				return f, m, nil
			}
		}
		f.Close()
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	l.stats.IndexRebuilds++
	return l.createIndex(name, entrySize)
}

// readFrame reads and fully checks the frame at pos: length bound, header,
// CRC. ok is false for anything that is not a whole valid frame.
func (l *Log) readFrame(f File, pos, fileSize int64) (schema.FrameHeader, bool) {
	var h schema.FrameHeader
	if pos+schema.FrameHeaderSize > fileSize {
		return h, false
	}
	if _, err := f.ReadAt(l.hdr[:], pos); err != nil {
		return h, false
	}
	// Frames are bounded by what any segment may hold, not by today's
	// segment.bytes: a topic may have lowered it since they were written
	// (Reconfigure), and a frame that was valid then is valid now.
	n, err := schema.PeekFrameLength(l.hdr[:], schema.MaxFrameBytes)
	if err != nil || pos+int64(n) > fileSize || pos+int64(n) > segmentBytesMax {
		return h, false
	}
	if cap(l.frame) < n {
		l.frame = make([]byte, n)
	}
	buf := l.frame[:n]
	if _, err := f.ReadAt(buf, pos); err != nil {
		return h, false
	}
	l.stats.FramesChecked++
	h, err = schema.CheckFrame(buf)
	return h, err == nil
}

// LoadIndex implements IndexLoader: it maps a closed segment's index files
// and, if they are missing or inconsistent, rebuilds them from the data.
func (l *Log) LoadIndex(s *Segment) error {
	files := s.Handle.(*segFiles)
	l.stats.IndexLoads++
	var off, tim []byte
	var err error
	if files.off == nil {
		files.off, off, err = l.openExistingIndex(indexPath(l.dir, s.base), offsetEntrySize)
		if err != nil {
			return err
		}
	}
	if files.tim == nil {
		files.tim, tim, err = l.openExistingIndex(timeIndexPath(l.dir, s.base), timeEntrySize)
		if err != nil {
			return err
		}
	}
	if off != nil && tim != nil && l.core.AttachIndex(s, off, tim) == nil {
		return nil
	}
	// Rebuild: recreate both files at the configured size and index every
	// frame of the data. A trusted segment whose data does not check out is
	// refused: it was synced, so this is damage, not a torn write.
	for _, f := range []*File{&files.off, &files.tim} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
	l.stats.IndexRebuilds++
	if files.off, off, err = l.createIndex(indexPath(l.dir, s.base), offsetEntrySize); err != nil {
		return l.fail(fmt.Errorf("segment: rebuild index of segment %d: %w", s.base, err))
	}
	if files.tim, tim, err = l.createIndex(timeIndexPath(l.dir, s.base), timeEntrySize); err != nil {
		return l.fail(fmt.Errorf("segment: rebuild index of segment %d: %w", s.base, err))
	}
	if err = l.allocateIndexes(files, s.size); err != nil {
		return l.fail(fmt.Errorf("segment: rebuild index of segment %d: %w", s.base, err))
	}
	data, err := l.dataFile(s)
	if err != nil {
		return err
	}
	l.core.ResetIndex(s, off, tim)
	s.idx = nil // not usable until the rebuild completes
	ix := &segIndex{off: off, tim: tim}
	tmp := &Segment{base: s.base, next: s.base, idx: ix}
	pos, expect := int64(0), s.base
	for pos < s.size {
		h, ok := l.readFrame(data, pos, s.size)
		if !ok || h.BaseOffset < expect || (!s.gapped && h.BaseOffset != expect) {
			return fmt.Errorf("%w: segment %d at position %d (offset %d) below the recovery point", ErrCorrupt, s.base, pos, expect)
		}
		l.core.IndexFrame(tmp, pos, &h)
		tmp.size = pos + int64(h.Length)
		tmp.next = h.NextOffset()
		pos, expect = tmp.size, tmp.next
	}
	if expect > s.next || (!s.gapped && expect != s.next) {
		return fmt.Errorf("%w: segment %d ends at offset %d, next segment starts at %d", ErrCorrupt, s.base, expect, s.next)
	}
	// The closing time entry covers the offset range, also past a last
	// frame that ends short of it (a cleaned segment).
	tmp.next = s.next
	l.core.FinishIndex(tmp)
	s.idx, s.maxTsMs = ix, tmp.maxTsMs
	for _, f := range []File{files.off, files.tim} {
		if err := f.Datasync(); err != nil {
			return l.fail(fmt.Errorf("segment: sync rebuilt index of segment %d: %w", s.base, err))
		}
	}
	return nil
}

// openExistingIndex maps a closed segment's index file at whatever whole
// number of entries it holds; it returns a nil mapping (and no error) when
// the file is missing or unusable, which triggers a rebuild.
func (l *Log) openExistingIndex(name string, entrySize int) (File, []byte, error) {
	f, err := l.fs.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	n, err := f.Size()
	if err != nil || n == 0 || n%int64(entrySize) != 0 || n > segmentBytesMax {
		return f, nil, nil
	}
	m, err := f.Map(int(n))
	if err != nil {
		return f, nil, nil
	}
	return f, m, nil
}
