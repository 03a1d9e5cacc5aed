package segment

import (
	"fmt"
	"math"

	"github.com/strata-db/strata/schema"
)

// Span is a run of whole frames in one segment's data file, ready to be sent
// as is (splice or sendfile from Segment.Handle's descriptor at Pos).
type Span struct {
	Segment     *Segment
	Pos         int64
	Len         int64
	FirstOffset int64 // base offset of the first frame
	NextOffset  int64 // offset after the last frame
}

// ReadPlan is a read in progress. The index gives a starting position; from
// there the core needs frame headers to find the first frame wanted and the
// frames that fit. It asks for them one at a time (Next) and the driver
// answers with the bytes (Feed), so the driver can read them however it
// likes: pread here, an SQE on the ring in the broker. A plan is reusable.
type ReadPlan struct {
	c        *Core
	gen      uint64
	seg      int
	pos      int64
	byTime   bool
	targetTs int64
	minOff   int64
	maxBytes int64
	upper    int64
	total    int64
	found    bool
	checkAt  int64 // position whose frame must start at or after offset checkOff
	checkOff int64
	// checkExact says the frame at checkAt must start at checkOff exactly
	// (an offset index entry named it); otherwise it may start later,
	// past offsets a cleaned segment no longer holds (compact.go).
	checkExact bool
	done       bool
	err        error
	spans      []Span
}

// StartRead plans a read of whole frames from the frame holding offset:
// at most maxBytes bytes, but always the whole first frame, and only frames
// that end at or below upper (the high watermark bound).
func (c *Core) StartRead(p *ReadPlan, offset, maxBytes, upper int64) error {
	p.reset(c, maxBytes, upper)
	if offset < c.logStart || offset > c.end {
		return fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, c.logStart, c.end)
	}
	if offset == c.end || offset >= p.upper {
		p.done = true
		return nil
	}
	p.minOff = offset
	return p.seek(c.segmentFor(offset), offset)
}

// StartReadByTime plans a read from the first frame whose max timestamp is
// at least ts (the frames a consumer looking up ts needs); the plan is empty
// when no frame is that new.
func (c *Core) StartReadByTime(p *ReadPlan, ts, maxBytes, upper int64) error {
	p.reset(c, maxBytes, upper)
	p.byTime, p.targetTs, p.minOff = true, ts, c.logStart
	for i := c.segmentFor(c.logStart); i >= 0 && i < len(c.segs); i++ {
		s := c.segs[i]
		if s.size == 0 {
			continue
		}
		if err := c.ensureIndex(s); err != nil {
			return err
		}
		if s.maxTsMs < ts {
			continue
		}
		start := max(s.base+int64(lookupTime(s.idx.tim, s.idx.timN, ts)), c.logStart)
		if start >= s.next {
			continue
		}
		return p.seek(i, start)
	}
	p.done = true
	return nil
}

func (p *ReadPlan) reset(c *Core, maxBytes, upper int64) {
	*p = ReadPlan{c: c, gen: c.gen, maxBytes: maxBytes, upper: upper, spans: p.spans[:0]}
	if p.upper < 0 {
		p.upper = math.MaxInt64
	}
}

// seek positions the plan at the indexed frame at or before offset in
// segment i.
func (p *ReadPlan) seek(i int, offset int64) error {
	s := p.c.segs[i]
	if err := p.c.ensureIndex(s); err != nil {
		return err
	}
	rel, pos := lookupOffset(s.idx.off, s.idx.offN, uint32(offset-s.base))
	p.seg, p.pos = i, int64(pos)
	p.checkAt, p.checkOff, p.checkExact = p.pos, s.base+int64(rel), pos > 0
	p.settle()
	return p.err
}

// settle moves past the end of segments to the next non-empty one. A
// segment whose frames end short of its offset range (a damaged trusted
// segment) ends the read with ErrCorrupt rather than skipping offsets.
func (p *ReadPlan) settle() {
	for !p.done {
		s := p.c.segs[p.seg]
		if p.pos < s.size {
			return
		}
		if p.checkAt == p.pos && (p.checkOff > s.next || (!s.gapped && p.checkOff != s.next)) {
			p.done = true
			p.err = fmt.Errorf("%w: segment %d data ends at offset %d, its offsets run to %d",
				ErrCorrupt, s.base, p.checkOff, s.next)
			return
		}
		p.seg++
		p.pos = 0
		if p.seg >= len(p.c.segs) {
			p.done = true
			return
		}
		p.checkAt, p.checkOff, p.checkExact = 0, p.c.segs[p.seg].base, false
	}
}

