package replica

import "fmt"

// NoEpoch stands for "no leader epoch": an empty log's last epoch, or an
// epoch the cache cannot name.
const NoEpoch int32 = -1

// EpochStart says that leader epoch Epoch's records begin at offset Start.
type EpochStart struct {
	Epoch int32
	Start int64
}

// EpochCache maps each leader epoch that wrote to the log to the first
// offset it wrote (Kafka's leader-epoch-checkpoint). Epochs and start
// offsets both increase along the cache. Every frame carries the epoch it
// was written in, so the driver can rebuild the cache from frame headers
// as well as keep it in a checkpoint.
type EpochCache struct {
	entries []EpochStart
}

// NewEpochCache returns a cache holding entries, which must have strictly
// increasing epochs and non-decreasing start offsets, none negative.
func NewEpochCache(entries []EpochStart) (*EpochCache, error) {
	for i, e := range entries {
		if e.Epoch < 0 || e.Start < 0 {
			return nil, fmt.Errorf("replica: epoch cache entry %+v is negative", e)
		}
		if i > 0 && (e.Epoch <= entries[i-1].Epoch || e.Start < entries[i-1].Start) {
			return nil, fmt.Errorf("replica: epoch cache entry %+v does not follow %+v", e, entries[i-1])
		}
	}
	return &EpochCache{entries: append([]EpochStart(nil), entries...)}, nil
}

// Entries returns a copy of the cache, oldest epoch first.
func (c *EpochCache) Entries() []EpochStart { return append([]EpochStart(nil), c.entries...) }

// Latest is the newest epoch in the cache, or NoEpoch.
func (c *EpochCache) Latest() int32 {
	if len(c.entries) == 0 {
		return NoEpoch
	}
	return c.entries[len(c.entries)-1].Epoch
}

// EpochOf is the epoch of the record at offset, or NoEpoch when offset is
// below the first entry. A follower's last fetched epoch is
// EpochOf(logEnd-1): an epoch that wrote nothing (a leadership with no
// appends) starts at the log end and is not the epoch of any record.
func (c *EpochCache) EpochOf(offset int64) int32 {
	for i := len(c.entries) - 1; i >= 0; i-- {
		if c.entries[i].Start <= offset {
			return c.entries[i].Epoch
		}
	}
	return NoEpoch
}

// Assign records that epoch writes from start on (a leader taking office
// at its log end, or an append of a batch of a newer epoch). Entries that
// start at or after start are epochs that wrote nothing below start and
// are dropped, as Kafka's cache does. Assigning the latest epoch again
// changes nothing.
func (c *EpochCache) Assign(epoch int32, start int64) {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].Start >= start && c.entries[n-1].Epoch != epoch {
		n--
	}
	c.entries = c.entries[:n]
	if n > 0 {
		last := c.entries[n-1]
		if last.Epoch == epoch {
			return
		}
		if last.Epoch > epoch {
			panic(fmt.Sprintf("replica: invariant: epoch %d assigned at %d after epoch %d from %d",
				epoch, start, last.Epoch, last.Start))
		}
	}
	c.entries = append(c.entries, EpochStart{Epoch: epoch, Start: start})
}

// TruncateFromEnd drops every epoch that starts at or after end: the log
// was cut at end.
func (c *EpochCache) TruncateFromEnd(end int64) {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].Start >= end {
		n--
	}
	c.entries = c.entries[:n]
}

// EndOffsetFor answers Kafka's OffsetsForLeaderEpoch for a log whose end is
// logEnd: the largest epoch at or below epoch that the cache holds, and the
// offset where it ends (the start of the next epoch, or logEnd for the
// latest). An epoch below every entry answers itself and the first start
// offset; an epoch above the latest, or an empty cache, answers
// (NoEpoch, -1).
func (c *EpochCache) EndOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	if epoch == NoEpoch || len(c.entries) == 0 {
		return NoEpoch, -1
	}
	if c.Latest() == epoch {
		return epoch, logEnd
	}
	higher := -1
	for i, e := range c.entries {
		if e.Epoch > epoch {
			higher = i
			break
		}
	}
	switch {
	case higher < 0:
		return NoEpoch, -1
	case higher == 0:
		return epoch, c.entries[0].Start
	default:
		return c.entries[higher-1].Epoch, c.entries[higher].Start
	}
}
