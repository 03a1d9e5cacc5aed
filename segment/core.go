package segment

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/strata-db/strata/schema"
)

// Segment is the core's record of one segment: where its data ends, which
// offsets it holds, and its indexes once loaded. Handle belongs to the driver
// (its open files); the core only carries it, so that every span and append
// plan leads the driver straight to a file descriptor.
type Segment struct {
	base     int64
	next     int64 // offset after the last committed frame
	size     int64 // committed bytes
	reserved int64 // bytes prepared but not yet committed
	// allocated is the data end the driver has allocated the segment's
	// files for (see Growth); appends stay below it.
	allocated int64
	maxTsMs   int64 // newest timestamp seen; meaningful once size > 0 and indexed
	firstMs   int64 // driver time of the first append, for the age roll
	closed    bool
	// retired is set when the cleaner replaced the segment (compact.go):
	// its name now holds the cleaned file, which its spans must never
	// reach by reopening the name.
	retired bool
	// gapped is set for a segment the cleaner rewrote, or whose next
	// segment it removed: its frames may skip offsets (compact.go).
	// Elsewhere frames are contiguous, and a frame that skips offsets is
	// damage (a chopped segment), which reads and recovery report.
	gapped bool
	idx    *segIndex
	Handle any
}

type segIndex struct {
	off            []byte
	offN           int
	tim            []byte
	timN           int
	lastIndexedPos int64
}

// Base is the segment's base offset (its file name).
func (s *Segment) Base() int64 { return s.base }

// Next is the offset after the segment's last frame.
func (s *Segment) Next() int64 { return s.next }

// Size is the number of committed data bytes.
func (s *Segment) Size() int64 { return s.size }

// Closed reports whether the segment was rolled (it takes no more appends).
func (s *Segment) Closed() bool { return s.closed }

// Indexed reports whether the segment's indexes are loaded.
func (s *Segment) Indexed() bool { return s.idx != nil }

// IndexLoader lets the core load a closed segment's indexes on first use,
// the way etcd raft's Storage lets the raft core fetch entries. The loader
// maps the files and calls Core.AttachIndex, rebuilding the index from the
// data first when it is missing or inconsistent.
type IndexLoader interface {
	LoadIndex(s *Segment) error
}

// Core is the sans-IO bookkeeping of one partition's log: which segments
// exist, which offsets and bytes each holds, where the next frame goes, what
// readers may see and what is durable. It makes no syscalls and reads no
// clock; a driver performs the I/O it decides on and reports back.
type Core struct {
	cfg           Config
	segs          []*Segment
	logStart      int64
	end           int64 // offset after the last committed frame
	reservedNext  int64 // offset the next prepared append gets
	pending       int   // prepared appends not yet committed
	recoveryPoint int64
	gen           uint64 // bumped whenever segments or data are removed
	loader        IndexLoader
}

// NewCore returns an empty core. The driver adds the segments it finds
// (AddTrustedSegment, BeginRecovery/EndRecovery, AddActiveSegment) and then
// calls FinishOpen.
func NewCore(cfg Config, loader IndexLoader) (*Core, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Core{cfg: cfg, loader: loader}, nil
}

// Config is the core's configuration with defaults applied.
func (c *Core) Config() Config { return c.cfg }

// LogStart is the first offset readers may see.
func (c *Core) LogStart() int64 { return c.logStart }

// End is the offset the next frame will get (the log end offset).
func (c *Core) End() int64 { return c.end }

// RecoveryPoint is the offset below which everything is known durable.
func (c *Core) RecoveryPoint() int64 { return c.recoveryPoint }

// Segments lists the segments, oldest first. The slice is the core's own.
func (c *Core) Segments() []*Segment { return c.segs }

// Active is the segment appends go to.
func (c *Core) Active() *Segment {
	if len(c.segs) == 0 {
		return nil
	}
	return c.segs[len(c.segs)-1]
}

// Size is the total of the segments' committed bytes.
func (c *Core) Size() int64 {
	var n int64
	for _, s := range c.segs {
		n += s.size
	}
	return n
}

func (c *Core) newSegment(base int64, off, tim []byte, handle any) *Segment {
	return &Segment{base: base, next: base, Handle: handle,
		idx: &segIndex{off: off, tim: tim}}
}

// AddTrustedSegment adds a closed segment below the recovery point: its size
// is taken from the file and its indexes are loaded on first use.
func (c *Core) AddTrustedSegment(base, size int64, handle any) error {
	if err := c.linkNext(base); err != nil {
		return err
	}
	if size < schema.FrameHeaderSize || size > segmentBytesMax {
		return fmt.Errorf("%w: segment %d has %d bytes", ErrCorrupt, base, size)
	}
	c.segs = append(c.segs, &Segment{base: base, next: base, size: size, closed: true, Handle: handle})
	return nil
}

