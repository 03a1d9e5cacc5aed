package group

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
)

// Coordinator holds the groups one coordinator leads. It is not safe for
// concurrent use: the shard that owns the group log drives it.
type Coordinator struct {
	cfg    Config
	groups map[string]*group
	// topics is the topic metadata: name -> partition count.
	topics map[string]int32
	out    []Record
	// replayNowMs is when Replay runs: every session it rebuilds starts
	// then, as a new coordinator gives every member a full session.
	replayNowMs int64
}

// New returns a coordinator with no groups and no topics.
func New(cfg Config) *Coordinator {
	return &Coordinator{cfg: cfg.withDefaults(), groups: map[string]*group{}, topics: map[string]int32{}}
}

// Replay builds the coordinator that the records describe: a new
// coordinator after failover, reading the group log from the start. Every
// member's session starts at nowMs. Topic metadata is not in the log; the
// caller passes the present metadata to SetTopics next, which bumps the
// epoch of any group whose topics changed meanwhile.
func Replay(cfg Config, records []Record, nowMs int64) (*Coordinator, error) {
	c := New(cfg)
	c.replayNowMs = nowMs
	for i, r := range records {
		if err := c.apply(r); err != nil {
			return nil, fmt.Errorf("group: record %d (%v): %v", i, r.Type, err)
		}
	}
	for _, g := range c.groups {
		for _, m := range g.members {
			if len(m.pending) > 0 {
				m.revokeSinceMs = nowMs
			}
		}
	}
	c.startRebalanceClocks()
	return c, nil
}

// Config returns the settings in force, defaults filled in.
func (c *Coordinator) Config() Config { return c.cfg }

// SetTopics replaces the topic metadata (topic -> partition count). Every
// group whose members subscribe to a topic that appeared, disappeared or
// changed its partition count gets a new group epoch, so its next
// heartbeat computes a new target assignment.
func (c *Coordinator) SetTopics(topics map[string]int32, nowMs int64) []Record {
	c.topics = maps.Clone(topics)
	for _, id := range c.sortedGroupIDs() {
		g := c.groups[id]
		if len(g.members) > 0 && c.metadataHash(g) != g.metadataHash {
			c.bumpEpoch(g)
		}
	}
	c.observeRebalances(nowMs)
	return c.take()
}

// Tick expires what time has run out on: members whose session lapsed,
// members that held partitions past the rebalance timeout after being
// asked to revoke them, and the offsets of groups empty for longer than
// the retention. A session lasts SessionTimeoutMs after the last
// heartbeat: a member heard at t is still in the group at
// t+SessionTimeoutMs and gone after it.
func (c *Coordinator) Tick(nowMs int64) []Record {
	for _, id := range c.sortedGroupIDs() {
		g := c.groups[id]
		for _, mid := range g.sortedMemberIDs() {
			m := g.members[mid]
			lapsed := nowMs-m.lastHeartbeatMs > c.cfg.SessionTimeoutMs
			rebalance := c.cfg.RebalanceTimeoutMs
			if m.rebalanceTimeoutMs > 0 {
				rebalance = m.rebalanceTimeoutMs
			}
			stuck := len(m.pending) > 0 && nowMs-m.revokeSinceMs > rebalance
			if lapsed || stuck {
				c.removeMember(g, m, nowMs)
			}
		}
		c.expireOffsets(g, nowMs)
	}
	c.observeRebalances(nowMs)
	return c.take()
}

func (c *Coordinator) sortedGroupIDs() []string {
	ids := slices.Collect(maps.Keys(c.groups))
	slices.Sort(ids)
	return ids
}

