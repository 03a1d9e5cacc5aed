package ringlog

import (
	"fmt"
	"math"

	"github.com/strata-db/strata/segment"
)

// Reads. A fetch must not read frame headers through syscalls on the shard,
// so the log keeps a table of the most recent frames it committed (segment,
// position, length, offsets, max timestamp): hotFramesMax of them, across
// segment boundaries, the oldest dropped first. A read from an offset the
// table holds is answered from memory. A read from older data (before the
// table's first frame, or anything after Open until frames are appended)
// takes the cold path: segment.Log.Read, which finds the frames through the
// index and pread's their headers. That path blocks the shard for as long as
// the preads take (page cache: microseconds; disk: milliseconds).

type hotFrame struct {
	seg   *segment.Segment
	pos   int64
	len   int64
	base  int64
	next  int64
	maxTs int64
}

// hotTable is a ring of the most recent committed frames, contiguous in
// offsets: entry i+1 starts at entry i's next offset.
type hotTable struct {
	frames [hotFramesMax]hotFrame
	first  uint64 // sequence number of the oldest entry
	n      int
}

func (t *hotTable) at(i int) *hotFrame {
	return &t.frames[(t.first+uint64(i))%hotFramesMax]
}

func (t *hotTable) add(p *segment.AppendPlan, maxTs int64) {
	if t.n > 0 && t.at(t.n-1).next != p.BaseOffset {
		panic(fmt.Sprintf("ringlog: invariant: frame table holds contiguous offsets, got %d after %d", p.BaseOffset, t.at(t.n-1).next))
	}
	if t.n == hotFramesMax {
		t.first++
		t.n--
	}
	*t.at(t.n) = hotFrame{seg: p.Segment, pos: p.Pos, len: p.Len, base: p.BaseOffset, next: p.NextOffset, maxTs: maxTs}
	t.n++
}

// trim drops frames wholly below logStart (their segments may be deleted).
func (t *hotTable) trim(logStart int64) {
	for t.n > 0 && t.at(0).next <= logStart {
		*t.at(0) = hotFrame{}
		t.first++
		t.n--
	}
}

func (t *hotTable) clear() {
	for t.n > 0 {
		*t.at(0) = hotFrame{}
		t.first++
		t.n--
	}
}

// find returns the index of the entry holding offset, or -1 when offset is
// before the table.
func (t *hotTable) find(offset int64) int {
	if t.n == 0 || offset < t.at(0).base {
		return -1
	}
	lo, hi := 0, t.n // the first entry whose next is above offset
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.at(m).next <= offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == t.n {
		return -1
	}
	return lo
}

// Read returns spans of whole frames from the frame holding offset: at most
// maxBytes in all but always the whole first frame, and only frames that end
// at or below upperOffset (the high watermark; -1 for none). Each span is a
// run of frames in one segment's data file (Fd gives its descriptor) for a
// zero-copy send. An offset equal to End gives no spans.
//
// From the frame table the spans are the Log's own slice, valid until the
// next Read, and nothing blocks; older data is read through the cold path
// (see above), which blocks and allocates. Spans stay valid until the next
// Truncate, DeleteRecordsBefore, ApplyRetention or Close.
//
// The last span's NextOffset is the end offset of the last whole frame
// included (offset itself when there are none). So a leader answering a
// follower's fetch with the frames whose base offsets lie in [windowStart,
// limit), up to a byte bound at a frame boundary, calls
// Read(windowStart, maxBytes, limit) with limit a frame boundary (its log
// end, or the offsets its accepted appends reached); a frame that straddles
// upperOffset is left out whole.
func (l *Log) Read(offset int64, maxBytes int, upperOffset int64) ([]segment.Span, error) {
	if err := l.usable(); err != nil {
		return nil, err
	}
	start, end := l.core.LogStart(), l.core.End()
	if offset < start || offset > end {
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", segment.ErrOffsetOutOfRange, offset, start, end)
	}
	if upperOffset < 0 {
		upperOffset = math.MaxInt64
	}
	l.spans = l.spans[:0]
	if offset == end || offset >= upperOffset {
		return l.spans, nil
	}
	i := l.hot.find(offset)
	if i < 0 {
		l.stats.ColdReads++
		return l.sync.Read(offset, int64(maxBytes), upperOffset)
	}
	l.stats.HotReads++
	total := int64(0)
	for ; i < l.hot.n; i++ {
		f := l.hot.at(i)
		if f.next > upperOffset || (total > 0 && total+f.len > int64(maxBytes)) {
			break
		}
		if k := len(l.spans) - 1; k >= 0 && l.spans[k].Segment == f.seg && l.spans[k].Pos+l.spans[k].Len == f.pos {
			l.spans[k].Len += f.len
			l.spans[k].NextOffset = f.next
		} else {
			l.spans = append(l.spans, segment.Span{Segment: f.seg, Pos: f.pos, Len: f.len, FirstOffset: f.base, NextOffset: f.next})
		}
		total += f.len
		if total >= int64(maxBytes) {
			break
		}
	}
	return l.spans, nil
}

// ReadByTime returns spans from the first frame whose newest record is at
// or after ts, through the synchronous path (segment.Log.ReadByTime): it
// blocks and allocates, and serves time lookups (ListOffsets), not the
// fetch path.
func (l *Log) ReadByTime(ts int64, maxBytes int, upperOffset int64) ([]segment.Span, error) {
	if err := l.usable(); err != nil {
		return nil, err
	}
	return l.sync.ReadByTime(ts, int64(maxBytes), upperOffset)
}

// ReadSpans copies the bytes of spans into dst, through the synchronous
// path: for control operations that must look inside a frame.
func (l *Log) ReadSpans(dst []byte, spans []segment.Span) ([]byte, error) {
	return l.sync.ReadSpans(dst, spans)
}