// linkNext checks that a segment at base may follow the last one, and closes
// the last one's offset range at base.
func (c *Core) linkNext(base int64) error {
	if base < 0 {
		return fmt.Errorf("%w: negative base offset %d", ErrCorrupt, base)
	}
	if n := len(c.segs); n > 0 {
		prev := c.segs[n-1]
		if base <= prev.base || (prev.idx != nil && (base < prev.next || (!prev.gapped && base != prev.next))) || base-prev.base > relOffsetMax {
			return fmt.Errorf("%w: segment %d cannot follow segment %d (next %d)", ErrCorrupt, base, prev.base, prev.next)
		}
		if prev.idx != nil && base > prev.next {
			// A cleaned segment whose last frames were dropped (see
			// compact.go): its offset range still runs to the next
			// segment, and so does its closing time entry.
			extendFinalTimeEntry(prev, base)
		}
		prev.next = base
	}
	return nil
}

// extendFinalTimeEntry moves a closed segment's closing time entry from
// its last frame's end to next, the base of the segment after it, so that
// the entry covers the whole offset range as AttachIndex expects.
func extendFinalTimeEntry(s *Segment, next int64) {
	ix := s.idx
	if ix.timN == 0 {
		return
	}
	ts, rel := timeEntryAt(ix.tim, ix.timN-1)
	if int64(rel) == s.next-s.base {
		putTimeEntry(ix.tim, ix.timN-1, ts, uint32(next-s.base))
	}
}

// AddActiveSegment adds a new, empty segment at base with its full-size,
// zeroed, mapped index files. Nothing of it is allocated yet (see Growth).
func (c *Core) AddActiveSegment(base int64, off, tim []byte, handle any) (*Segment, error) {
	if err := c.checkIndexSizes(off, tim); err != nil {
		return nil, err
	}
	if err := c.linkNext(base); err != nil {
		return nil, err
	}
	if n := len(c.segs); n > 0 {
		c.segs[n-1].closed = true
	}
	s := c.newSegment(base, off, tim, handle)
	c.segs = append(c.segs, s)
	return s, nil
}

func (c *Core) checkIndexSizes(off, tim []byte) error {
	n := c.cfg.indexEntries()
	if len(off) != n*offsetEntrySize || len(tim) != n*timeEntrySize {
		return fmt.Errorf("segment: index mappings of %d and %d bytes, want %d and %d",
			len(off), len(tim), n*offsetEntrySize, n*timeEntrySize)
	}
	return nil
}

// FinishOpen sets the log start and recovery point after the driver added
// every segment; both are clamped into the log's offset range.
func (c *Core) FinishOpen(logStart, recoveryPoint int64) error {
	if len(c.segs) == 0 {
		return fmt.Errorf("segment: a log needs at least one segment")
	}
	a := c.Active()
	if a.idx == nil || a.closed {
		return fmt.Errorf("segment: last segment %d is not active", a.base)
	}
	c.end, c.reservedNext = a.next, a.next
	c.logStart = min(max(logStart, c.segs[0].base), c.end)
	c.recoveryPoint = min(recoveryPoint, c.end)
	c.check()
	return nil
}

// segmentFor returns the index of the segment holding offset (the last one
// whose base is <= offset).
func (c *Core) segmentFor(offset int64) int {
	i := sort.Search(len(c.segs), func(i int) bool { return c.segs[i].base > offset })
	return i - 1
}

// ensureIndex loads a segment's indexes through the loader if needed.
func (c *Core) ensureIndex(s *Segment) error {
	if s.idx != nil {
		return nil
	}
	if c.loader == nil {
		return fmt.Errorf("segment: index of segment %d not loaded and no loader", s.base)
	}
	if err := c.loader.LoadIndex(s); err != nil {
		return err
	}
	if s.idx == nil {
		return fmt.Errorf("segment: loader left segment %d without an index", s.base)
	}
	return nil
}

// AttachIndex attaches a closed segment's mapped index files after checking
// them against its size and offsets. On error nothing is attached and the
// caller rebuilds (ResetIndex, IndexFrame for every frame, FinishIndex).
func (c *Core) AttachIndex(s *Segment, off, tim []byte) error {
	relEnd := s.next - s.base
	offN, err := scanOffsetIndex(off, s.size, relEnd)
	if err != nil {
		return err
	}
	timN, err := scanTimeIndex(tim, relEnd)
	if err != nil {
		return err
	}
	if s.size > 0 {
		// A closed segment's last time entry covers all its offsets: it
		// carries the segment's max timestamp.
		if timN == 0 {
			return fmt.Errorf("%w: closed segment %d has no time entries", errIndexInconsistent, s.base)
		}
		ts, rel := timeEntryAt(tim, timN-1)
		if int64(rel) != relEnd {
			return fmt.Errorf("%w: last time entry of segment %d covers %d of %d offsets", errIndexInconsistent, s.base, rel, relEnd)
		}
		s.maxTsMs = ts
	}
	ix := &segIndex{off: off, offN: offN, tim: tim, timN: timN}
	if offN > 0 {
		_, pos := offsetEntryAt(off, offN-1)
		ix.lastIndexedPos = int64(pos)
	}
	s.idx = ix
	return nil
}

