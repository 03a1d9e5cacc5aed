package segment

import "fmt"

// check runs the cheap assertions after every state change, and the whole-log
// consistency check when built with the invariants tag. A failure is a bug in
// this package, never bad input, so it panics.
func (c *Core) check() {
	a := c.Active()
	if c.logStart > c.end || c.recoveryPoint > c.end || c.end != a.next {
		panic(fmt.Sprintf("segment: log start %d, recovery point %d, end %d, active %d..%d with %d bytes",
			c.logStart, c.recoveryPoint, c.end, a.base, a.next, a.size))
	}
	if invariantsEnabled {
		if err := c.CheckConsistency(); err != nil {
			panic(err)
		}
	}
}

// CheckConsistency checks the whole log's bookkeeping: segments contiguous
// and ordered, loaded indexes consistent with their segments.
func (c *Core) CheckConsistency() error {
	for i, s := range c.segs {
		if s.size < 0 || s.next < s.base || s.next-s.base > relOffsetMax {
			return fmt.Errorf("segment: segment %d: size %d, next %d", s.base, s.size, s.next)
		}
		if i+1 < len(c.segs) {
			if !s.closed || s.next != c.segs[i+1].base {
				return fmt.Errorf("segment: segment %d (closed %v) ends at %d, next starts at %d",
					s.base, s.closed, s.next, c.segs[i+1].base)
			}
		} else if s.closed {
			return fmt.Errorf("segment: active segment %d is closed", s.base)
		}
		if s.idx == nil {
			continue
		}
		ix := s.idx
		n, err := scanOffsetIndex(ix.off, max(s.size, 1), s.next-s.base+1)
		if err != nil || n != ix.offN {
			return fmt.Errorf("segment: segment %d offset index: %d entries, counted %d: %v", s.base, ix.offN, n, err)
		}
		m, err := scanTimeIndex(ix.tim, s.next-s.base)
		if err != nil || m != ix.timN {
			return fmt.Errorf("segment: segment %d time index: %d entries, counted %d: %v", s.base, ix.timN, m, err)
		}
		if m > 0 {
			if ts, _ := timeEntryAt(ix.tim, m-1); ts > s.maxTsMs {
				return fmt.Errorf("segment: segment %d time entry %d above max timestamp %d", s.base, ts, s.maxTsMs)
			}
		}
	}
	return nil
}
