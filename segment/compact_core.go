package segment

import "fmt"

// ReplaceSegment swaps closed segment old for its cleaned version of size
// bytes with handle (indexes loaded on first use, like a trusted
// segment's), or, with size 0, drops it from the log: its offset range
// joins the segment before it, or, for the first segment, the log start
// moves past it. Either way old is retired (its spans fail with
// ErrStaleRead) and returned for the driver to close its files; the
// generation moves, as for every removal.
func (c *Core) ReplaceSegment(old *Segment, size int64, handle any) (*Segment, error) {
	i := c.segmentFor(old.base)
	if i < 0 || i >= len(c.segs)-1 || c.segs[i] != old || !old.closed {
		return nil, fmt.Errorf("segment: cannot replace segment %d: not a closed segment of the log", old.base)
	}
	if size == 0 {
		if i > 0 {
			prev := c.segs[i-1]
			if old.next-prev.base > relOffsetMax {
				return nil, fmt.Errorf("segment: removing segment %d would make segment %d span %d offsets", old.base, prev.base, old.next-prev.base)
			}
			if prev.idx != nil {
				extendFinalTimeEntry(prev, old.next)
			}
			prev.next = old.next
			prev.gapped = true
		}
		copy(c.segs[i:], c.segs[i+1:])
		c.segs[len(c.segs)-1] = nil
		c.segs = c.segs[:len(c.segs)-1]
		c.logStart = max(c.logStart, c.segs[0].base)
	} else {
		if size < 0 || size > old.size {
			return nil, fmt.Errorf("segment: cleaned segment %d of %d bytes replaces one of %d", old.base, size, old.size)
		}
		c.segs[i] = &Segment{base: old.base, next: old.next, size: size, closed: true, gapped: true, Handle: handle}
	}
	old.retired = true
	c.gen++
	c.check()
	return old, nil
}

// Retired reports whether the cleaner replaced the segment (or removed
// it, every record dropped): its spans are stale, and a driver that
// keeps spans of its own (a frame table) drops them.
func (s *Segment) Retired() bool { return s.retired }
