package segment

import (
	"fmt"
	"math"

	"github.com/strata-db/strata/schema"
)

// Read returns the spans of whole frames from the frame holding offset, at
// most maxBytes long (but at least the first frame) and ending at or below
// upper (pass -1 for no bound). An offset equal to End gives no spans.
func (l *Log) Read(offset, maxBytes, upper int64) ([]Span, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return nil, err
	}
	if err := l.core.StartRead(&l.plan, offset, maxBytes, upper); err != nil {
		return nil, err
	}
	return l.runPlan()
}

// ReadByTime returns the spans from the first frame whose max timestamp is
// at least ts, bounded like Read; none when no frame is that new.
func (l *Log) ReadByTime(ts, maxBytes, upper int64) ([]Span, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return nil, err
	}
	if err := l.core.StartReadByTime(&l.plan, ts, maxBytes, upper); err != nil {
		return nil, err
	}
	return l.runPlan()
}

// runPlan answers a read plan's header requests with pread.
func (l *Log) runPlan() ([]Span, error) {
	for {
		s, pos, ok := l.plan.Next()
		if !ok {
			break
		}
		f, err := l.dataFile(s)
		if err != nil {
			return nil, err
		}
		if _, err := f.ReadAt(l.hdr[:], pos); err != nil {
			return nil, fmt.Errorf("%w: segment %d position %d: %v", ErrCorrupt, s.base, pos, err)
		}
		if err := l.plan.Feed(l.hdr[:]); err != nil {
			return nil, err
		}
	}
	if err := l.plan.Err(); err != nil {
		return nil, err
	}
	return append([]Span(nil), l.plan.Spans()...), nil
}

// ReadSpans appends the bytes of spans to dst and checks every frame in them
// (length, header, CRC), so a caller of the synchronous driver never gets a
// corrupt frame. Spans from before a truncation or deletion give
// ErrStaleRead.
func (l *Log) ReadSpans(dst []byte, spans []Span) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return dst, err
	}
	for _, sp := range spans {
		i := l.core.segmentFor(sp.FirstOffset)
		if i < 0 || l.core.segs[i] != sp.Segment || sp.Pos < 0 || sp.Len <= 0 || sp.Pos+sp.Len > sp.Segment.size || sp.Len > math.MaxInt32 {
			return dst, ErrStaleRead
		}
		f, err := l.dataFile(sp.Segment)
		if err != nil {
			return dst, err
		}
		start := len(dst)
		dst = append(dst, make([]byte, sp.Len)...)
		if _, err := f.ReadAt(dst[start:], sp.Pos); err != nil {
			return dst[:start], err
		}
		next := sp.FirstOffset
		for b := dst[start:]; len(b) > 0; {
			h, err := schema.CheckFrame(b)
			if err != nil || h.BaseOffset < next || (!sp.Segment.gapped && h.BaseOffset != next) {
				return dst[:start], fmt.Errorf("%w: segment %d frame at offset %d: %v", ErrCorrupt, sp.Segment.base, next, err)
			}
			b = b[h.Length:]
			next = h.NextOffset()
		}
		if next != sp.NextOffset {
			return dst[:start], fmt.Errorf("%w: segment %d span ends at offset %d, want %d", ErrCorrupt, sp.Segment.base, next, sp.NextOffset)
		}
	}
	return dst, nil
}

// Truncate drops every frame holding an offset at or after offset, including
// whole segments, and makes the cut durable before returning: a crash never
// brings the dropped frames back. The log then ends at the base offset of
// the frame that held offset.
func (l *Log) Truncate(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waitSync()
	if err := l.usable(); err != nil {
		return err
	}
	if offset >= l.core.End() {
		return nil
	}
	if err := l.core.StartRead(&l.plan, offset, 1, -1); err != nil {
		return err
	}
	spans, err := l.runPlan()
	if err != nil {
		return err
	}
	// The cut is at the frame holding offset, or, where offset lies in
	// offsets a cleaned segment dropped (compact.go), at offset itself,
	// after every frame below it: in the segment holding offset.
	i := l.core.segmentFor(offset)
	if i < 0 {
		return fmt.Errorf("segment: no segment holds offset %d", offset)
	}
	cutSeg, cutPos, cutBase := l.core.segs[i], l.core.segs[i].size, offset
	if len(spans) > 0 && spans[0].Segment == cutSeg {
		cutPos, cutBase = spans[0].Pos, min(offset, spans[0].FirstOffset)
	}
	removed, err := l.core.TruncateAt(cutSeg, cutPos, cutBase)
	if err != nil {
		return err
	}
	sp := Span{Segment: cutSeg}
	// The core has dropped the frames: from here on a failure leaves the
	// files in an unknown state, so it takes the log offline.
	//
	// The checkpoint goes first: its recovery point must be at or below the
	// cut before the segment's data is cut, or a crash before the later
	// segments' removal is durable finds a checkpoint that trusts the cut
	// segment whole, and a segment of zeros below the recovery point.
	if err := l.writeCheckpoint(); err != nil {
		return err
	}
	s := sp.Segment
	files := s.Handle.(*segFiles)
	f, err := l.dataFile(s)
	if err == nil {
		err = f.Truncate(s.size)
	}
	if err == nil {
		g := l.core.GrowthTo(s, s.size)
		err = l.grow(&g)
	}
	for _, x := range []File{f, files.off, files.tim} {
		if err == nil {
			err = x.Datasync()
		}
	}
	if err != nil {
		return l.fail(fmt.Errorf("segment: truncate segment %d at %d: %w", s.base, s.size, err))
	}
	if err := l.deleteSegments(removed); err != nil {
		return err
	}
	// Only once the cut is durable: until then a crash may bring back
	// frames of the epochs it drops.
	if err := l.trimEpochs(true); err != nil {
		return err
	}
	return l.cleanerTruncated()
}
