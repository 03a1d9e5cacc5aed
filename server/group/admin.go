package group

import "slices"

// Group states, as ConsumerGroupDescribe and ListGroups name them.
const (
	// StateEmpty: no members.
	StateEmpty = "Empty"
	// StateAssigning: the group epoch is ahead of the target assignment;
	// the next heartbeat computes a new one.
	StateAssigning = "Assigning"
	// StateReconciling: some member has not reached the target assignment
	// (its epoch is behind, or it is revoking).
	StateReconciling = "Reconciling"
	// StateStable: every member holds its target at the assignment epoch.
	StateStable = "Stable"
)

// GroupSummary names one group and its state.
type GroupSummary struct {
	ID    string
	State string
}

// GroupDescription is one group's durable state, for ConsumerGroupDescribe.
type GroupDescription struct {
	ID              string
	State           string
	Epoch           int32
	AssignmentEpoch int32
	// Assignor is the assignor the group uses now.
	Assignor string
	Members  []MemberDescription
}

// MemberDescription is one member as the coordinator knows it.
type MemberDescription struct {
	ID         string
	InstanceID string
	Epoch      int32
	Topics     []string
	Regex      string
	Assignor   string
	// RebalanceTimeoutMs is the member's own, 0 for the coordinator's.
	RebalanceTimeoutMs int64
	Assigned           []TopicPartition
	Pending            []TopicPartition
	Target             []TopicPartition
}

func groupState(g *group) string {
	switch {
	case len(g.members) == 0:
		return StateEmpty
	case g.assignmentEpoch < g.epoch:
		return StateAssigning
	}
	for _, m := range g.members {
		if m.epoch != g.assignmentEpoch || len(m.pending) > 0 {
			return StateReconciling
		}
	}
	return StateStable
}

// ListGroups is every group with its state, in id order.
func (c *Coordinator) ListGroups() []GroupSummary {
	out := make([]GroupSummary, 0, len(c.groups))
	for _, id := range c.sortedGroupIDs() {
		out = append(out, GroupSummary{ID: id, State: groupState(c.groups[id])})
	}
	return out
}

// DescribeGroup describes one group; ok is false when there is none.
func (c *Coordinator) DescribeGroup(id string) (d GroupDescription, ok bool) {
	g := c.groups[id]
	if g == nil {
		return d, false
	}
	d = GroupDescription{ID: id, State: groupState(g), Epoch: g.epoch, AssignmentEpoch: g.assignmentEpoch, Assignor: c.groupAssignor(g)}
	for _, mid := range g.sortedMemberIDs() {
		m := g.members[mid]
		d.Members = append(d.Members, MemberDescription{ID: m.id, InstanceID: m.instanceID, Epoch: m.epoch,
			Topics: slices.Clone(m.topics), Regex: m.regex, Assignor: m.assignor, RebalanceTimeoutMs: m.rebalanceTimeoutMs,
			Assigned: m.assigned.sorted(), Pending: m.pending.sorted(), Target: g.target[m.id].sorted()})
	}
	return d, true
}

// DeleteGroup deletes a group that has no members, with its committed
// offsets: ErrGroupIDNotFound when there is no such group,
// ErrNonEmptyGroup while it has members.
func (c *Coordinator) DeleteGroup(id string) (ErrorCode, []Record) {
	g := c.groups[id]
	switch {
	case g == nil:
		return ErrGroupIDNotFound, nil
	case len(g.members) > 0:
		return ErrNonEmptyGroup, nil
	}
	for _, tp := range sortedOffsets(g) {
		c.emit(Record{Type: RecordOffset, Tombstone: true, Group: id, Topic: tp.Topic, Partition: tp.Partition})
	}
	c.emit(Record{Type: RecordGroup, Tombstone: true, Group: id})
	return ErrNone, c.take()
}

// IsMember reports whether the group has the member.
func (c *Coordinator) IsMember(groupID, memberID string) bool {
	g := c.groups[groupID]
	return g != nil && g.members[memberID] != nil
}
