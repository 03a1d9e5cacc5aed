package ringlog

import (
	"fmt"

	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

// Growth. A segment's files are allocated in steps (segment.Growth): before
// the next append would pass the active segment's allocated end, the log
// submits one FALLOCATE SQE per file that grows (data, offset index, time
// index) and submits no further write until all of them completed. Writes
// below the allocated end already in flight go on meanwhile. So a full disk
// fails a fallocate, and never a write or a store through an index mapping into an
// unallocated page (which would be SIGBUS, not an error). The step is large
// (32 MiB by default): one wait for a fallocate per step's worth of appends.

// The files of a growth, and the slots of their FALLOCATE SQEs.
const (
	growData uint32 = iota
	growOffsetIndex
	growTimeIndex
	growFiles
)

// grow submits the FALLOCATE SQEs of a growth of the active segment.
func (l *Log) grow(g *segment.Growth) error {
	ranges := [growFiles]segment.ByteRange{g.Data, g.OffsetIndex, g.TimeIndex}
	fds := [growFiles]int{l.activeFd, l.activeIdxFds[0], l.activeIdxFds[1]}
	l.growth, l.growErr = *g, nil
	l.stats.Grows++
	for i, r := range ranges {
		if r.Empty() {
			continue
		}
		sqe, err := l.getSQE()
		if err != nil {
			// The SQEs already queued complete later; growing counts them.
			return err
		}
		sqe.PrepFallocate(l.allocateFd(fds[i]), 0, uint64(r.From), uint64(r.To-r.From))
		sqe.SetUserData(l.tag(kindGrow, uint32(i)))
		l.growing |= 1 << i
	}
	if l.growing == 0 {
		l.core.Grown(g)
	}
	return nil
}

func (l *Log) growDone(index uint32, res int32) {
	if index >= growFiles || l.growing&(1<<index) == 0 {
		panic(fmt.Sprintf("ringlog: invariant: fallocate completion for slot %d, which has none in flight", index))
	}
	l.growing &^= 1 << index
	// A filesystem without fallocate cannot reserve blocks: the writes
	// extend the data file, and the index files are already full length.
	if res < 0 && unix.Errno(-res) != unix.EOPNOTSUPP && l.growErr == nil {
		l.growErr = unix.Errno(-res)
	}
	if l.growing != 0 || l.err != nil {
		return
	}
	if err := l.growErr; err != nil {
		l.growErr = nil
		if segment.IsNoSpace(err) {
			// No write waited on it has started: the growth is
			// submitted again once there is room (nospace.go).
			l.holdForSpace(fmt.Errorf("ringlog: allocate segment %d for %d bytes of data: %w", l.growth.Segment.Base(), l.growth.Target, err))
			return
		}
		l.fatal(fmt.Errorf("ringlog: allocate segment %d for %d bytes of data: %w", l.growth.Segment.Base(), l.growth.Target, err))
		return
	}
	for _, r := range [growFiles]segment.ByteRange{l.growth.Data, l.growth.OffsetIndex, l.growth.TimeIndex} {
		if !r.Empty() {
			l.stats.GrownBytes += r.To - r.From
		}
	}
	l.core.Grown(&l.growth)
	l.roomFound()
}
