package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Index entry layouts (little-endian, like the frame):
//
//	offset index entry (8 bytes)        time index entry (12 bytes)
//	+-----------+-----------+           +----------------+-----------+
//	| relOffset | position  |           |  timestampMs   | relOffset |
//	|  uint32   |  uint32   |           |     int64      |  uint32   |
//	+-----------+-----------+           +----------------+-----------+
//
// relOffset is relative to the segment's base offset. An offset entry says
// the frame whose first offset is base+relOffset starts at position. A time
// entry says every frame with offsets below base+relOffset has a max
// timestamp of at most timestampMs.
//
// Both files are full-size, sparse (their blocks allocated with the data's
// steps, see core_grow.go), zeros where unused, and written through a
// mapping. No
// valid entry is all zero (an offset entry is never written for the frame at
// position 0, and a time entry's relOffset is at least one frame past the
// base), so the entries in use are the leading non-zero ones and no separate
// count is stored.
const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

var errIndexInconsistent = errors.New("segment: index inconsistent")

func offsetEntryAt(b []byte, i int) (rel, pos uint32) {
	e := b[i*offsetEntrySize:]
	return binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:])
}

func putOffsetEntry(b []byte, i int, rel, pos uint32) {
	e := b[i*offsetEntrySize:]
	binary.LittleEndian.PutUint32(e, rel)
	binary.LittleEndian.PutUint32(e[4:], pos)
}

func timeEntryAt(b []byte, i int) (ts int64, rel uint32) {
	e := b[i*timeEntrySize:]
	return int64(binary.LittleEndian.Uint64(e)), binary.LittleEndian.Uint32(e[8:])
}

func putTimeEntry(b []byte, i int, ts int64, rel uint32) {
	e := b[i*timeEntrySize:]
	binary.LittleEndian.PutUint64(e, uint64(ts))
	binary.LittleEndian.PutUint32(e[8:], rel)
}

// scanOffsetIndex counts the leading entries in use and checks them: relative
// offsets and positions strictly increasing, positions inside the size data
// bytes, relative offsets below relEnd.
func scanOffsetIndex(b []byte, size int64, relEnd int64) (int, error) {
	n := len(b) / offsetEntrySize
	var prevRel, prevPos uint32
	for i := 0; i < n; i++ {
		rel, pos := offsetEntryAt(b, i)
		if rel == 0 && pos == 0 {
			return i, nil
		}
		if rel <= prevRel || pos <= prevPos || int64(pos) >= size || int64(rel) >= relEnd {
			return 0, fmt.Errorf("%w: offset entry %d (%d, %d) after (%d, %d), data %d bytes, %d offsets",
				errIndexInconsistent, i, rel, pos, prevRel, prevPos, size, relEnd)
		}
		prevRel, prevPos = rel, pos
	}
	return n, nil
}

// scanTimeIndex counts and checks the time index entries in use: timestamps
// never decreasing, relative offsets strictly increasing within (0, relEnd].
func scanTimeIndex(b []byte, relEnd int64) (int, error) {
	n := len(b) / timeEntrySize
	var prevTs int64
	var prevRel uint32
	for i := 0; i < n; i++ {
		ts, rel := timeEntryAt(b, i)
		if rel == 0 {
			if ts != 0 {
				return 0, fmt.Errorf("%w: time entry %d has timestamp %d and no offset", errIndexInconsistent, i, ts)
			}
			return i, nil
		}
		if (i > 0 && (ts < prevTs || rel <= prevRel)) || int64(rel) > relEnd {
			return 0, fmt.Errorf("%w: time entry %d (%d, %d) after (%d, %d), %d offsets",
				errIndexInconsistent, i, ts, rel, prevTs, prevRel, relEnd)
		}
		prevTs, prevRel = ts, rel
	}
	return n, nil
}

// lookupOffset returns the entry with the largest relative offset <= rel, or
// (0, 0) when none is (the segment start is implicitly indexed).
func lookupOffset(b []byte, n int, rel uint32) (uint32, uint32) {
	lo, hi := 0, n // find first entry with entry.rel > rel
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		r, _ := offsetEntryAt(b, mid)
		if r <= rel {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0, 0
	}
	return offsetEntryAt(b, lo-1)
}

// lookupPosition returns the last offset index entry whose position is at
// most maxPos (entries are in position order too), or ok=false when none is.
func lookupPosition(b []byte, n int, maxPos uint32) (rel, pos uint32, ok bool) {
	lo, hi := 0, n // find first entry with entry.pos > maxPos
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		_, p := offsetEntryAt(b, mid)
		if p <= maxPos {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0, 0, false
	}
	rel, pos = offsetEntryAt(b, lo-1)
	return rel, pos, true
}

// lookupTime returns the relative offset of the last time entry whose
// timestamp is below ts: every frame before it is older than ts, so a search
// may start there. It returns 0 when there is none.
func lookupTime(b []byte, n int, ts int64) uint32 {
	lo, hi := 0, n // find first entry with entry.ts >= ts
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		t, _ := timeEntryAt(b, mid)
		if t < ts {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0
	}
	_, rel := timeEntryAt(b, lo-1)
	return rel
}
