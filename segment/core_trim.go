package segment

import (
	"fmt"
	"math"
)

// Removing data never waits for file deletion: the core drops segments from
// its list at once and hands them back, and the driver deletes their files
// whenever it likes. Every removal bumps the generation so that read plans
// made before it fail with ErrStaleRead instead of reading freed files.

// TruncateAt drops the frame that starts at pos of segment s (its base
// offset frameBase) and everything after it, so that the log ends at
// frameBase. The driver finds (s, pos, frameBase) with a one-byte read plan
// at the truncation offset. It returns the segments to delete; s itself, now
// the active segment, must have its data file cut to pos and grown again
// (GrowthTo: its allocated end is reset), so no stale frame can reappear
// after a crash.
func (c *Core) TruncateAt(s *Segment, pos, frameBase int64) (removed []*Segment, err error) {
	if c.pending > 0 {
		return nil, ErrAppendsPending
	}
	i := c.segmentFor(frameBase)
	if i < 0 || c.segs[i] != s || pos > s.size || frameBase < s.base || frameBase > s.next {
		return nil, fmt.Errorf("segment: truncate point %d at %d is not in segment %d", frameBase, pos, s.base)
	}
	if err := c.ensureIndex(s); err != nil {
		return nil, err
	}
	removed = append(removed, c.segs[i+1:]...)
	clear(c.segs[i+1:])
	c.segs = c.segs[:i+1]
	ix := s.idx
	keepOff := 0
	for keepOff < ix.offN {
		if _, p := offsetEntryAt(ix.off, keepOff); int64(p) >= pos {
			break
		}
		keepOff++
	}
	clear(ix.off[keepOff*offsetEntrySize : ix.offN*offsetEntrySize])
	ix.offN = keepOff
	ix.lastIndexedPos = 0
	if keepOff > 0 {
		_, p := offsetEntryAt(ix.off, keepOff-1)
		ix.lastIndexedPos = int64(p)
	}
	keepTim := 0
	for keepTim < ix.timN {
		if _, r := timeEntryAt(ix.tim, keepTim); s.base+int64(r) > frameBase {
			break
		}
		keepTim++
	}
	clear(ix.tim[keepTim*timeEntrySize : ix.timN*timeEntrySize])
	ix.timN = keepTim
	// s.maxTsMs stays as it was: at least the newest remaining timestamp.
	// An overestimate only makes time lookups scan a little more and
	// retention keep the segment a little longer; an underestimate would
	// hide frames.
	s.size, s.next, s.closed, s.reserved = pos, frameBase, false, 0
	// The driver cuts the data file to pos and grows it again.
	s.allocated = 0
	c.end, c.reservedNext = frameBase, frameBase
	c.logStart = min(c.logStart, frameBase)
	c.recoveryPoint = min(c.recoveryPoint, frameBase)
	c.gen++
	c.check()
	return removed, nil
}

// DeleteRecordsBefore advances the log start to offset (never past the end)
// and drops closed segments wholly below it.
func (c *Core) DeleteRecordsBefore(offset int64) ([]*Segment, error) {
	if offset > c.end {
		return nil, fmt.Errorf("%w: %d past the end %d", ErrOffsetOutOfRange, offset, c.end)
	}
	c.logStart = max(c.logStart, offset)
	k := 0
	for k < len(c.segs)-1 && c.segs[k].closed && c.segs[k].next <= c.logStart {
		k++
	}
	return c.dropOldest(k), nil
}

// ApplyRetention drops the oldest closed segments whose newest timestamp is
// older than nowMs-RetentionMs, then the oldest closed segments while the
// log is larger than RetentionBytes. The active segment always stays.
func (c *Core) ApplyRetention(nowMs int64) ([]*Segment, error) {
	return c.ApplyRetentionBelow(nowMs, math.MaxInt64)
}

// ApplyRetentionBelow is ApplyRetention that drops only segments wholly
// below limit (their next offset at or below it). A replicated partition
// passes its high watermark, as Kafka's log manager does: retention never
// removes what not every in-sync replica holds, so a follower fetching
// from its leader's log start always finds it on the leader, and a
// follower never trims past what it could be asked to serve as a new
// leader.
func (c *Core) ApplyRetentionBelow(nowMs, limit int64) ([]*Segment, error) {
	k := 0
	deletable := func(s *Segment) bool { return s.next <= limit }
	if c.cfg.RetentionMs != Unlimited {
		for k < len(c.segs)-1 && deletable(c.segs[k]) {
			s := c.segs[k]
			if err := c.ensureIndex(s); err != nil {
				return c.dropOldest(k), err
			}
			if s.maxTsMs >= nowMs-c.cfg.RetentionMs {
				break
			}
			k++
		}
	}
	if c.cfg.RetentionBytes != Unlimited {
		total := c.Size()
		for _, s := range c.segs[:k] {
			total -= s.size
		}
		for k < len(c.segs)-1 && total > c.cfg.RetentionBytes && deletable(c.segs[k]) {
			total -= c.segs[k].size
			k++
		}
	}
	return c.dropOldest(k), nil
}

func (c *Core) dropOldest(k int) []*Segment {
	if k == 0 {
		return nil
	}
	removed := append([]*Segment(nil), c.segs[:k]...)
	n := copy(c.segs, c.segs[k:])
	clear(c.segs[n:])
	c.segs = c.segs[:n]
	c.logStart = max(c.logStart, c.segs[0].base)
	c.gen++
	c.check()
	return removed
}
