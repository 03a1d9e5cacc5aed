package replica

import "slices"

// FollowerProgress is a leader's view of one follower in the current term,
// for operators: how far behind the leader's log it is, in records and in
// time.
type FollowerProgress struct {
	ID int32
	// LogEnd is the log end of its latest fetch this term, -1 until it
	// fetched; DurableEnd the largest durable end it reported, -1 as well.
	LogEnd     int64
	DurableEnd int64
	// LagRecords is the leader's log end minus LogEnd (the whole log while
	// LogEnd is unknown).
	LagRecords int64
	// LagMs is how long ago it was last known to hold the leader's whole
	// log (the ISR shrink rule's measure), 0 while it is at the end.
	LagMs int64
	InISR bool
}

// AppendFollowers appends the leader's view of each other replica, in
// replica order, to dst and returns it; a replica that does not lead
// appends nothing. The caller owns dst, so a driver that publishes the
// lags on every tick reuses one slice.
func (p *Partition) AppendFollowers(dst []FollowerProgress) []FollowerProgress {
	if p.role != RoleLeader {
		return dst
	}
	for _, id := range p.replicas {
		f := p.lead.followers[id]
		if id == p.cfg.ID || f == nil {
			continue
		}
		fp := FollowerProgress{ID: id, LogEnd: f.logEnd, DurableEnd: f.durable, LagRecords: p.logEnd - max(f.logEnd, 0),
			InISR: slices.Contains(p.isr, id)}
		if f.logEnd != p.logEnd {
			fp.LagMs = max(p.nowMs-f.lastCaughtUpMs, 0)
		}
		dst = append(dst, fp)
	}
	return dst
}

// PartitionEpoch is the partition epoch of the partition state the
// replica holds: it moves with every ISR change the replica takes in.
func (p *Partition) PartitionEpoch() int32 { return p.partitionEpoch }

// ReplicaCount is the size of the replica set under the latest image.
func (p *Partition) ReplicaCount() int { return len(p.replicas) }
