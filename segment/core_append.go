package segment

import (
	"fmt"

	"github.com/strata-db/strata/schema"
)

// AppendPlan says where a checked frame goes. The driver patches BaseOffset
// into the frame (schema.PatchBaseOffset), writes Len bytes at Pos of the
// segment's data file, and reports the write with CommitAppend.
type AppendPlan struct {
	Segment    *Segment
	Pos        int64
	Len        int64
	BaseOffset int64
	NextOffset int64
	maxTsMs    int64
}

// ShouldRoll reports whether a frame of frameLen bytes and recordCount
// records must go to a new segment: the active one is non-empty and the frame
// would overflow its size or its offset range, or it is older than
// SegmentMs, or its indexes are full. An empty segment takes any frame, so
// a replicated frame larger than SegmentBytes gets a segment to itself.
func (c *Core) ShouldRoll(frameLen int64, recordCount uint32, nowMs int64) bool {
	a := c.Active()
	used := a.size + a.reserved
	if used == 0 {
		return false
	}
	ix := a.idx
	return used+frameLen > c.cfg.SegmentBytes ||
		c.reservedNext+int64(recordCount)-a.base > relOffsetMax ||
		(c.cfg.SegmentMs != Unlimited && nowMs-a.firstMs >= c.cfg.SegmentMs) ||
		ix.offN >= len(ix.off)/offsetEntrySize ||
		ix.timN >= len(ix.tim)/timeEntrySize-1
}

// PrepareAppend assigns the next offsets and a position to a checked frame
// header. Several appends may be prepared before their writes complete; they
// must be committed in the order they were prepared.
func (c *Core) PrepareAppend(h *schema.FrameHeader, nowMs int64) (AppendPlan, error) {
	n := int64(h.Length)
	// The drivers refuse a new frame over maxFrameBytes; a replicated one
	// may be larger, up to what a segment may hold.
	if n > frameBytesMax {
		return AppendPlan{}, fmt.Errorf("%w: %d bytes, segment %d", ErrFrameTooLarge, n, c.cfg.SegmentBytes)
	}
	if c.ShouldRoll(n, h.RecordCount, nowMs) {
		return AppendPlan{}, ErrNeedRoll
	}
	a := c.Active()
	if a.size+a.reserved+n > a.allocated {
		return AppendPlan{}, ErrNeedGrowth
	}
	if a.size+a.reserved == 0 {
		a.firstMs = nowMs
	}
	p := AppendPlan{
		Segment:    a,
		Pos:        a.size + a.reserved,
		Len:        n,
		BaseOffset: c.reservedNext,
		NextOffset: c.reservedNext + int64(h.RecordCount),
		maxTsMs:    h.MaxTimestampMs,
	}
	a.reserved += n
	c.reservedNext = p.NextOffset
	c.pending++
	return p, nil
}

// CommitAppend records that a prepared frame's bytes are written: readers
// may now see it. Plans commit in the order they were prepared.
func (c *Core) CommitAppend(p *AppendPlan) error {
	a := c.Active()
	if c.pending == 0 || p.Segment != a || p.Pos != a.size || p.BaseOffset != c.end {
		return fmt.Errorf("%w: plan at %d/%d, log at %d/%d", ErrOutOfOrder, p.BaseOffset, p.Pos, c.end, a.size)
	}
	c.indexFrame(a, p.Pos, p.BaseOffset, p.NextOffset, p.maxTsMs)
	a.size += p.Len
	a.reserved -= p.Len
	a.next = p.NextOffset
	c.end = p.NextOffset
	c.pending--
	// Appends stay below the allocated end, which growth keeps within the
	// segment size of its time (Reconfigure may lower it since).
	if a.size > a.allocated || a.size > segmentBytesMax || a.next-a.base > relOffsetMax {
		panic(fmt.Sprintf("segment: segment %d grew to %d bytes, %d offsets", a.base, a.size, a.next-a.base))
	}
	c.check()
	return nil
}

// AbortAppends forgets every prepared, uncommitted append (after a failed
// write). Bytes they left past the committed end are never served, and the
// next append overwrites them.
func (c *Core) AbortAppends() {
	a := c.Active()
	a.reserved = 0
	c.reservedNext = c.end
	c.pending = 0
}

// Roll closes the active segment and makes a new one at End, with its
// full-size, zeroed index mappings (nothing allocated yet: see Growth). The driver creates the files (named
// by End) before the call, and afterwards trims the old segment's data file
// to its Size and syncs it.
func (c *Core) Roll(off, tim []byte, handle any) (old, active *Segment, err error) {
	if c.pending > 0 {
		return nil, nil, ErrAppendsPending
	}
	old = c.Active()
	c.finalTimeEntry(old)
	active, err = c.AddActiveSegment(c.end, off, tim, handle)
	if err != nil {
		return nil, nil, err
	}
	return old, active, nil
}

// Flushed records that every byte below offset is durable.
func (c *Core) Flushed(offset int64) {
	if offset > c.end {
		panic(fmt.Sprintf("segment: flushed to %d past the end %d", offset, c.end))
	}
	c.recoveryPoint = max(c.recoveryPoint, offset)
}