// subscribedTopics is the sorted set of existing topics some member of g
// subscribes to.
func (c *Coordinator) subscribedTopics(g *group) []string {
	var out []string
	for _, t := range slices.Sorted(maps.Keys(c.topics)) {
		for _, m := range g.members {
			if m.subscribes(t) {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// metadataHash fingerprints the partition counts of g's subscribed
// topics.
func (c *Coordinator) metadataHash(g *group) uint64 {
	h := fnv.New64a()
	for _, t := range c.subscribedTopics(g) {
		fmt.Fprintf(h, "%s\x00%d\x00", t, c.topics[t])
	}
	return h.Sum64()
}

// bumpEpoch starts a new group epoch: the target assignment is computed
// again at the next heartbeat.
func (c *Coordinator) bumpEpoch(g *group) {
	empty := int64(-1)
	if len(g.members) == 0 {
		empty = g.emptySinceMs
	}
	c.emit(Record{Type: RecordGroup, Group: g.id, Epoch: g.epoch + 1, MetadataHash: c.metadataHash(g), EmptySinceMs: empty, MemberSeq: g.memberSeq})
}

// removeMember takes a member out of the group and frees its partitions.
// The caller knows the member no longer owns them: it left, or its session
// or rebalance timeout ran out (and a member that has not heard from the
// coordinator within its session stops consuming on its own).
func (c *Coordinator) removeMember(g *group, m *member, nowMs int64) {
	c.emit(Record{Type: RecordCurrent, Tombstone: true, Group: g.id, MemberID: m.id})
	if g.target[m.id] != nil {
		c.emit(Record{Type: RecordTarget, Tombstone: true, Group: g.id, MemberID: m.id})
	}
	c.emit(Record{Type: RecordMember, Tombstone: true, Group: g.id, MemberID: m.id})
	if len(g.members) == 0 {
		c.emit(Record{Type: RecordGroup, Group: g.id, Epoch: g.epoch + 1, MetadataHash: c.metadataHash(g), EmptySinceMs: nowMs, MemberSeq: g.memberSeq})
		return
	}
	c.bumpEpoch(g)
}

// writeCurrent records a member's current assignment.
func (c *Coordinator) writeCurrent(g *group, m *member, epoch, prev int32, assigned, pending partSet) {
	c.emit(Record{Type: RecordCurrent, Group: g.id, MemberID: m.id, Epoch: epoch, PrevEpoch: prev,
		Partitions: assigned.sorted(), Pending: pending.sorted()})
}

// updateTarget computes the target assignment for the group epoch if it
// is behind, and records the targets that changed.
func (c *Coordinator) updateTarget(g *group) {
	if g.assignmentEpoch == g.epoch {
		return
	}
	next := assign(c.groupAssignor(g), c.assignInput(g))
	for _, id := range g.sortedMemberIDs() {
		old, had := g.target[id]
		if !had || !old.equal(next[id]) {
			c.emit(Record{Type: RecordTarget, Group: g.id, MemberID: id, Partitions: next[id].sorted()})
		}
	}
	c.emit(Record{Type: RecordAssignmentEpoch, Group: g.id, Epoch: g.epoch})
}

// groupAssignor is the assignor most members ask for (ties to the
// smaller name), or the configured one if none asks.
func (c *Coordinator) groupAssignor(g *group) string {
	votes := map[string]int{}
	for _, m := range g.members {
		if m.assignor != "" {
			votes[m.assignor]++
		}
	}
	best, bestVotes := c.cfg.Assignor, 0
	for _, name := range slices.Sorted(maps.Keys(votes)) {
		if votes[name] > bestVotes {
			best, bestVotes = name, votes[name]
		}
	}
	return best
}

func (c *Coordinator) assignInput(g *group) assignInput {
	in := assignInput{topics: map[string]int32{}, prev: g.target}
	for _, t := range c.subscribedTopics(g) {
		in.topics[t] = c.topics[t]
	}
	for _, id := range g.sortedMemberIDs() {
		m := g.members[id]
		var subs []string
		for _, t := range slices.Sorted(maps.Keys(in.topics)) {
			if m.subscribes(t) {
				subs = append(subs, t)
			}
		}
		in.members = append(in.members, assignMember{id: id, topics: subs})
	}
	return in
}