// Next returns where the next frame header is needed (read at least
// schema.FrameHeaderSize bytes at pos of s's data file), or ok=false when the
// plan is done.
func (p *ReadPlan) Next() (s *Segment, pos int64, ok bool) {
	if p.done {
		return nil, 0, false
	}
	if p.gen != p.c.gen {
		p.done, p.err = true, ErrStaleRead
		return nil, 0, false
	}
	return p.c.segs[p.seg], p.pos, true
}

// Feed gives the plan the header bytes it asked for. A header that fails its
// checks ends the read with ErrCorrupt; nothing past it is served.
func (p *ReadPlan) Feed(hdr []byte) error {
	if p.done {
		return nil
	}
	if p.gen != p.c.gen {
		p.done, p.err = true, ErrStaleRead
		return p.err
	}
	s := p.c.segs[p.seg]
	h, err := schema.ParseFrameHeader(hdr)
	if err != nil {
		p.done = true
		p.err = fmt.Errorf("%w: segment %d position %d: %v", ErrCorrupt, s.base, p.pos, err)
		return p.err
	}
	n := int64(h.Length)
	if p.pos+n > s.size || h.BaseOffset < s.base || h.NextOffset() > s.next ||
		(p.pos == p.checkAt && (h.BaseOffset < p.checkOff || ((p.checkExact || !s.gapped) && h.BaseOffset != p.checkOff))) {
		p.done = true
		p.err = fmt.Errorf("%w: segment %d position %d: frame of %d bytes, offsets [%d, %d) do not fit",
			ErrCorrupt, s.base, p.pos, n, h.BaseOffset, h.NextOffset())
		return p.err
	}
	p.checkAt, p.checkOff, p.checkExact = p.pos+n, h.NextOffset(), false
	if !p.found {
		if h.NextOffset() <= p.minOff || (p.byTime && h.MaxTimestampMs < p.targetTs) {
			p.pos += n
			p.settle()
			return p.err
		}
		p.found = true
	}
	if h.NextOffset() > p.upper || (p.total > 0 && p.total+n > p.maxBytes) {
		p.done = true
		return nil
	}
	if k := len(p.spans); k > 0 && p.spans[k-1].Segment == s && p.spans[k-1].Pos+p.spans[k-1].Len == p.pos {
		p.spans[k-1].Len += n
		p.spans[k-1].NextOffset = h.NextOffset()
	} else {
		p.spans = append(p.spans, Span{Segment: s, Pos: p.pos, Len: n, FirstOffset: h.BaseOffset, NextOffset: h.NextOffset()})
	}
	p.total += n
	p.pos += n
	if p.total < p.maxBytes {
		p.skipByIndex(s)
	}
	if p.total >= p.maxBytes {
		p.done = true
		return nil
	}
	p.settle()
	return p.err
}

// skipByIndex takes whole frames into the read without asking for their
// headers: every offset index entry marks where a frame starts, so the
// bytes up to the last entry within the byte budget (and below upper) are
// whole frames, as Kafka's reads trust the index. The frames' own CRCs are
// still checked by whoever decodes them; the first frame of every read
// and every frame after the skipped run are still checked here.
func (p *ReadPlan) skipByIndex(s *Segment) {
	if s.idx == nil || s.idx.offN == 0 {
		return
	}
	limit := min(p.pos+(p.maxBytes-p.total), s.size, math.MaxUint32)
	rel, pos, ok := lookupPosition(s.idx.off, s.idx.offN, uint32(limit))
	if !ok || int64(pos) <= p.pos {
		return
	}
	next := s.base + int64(rel)
	if next > p.upper {
		// Stop at the last indexed frame that starts at or below upper.
		rel, pos = lookupOffset(s.idx.off, s.idx.offN, uint32(p.upper-s.base))
		if int64(pos) <= p.pos {
			return
		}
		next = s.base + int64(rel)
	}
	if next <= p.checkOff || next > s.next {
		return // an entry that does not fit what was read: read headers instead
	}
	k := len(p.spans) - 1
	p.spans[k].Len += int64(pos) - p.pos
	p.spans[k].NextOffset = next
	p.total += int64(pos) - p.pos
	p.pos = int64(pos)
	p.checkAt, p.checkOff, p.checkExact = p.pos, next, true
}

// Spans are the frames planned so far; final once Next reports done.
func (p *ReadPlan) Spans() []Span { return p.spans }

// Err is the error that ended the plan, if any.
func (p *ReadPlan) Err() error { return p.err }

// Bytes is the total length of the spans.
func (p *ReadPlan) Bytes() int64 { return p.total }
