package segment

import (
	"errors"
	"fmt"

	"github.com/strata-db/strata/schema"
)

// errRecoveryRestart asks the driver to walk the segment again from
// position 0: the index entry it started from does not match the data.
var errRecoveryRestart = errors.New("segment: index does not match the data; walk from the segment start")

// Recovery of a segment whose end is unknown: the driver calls
// BeginRecovery, then RecoverFrame for each frame it reads and checks from
// the returned position on (restarting from 0 with RestartRecovery if the
// core asks), and EndRecovery where the valid frames stop.

// BeginRecovery checks a segment's mapped indexes against the data file size
// and picks where the walk starts: the last offset index entry at or before
// the recovery point, or the segment start (with the index cleared for a
// rebuild) when there is none or the index is inconsistent.
func (c *Core) BeginRecovery(base int64, off, tim []byte, fileSize, recoveryPoint int64, handle any) (s *Segment, startPos, startOffset int64, err error) {
	if err := c.checkIndexSizes(off, tim); err != nil {
		return nil, 0, 0, err
	}
	s = c.newSegment(base, off, tim, handle)
	ix := s.idx
	offN, oerr := scanOffsetIndex(off, fileSize, relOffsetMax+1)
	timN, terr := scanTimeIndex(tim, relOffsetMax)
	if oerr != nil || terr != nil || recoveryPoint <= base {
		c.ResetIndex(s, off, tim)
		return s, 0, base, nil
	}
	ix.offN, ix.timN = offN, timN
	rel, pos := lookupOffset(off, offN, uint32(min(recoveryPoint-base, relOffsetMax)))
	if pos == 0 {
		c.ResetIndex(s, off, tim)
		return s, 0, base, nil
	}
	ix.lastIndexedPos = int64(pos)
	return s, int64(pos), base + int64(rel), nil
}

// RestartRecovery clears the segment's index to walk it from position 0.
func (c *Core) RestartRecovery(s *Segment) {
	c.ResetIndex(s, s.idx.off, s.idx.tim)
	s.size, s.next = 0, s.base
}

// RecoverFrame records one checked frame found at pos during recovery. On
// the first frame of a walk that starts at an index entry it drops the
// entries past it (they describe data that is walked again) and returns
// errRecoveryRestart if what is left cannot seed the walk.
func (c *Core) RecoverFrame(s *Segment, pos int64, h *schema.FrameHeader) error {
	ix := s.idx
	if s.size == 0 && pos > 0 {
		if pos != ix.lastIndexedPos || h.BaseOffset-s.base >= relOffsetMax {
			return errRecoveryRestart
		}
		keepOff := 0
		for keepOff < ix.offN {
			if _, p := offsetEntryAt(ix.off, keepOff); int64(p) > pos {
				break
			}
			keepOff++
		}
		clear(ix.off[keepOff*offsetEntrySize : ix.offN*offsetEntrySize])
		ix.offN = keepOff
		relNext := h.NextOffset() - s.base
		keepTim := 0
		for keepTim < ix.timN {
			if _, r := timeEntryAt(ix.tim, keepTim); int64(r) > relNext {
				break
			}
			keepTim++
		}
		clear(ix.tim[keepTim*timeEntrySize : ix.timN*timeEntrySize])
		ix.timN = keepTim
		if keepTim == 0 {
			// The first index point always has a time entry; without one
			// the running max timestamp is unknown.
			return errRecoveryRestart
		}
		s.maxTsMs, _ = timeEntryAt(ix.tim, keepTim-1)
		s.maxTsMs = max(s.maxTsMs, h.MaxTimestampMs)
	} else {
		if pos != s.size || h.BaseOffset < s.next || (!s.gapped && h.BaseOffset != s.next) {
			return fmt.Errorf("segment: recovery frame at %d/%d, segment at %d/%d", pos, h.BaseOffset, s.size, s.next)
		}
		c.indexFrame(s, pos, h.BaseOffset, h.NextOffset(), h.MaxTimestampMs)
	}
	s.size = pos + int64(h.Length)
	s.next = h.NextOffset()
	return nil
}

// EndRecovery adds the walked segment, closed (not the last) or active.
func (c *Core) EndRecovery(s *Segment, closed bool) error {
	if closed && s.size == 0 {
		return fmt.Errorf("segment: cannot close empty segment %d", s.base)
	}
	if err := c.linkNext(s.base); err != nil {
		return err
	}
	if closed {
		c.finalTimeEntry(s)
		s.closed = true
	}
	c.segs = append(c.segs, s)
	return nil
}
