package server

import (
	"errors"
	"sync/atomic"

	"github.com/strata-db/strata/segment"
)

// File holds per segment. A fetch answer's spans name segment data files
// by descriptor, and the kernel resolves a linked SPLICE's descriptor only
// when the SQE before it completes, so a descriptor closed while an answer
// still names it (and reused for another file or socket) would send the
// wrong bytes. Each segment therefore counts the answers that hold it; an
// answer takes the holds of the segments its spans lie in on the owner's
// thread and releases them on the answering shard once its last span has
// gone out (or its connection closed with nothing in flight).
//
// When retention (or a deletion) removes a segment, its files are unlinked
// at once, and its index files closed, but its data file stays open while
// its count is above 0 (Kafka's delayed segment deletion). A deleted
// segment's count only falls: no read can find it any more, so no new
// answer takes its hold, and its file closes as soon as the answers that
// read it before the deletion are done, however busy the partition is with
// answers from the segments that remain. A partition-wide count would have
// to reach 0 across every answer, which under continuous reads may never
// happen.

// segmentHold counts the fetch answers that may still splice from one
// segment's data file. Released on the answering shard, read by the owner.
type segmentHold struct {
	n atomic.Int64
	// The count is written from other shards' threads: keep it off the
	// cache line of whatever the allocator puts next to it.
	_ [cacheLineBytes - 8]byte
}

// cacheLineBytes is the cache line of the CPUs Strata runs on (x86-64,
// most arm64), in bytes.
const cacheLineBytes = 64

func (h *segmentHold) take() { h.n.Add(1) }

func (h *segmentHold) release() {
	if h.n.Add(-1) < 0 {
		panic("server: invariant: a segment's file released more often than held")
	}
}

// deletedFile is the still-open data file of a deleted segment, and the
// hold that keeps it open.
type deletedFile struct {
	hold *segmentHold
	file segment.File
}

// holdOf is the hold of a live segment of the partition, made on first
// use; only the owner's thread calls it.
func (p *partition) holdOf(s *segment.Segment) *segmentHold {
	h := p.holds[s]
	if h == nil {
		h = &segmentHold{}
		p.holds[s] = h
	}
	return h
}

// segmentDeleted takes the data file of a segment the log removed
// (ringlog.Log.KeepDeletedDataFiles): closed now if no answer holds it,
// else once the last one lets go (closeDeleted).
func (p *partition) segmentDeleted(s *segment.Segment, data segment.File) {
	h := p.holds[s]
	delete(p.holds, s)
	if h == nil || h.n.Load() == 0 {
		// No answer holds it, and none can take it any more.
		data.Close()
		return
	}
	p.deleted = append(p.deleted, deletedFile{hold: h, file: data})
}

// closeDeleted closes the data files of deleted segments that no answer
// holds any longer, or all of them when force is set (the shard has
// stopped: no SQE is left to name them).
func (p *partition) closeDeleted(force bool) error {
	var err error
	kept := p.deleted[:0]
	for _, d := range p.deleted {
		if !force && d.hold.n.Load() > 0 {
			kept = append(kept, d)
			continue
		}
		err = errors.Join(err, d.file.Close())
	}
	clear(p.deleted[len(kept):])
	p.deleted = kept
	return err
}

// fileHolds counts the answers holding any of the partition's data files,
// live segments' and deleted ones' (an answer holding several segments
// counts once for each).
func (p *partition) fileHolds() int64 {
	var n int64
	for _, h := range p.holds {
		n += h.n.Load()
	}
	for _, d := range p.deleted {
		n += d.hold.n.Load()
	}
	return n
}
