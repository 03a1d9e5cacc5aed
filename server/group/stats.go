package group

import "slices"

// What the coordinator tells the broker's metrics about its groups: the
// committed offsets, and each group's rebalances (docs/consumer-groups.md,
// "Metrics"). Nothing here is durable: the rebalance clock is memory, like
// sessions, and starts afresh on a new coordinator.

// RebalanceBucketsMs are the upper bounds of the rebalance duration
// histogram's buckets: a rebalance that moves at the heartbeat interval
// takes seconds, one that waits for a stuck member up to the rebalance
// timeout (300 s by default).
var RebalanceBucketsMs = []int64{100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000}

// rebalanceClock times one group's rebalances (memory only).
type rebalanceClock struct {
	// active is set while a rebalance runs, since sinceMs.
	active  bool
	sinceMs int64
	// seenEpoch is the group epoch the clock last saw: 0 for a group
	// made in this coordinator's life, the replayed epoch for one rebuilt
	// by Replay (whose earlier rebalances happened under another).
	seenEpoch int32
	// count, totalMs and buckets (by RebalanceBucketsMs, one more for
	// those longer) describe the rebalances that ended.
	count   uint64
	totalMs int64
	buckets []uint64
}

// settled reports whether the group is at rest: its target assignment is
// computed for the group epoch, and every member present holds exactly its
// target at that epoch, revoking nothing. A group with no members is at
// rest.
func settled(g *group) bool {
	if len(g.members) == 0 {
		return true
	}
	if g.assignmentEpoch != g.epoch {
		return false
	}
	for _, m := range g.members {
		if !memberSettled(g, m) {
			return false
		}
	}
	return true
}

// memberSettled reports whether m holds exactly its target at the group
// epoch, revoking nothing. A static member that left with -2 is away, its
// partitions reserved for its return: it does not hold the group up.
func memberSettled(g *group, m *member) bool {
	if m.epoch == EpochStaticLeave {
		return true
	}
	return m.epoch == g.epoch && len(m.pending) == 0 && m.assigned.equal(g.target[m.id])
}

// observe moves the clock on what the group is now. A rebalance starts
// when the group epoch moves while the group has members (a join, a leave,
// a subscription or metadata change: the epoch passes every member's) or
// when the group stops being at rest, and ends when it is at rest again:
// every member reached the epoch and holds its target, or the last member
// left. One that starts and ends within a single call lasts 0 ms; an epoch
// that moves again during a rebalance extends it.
func (rc *rebalanceClock) observe(atRest bool, epoch int32, members int, nowMs int64) {
	moved := epoch != rc.seenEpoch && members > 0
	rc.seenEpoch = epoch
	if !rc.active && (moved || !atRest) {
		rc.active, rc.sinceMs = true, nowMs
	}
	if rc.active && atRest {
		d := max(nowMs-rc.sinceMs, 0)
		rc.active = false
		rc.count++
		rc.totalMs += d
		if rc.buckets == nil {
			rc.buckets = make([]uint64, len(RebalanceBucketsMs)+1)
		}
		i, _ := slices.BinarySearch(RebalanceBucketsMs, d)
		rc.buckets[i]++
	}
}

// observeRebalance moves one group's rebalance clock after a heartbeat of
// memberID. A group at rest whose epoch did not move can have changed only
// in that member (a heartbeat touches its own member; anything that
// touches others moves the epoch), so only it is looked at: a heartbeat
// costs no walk of the group unless a rebalance runs.
func (c *Coordinator) observeRebalance(groupID, memberID string, nowMs int64) {
	g := c.groups[groupID]
	if g == nil {
		return
	}
	rc := &g.rebalance
	if !rc.active && g.epoch == rc.seenEpoch && g.assignmentEpoch == g.epoch {
		if m := g.members[memberID]; m == nil || memberSettled(g, m) {
			return
		}
	}
	rc.observe(settled(g), g.epoch, len(g.members), nowMs)
}

// observeRebalances moves every group's rebalance clock after a tick or
// new metadata. A group at rest whose epoch did not move is still at rest
// (only heartbeats change members without moving the epoch), so the tick
// walks only the groups that are rebalancing or whose epoch moved.
func (c *Coordinator) observeRebalances(nowMs int64) {
	for _, g := range c.groups {
		rc := &g.rebalance
		if !rc.active && g.epoch == rc.seenEpoch && g.assignmentEpoch == g.epoch {
			continue
		}
		rc.observe(settled(g), g.epoch, len(g.members), nowMs)
	}
}

// startRebalanceClocks starts the clocks of replayed groups at the epoch
// they were replayed at: their rebalances before were another
// coordinator's, and one still running is timed from the replay.
func (c *Coordinator) startRebalanceClocks() {
	for _, g := range c.groups {
		g.rebalance.seenEpoch = g.epoch
	}
}

// GroupStats is one group as the metrics see it.
type GroupStats struct {
	ID      string
	State   string
	Epoch   int32
	Members int
	// Rebalancing is set while a rebalance runs, since RebalanceSinceMs.
	Rebalancing      bool
	RebalanceSinceMs int64
	// Rebalances is how many ended, RebalanceTotalMs their summed length,
	// RebalanceBuckets their count by RebalanceBucketsMs (not cumulative;
	// the last counts those longer than every bound).
	Rebalances       uint64
	RebalanceTotalMs int64
	RebalanceBuckets []uint64
	// Offsets are the committed offsets, sorted.
	Offsets []CommittedOffset
}

// CommittedOffset is one committed offset of a group.
type CommittedOffset struct {
	TopicPartition
	Offset   int64
	CommitMs int64
}

// Stats describes every group, in id order, with at most offsetsMax
// committed offsets in all (the groups past the bound keep theirs out, so
// a group's offsets are all there or none are); omitted is how many were
// left out.
func (c *Coordinator) Stats(offsetsMax int) (out []GroupStats, omitted int) {
	out = make([]GroupStats, 0, len(c.groups))
	for _, id := range c.sortedGroupIDs() {
		g := c.groups[id]
		rc := &g.rebalance
		s := GroupStats{ID: id, State: groupState(g), Epoch: g.epoch, Members: len(g.members),
			Rebalancing: rc.active, RebalanceSinceMs: rc.sinceMs, Rebalances: rc.count, RebalanceTotalMs: rc.totalMs,
			RebalanceBuckets: slices.Clone(rc.buckets)}
		if s.RebalanceBuckets == nil {
			s.RebalanceBuckets = make([]uint64, len(RebalanceBucketsMs)+1)
		}
		if len(g.offsets) <= offsetsMax {
			offsetsMax -= len(g.offsets)
			for _, tp := range sortedOffsets(g) {
				o := g.offsets[tp]
				s.Offsets = append(s.Offsets, CommittedOffset{TopicPartition: tp, Offset: o.Offset, CommitMs: o.CommitMs})
			}
		} else {
			omitted += len(g.offsets)
		}
		out = append(out, s)
	}
	return out, omitted
}