// ResetIndex zeroes a segment's index mappings and attaches them empty, to be
// rebuilt by IndexFrame calls over every frame and FinishIndex.
func (c *Core) ResetIndex(s *Segment, off, tim []byte) {
	clearNonZero(off)
	clearNonZero(tim)
	s.idx = &segIndex{off: off, tim: tim}
	s.maxTsMs = 0
}

// clearPageBytes is the unit clearNonZero checks and clears: the smallest
// page size, so that a chunk never straddles a hole and an allocated page.
const clearPageBytes = 4096

var zeroPage [clearPageBytes]byte

// clearNonZero zeroes b, writing only the pages that are not zero already.
// An index file is sparse past what its data needed: reading a hole maps
// the shared zero page, but writing it would allocate its blocks (all of
// a 10 MiB index for an empty segment) and, on a full disk, raise SIGBUS
// through the mapping. Pages holding entries are allocated already.
func clearNonZero(b []byte) {
	for len(b) > 0 {
		n := min(len(b), clearPageBytes)
		if !bytes.Equal(b[:n], zeroPage[:n]) {
			clear(b[:n])
		}
		b = b[n:]
	}
}

// IndexFrame records a frame at pos in a segment's indexes during a rebuild;
// frames must come in order from position 0.
func (c *Core) IndexFrame(s *Segment, pos int64, h *schema.FrameHeader) {
	c.indexFrame(s, pos, h.BaseOffset, h.NextOffset(), h.MaxTimestampMs)
}

// FinishIndex ends a rebuild of a closed segment's index.
func (c *Core) FinishIndex(s *Segment) { c.finalTimeEntry(s) }

// indexFrame is the one place index entries are made, for appends,
// recovery and rebuilds alike, so all three produce the same index.
func (c *Core) indexFrame(s *Segment, pos, base, next, maxTs int64) {
	ix := s.idx
	if pos == 0 || maxTs > s.maxTsMs {
		s.maxTsMs = maxTs
	}
	// An offset entry always comes with its time entry (or a reason to have
	// none): recovery relies on it, and the last time slot is kept for the
	// entry made when the segment closes.
	if pos-ix.lastIndexedPos < c.cfg.IndexIntervalBytes || ix.offN >= len(ix.off)/offsetEntrySize ||
		ix.timN >= len(ix.tim)/timeEntrySize-1 {
		return
	}
	putOffsetEntry(ix.off, ix.offN, uint32(base-s.base), uint32(pos))
	ix.offN++
	ix.lastIndexedPos = pos
	c.maybeTimeEntry(s, next)
}

func (c *Core) maybeTimeEntry(s *Segment, next int64) {
	ix := s.idx
	if ix.timN >= len(ix.tim)/timeEntrySize {
		return
	}
	if ix.timN > 0 {
		last, lastRel := timeEntryAt(ix.tim, ix.timN-1)
		if s.maxTsMs <= last {
			return
		}
		if int64(lastRel) >= next-s.base {
			// Raising a timestamp bound is always safe; a second entry
			// for the same offsets would break the strict ordering.
			putTimeEntry(ix.tim, ix.timN-1, s.maxTsMs, lastRel)
			return
		}
	}
	putTimeEntry(ix.tim, ix.timN, s.maxTsMs, uint32(next-s.base))
	ix.timN++
}

// finalTimeEntry makes a closing segment's last time entry cover all its
// offsets, so its max timestamp can be read back from the file. Its
// timestamp may equal the previous entry's: ordering is strict on offsets.
func (c *Core) finalTimeEntry(s *Segment) {
	if s.size == 0 {
		return
	}
	ix := s.idx
	relEnd := uint32(s.next - s.base)
	if ix.timN > 0 {
		ts, rel := timeEntryAt(ix.tim, ix.timN-1)
		if rel == relEnd {
			putTimeEntry(ix.tim, ix.timN-1, max(ts, s.maxTsMs), rel)
			return
		}
	}
	if ix.timN < len(ix.tim)/timeEntrySize {
		putTimeEntry(ix.tim, ix.timN, s.maxTsMs, relEnd)
		ix.timN++
	}
}
