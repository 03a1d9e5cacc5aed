package segment

// Disk use follows the data. A segment's files are not preallocated to
// their full size: the data file grows by whole AllocateStepBytes steps
// (fallocate), and the index files, created sparse at their full size and
// mapped, get blocks for the prefix that the entries of that much data can
// fill. A driver grows the active segment before a write would pass its
// allocated end, and writes nothing there until the allocation completed:
// a full disk then fails the fallocate (and takes the log offline), never a
// write, and never a store through an index mapping, which on a hole of a
// full filesystem would raise SIGBUS instead of returning an error.

// ByteRange is the byte range [From, To) of a file; empty when To <= From.
type ByteRange struct{ From, To int64 }

// Empty reports whether the range holds no bytes.
func (r ByteRange) Empty() bool { return r.To <= r.From }

// Growth is one step of a segment's allocation: the ranges of its data file
// and of its two index files to fallocate so that its data can reach
// Target. The driver allocates every non-empty range, then calls Grown.
type Growth struct {
	Segment     *Segment
	Target      int64
	Data        ByteRange
	OffsetIndex ByteRange
	TimeIndex   ByteRange
}

// NeedGrowth reports whether the next frame of frameLen bytes (after
// ShouldRoll said no roll) would pass the active segment's allocated end,
// and if so the growth that makes room for it. PrepareAppend refuses such a
// frame with ErrNeedGrowth until the growth is recorded with Grown.
func (c *Core) NeedGrowth(frameLen int64) (Growth, bool) {
	a := c.Active()
	end := a.size + a.reserved + frameLen
	if end <= a.allocated {
		return Growth{}, false
	}
	return c.GrowthTo(a, end), true
}

// GrowthTo is the growth that lets segment s hold end bytes of data, from
// what it has allocated (nothing after a truncation or at recovery: the
// ranges then start at 0).
func (c *Core) GrowthTo(s *Segment, end int64) Growth {
	target := max(c.cfg.allocateEnd(end), s.allocated)
	return Growth{
		Segment: s,
		Target:  target,
		Data:    ByteRange{s.allocated, target},
		OffsetIndex: ByteRange{c.cfg.indexAllocateBytes(s.allocated, offsetEntrySize),
			c.cfg.indexAllocateBytes(target, offsetEntrySize)},
		TimeIndex: ByteRange{c.cfg.indexAllocateBytes(s.allocated, timeEntrySize),
			c.cfg.indexAllocateBytes(target, timeEntrySize)},
	}
}

// Grown records that a growth's allocations completed: appends may now
// reach its Target.
func (c *Core) Grown(g *Growth) {
	g.Segment.allocated = max(g.Segment.allocated, g.Target)
}

// Allocated is the data end the segment's files are allocated for.
func (s *Segment) Allocated() int64 { return s.allocated }
