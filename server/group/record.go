package group

import (
	"fmt"

	"slices"
	"strings"
)

// RecordType names what a Record carries. Together the records are the
// coordinator's whole durable state, as in Kafka's __consumer_offsets:
// the broker appends them to the group's log (compacted by key: the
// record type, the group and the member or partition) before it answers
// the request that produced them.
type RecordType uint8

const (
	// RecordGroup: the group epoch, the metadata fingerprint and when the
	// group became empty. A tombstone deletes the group.
	RecordGroup RecordType = iota + 1
	// RecordMember: a member's instance id and subscription.
	RecordMember
	// RecordTarget: a member's target assignment.
	RecordTarget
	// RecordAssignmentEpoch: the group epoch the targets were computed for.
	RecordAssignmentEpoch
	// RecordCurrent: a member's epoch, previous epoch, assigned partitions
	// and partitions pending revocation.
	RecordCurrent
	// RecordOffset: a committed offset.
	RecordOffset
)

var recordNames = [...]string{
	RecordGroup: "Group", RecordMember: "Member", RecordTarget: "Target",
	RecordAssignmentEpoch: "AssignmentEpoch", RecordCurrent: "Current", RecordOffset: "Offset",
}

func (t RecordType) String() string {
	if int(t) < len(recordNames) && recordNames[t] != "" {
		return recordNames[t]
	}
	return fmt.Sprintf("RecordType(%d)", t)
}

// Record is one change to the durable state. Which fields count depends
// on Type; a Tombstone carries only its key (Type, Group, MemberID or
// Topic and Partition).
type Record struct {
	Type      RecordType
	Tombstone bool
	Group     string

	// RecordGroup.
	Epoch        int32
	MetadataHash uint64
	EmptySinceMs int64
	// MemberSeq counts the member ids the coordinator has made up for the
	// group, so each is new.
	MemberSeq uint64

	// RecordMember, RecordTarget, RecordCurrent.
	MemberID   string
	InstanceID string
	Topics     []string
	Regex      string
	Assignor   string
	// RebalanceTimeoutMs is the member's own (RecordMember), 0 for the
	// coordinator's.
	RebalanceTimeoutMs int64
	PrevEpoch          int32
	Partitions         []TopicPartition
	Pending            []TopicPartition

	// RecordOffset.
	Topic     string
	Partition int32
	Offset    int64
	Metadata  string
	CommitMs  int64
}

func (r Record) String() string {
	var b strings.Builder
	b.WriteString(r.Type.String())
	if r.Tombstone {
		b.WriteString(" tombstone")
	}
	fmt.Fprintf(&b, " group=%s", r.Group)
	if r.Tombstone {
		switch r.Type {
		case RecordMember, RecordTarget, RecordCurrent:
			fmt.Fprintf(&b, " member=%s", r.MemberID)
		case RecordOffset:
			fmt.Fprintf(&b, " %s-%d", r.Topic, r.Partition)
		}
		return b.String()
	}
	switch r.Type {
	case RecordGroup:
		fmt.Fprintf(&b, " epoch=%d empty-since=%d", r.Epoch, r.EmptySinceMs)
		if r.MemberSeq > 0 {
			fmt.Fprintf(&b, " member-seq=%d", r.MemberSeq)
		}
	case RecordMember:
		fmt.Fprintf(&b, " member=%s", r.MemberID)
		if r.InstanceID != "" {
			fmt.Fprintf(&b, " instance=%s", r.InstanceID)
		}
		if r.Regex != "" {
			fmt.Fprintf(&b, " regex=%q", r.Regex)
		} else {
			fmt.Fprintf(&b, " topics=%v", r.Topics)
		}
		if r.Assignor != "" {
			fmt.Fprintf(&b, " assignor=%s", r.Assignor)
		}
		if r.RebalanceTimeoutMs > 0 {
			fmt.Fprintf(&b, " rebalance=%d", r.RebalanceTimeoutMs)
		}
	case RecordTarget:
		fmt.Fprintf(&b, " member=%s %s", r.MemberID, fmtParts(r.Partitions))
	case RecordAssignmentEpoch:
		fmt.Fprintf(&b, " epoch=%d", r.Epoch)
	case RecordCurrent:
		fmt.Fprintf(&b, " member=%s epoch=%d prev=%d %s", r.MemberID, r.Epoch, r.PrevEpoch, fmtParts(r.Partitions))
		if len(r.Pending) > 0 {
			fmt.Fprintf(&b, " revoking=%s", fmtParts(r.Pending))
		}
	case RecordOffset:
		fmt.Fprintf(&b, " %s-%d offset=%d at=%d", r.Topic, r.Partition, r.Offset, r.CommitMs)
		if r.Metadata != "" {
			fmt.Fprintf(&b, " metadata=%q", r.Metadata)
		}
	}
	return b.String()
}

func fmtParts(tps []TopicPartition) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, tp := range tps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(tp.String())
	}
	b.WriteByte(']')
	return b.String()
}

// apply changes the state by one record. The live coordinator applies
// every record it emits through here and Replay applies the log through
// here, so both build the same state. An error means the records are not
// a log this package wrote.
func (c *Coordinator) apply(r Record) error {
	g := c.groups[r.Group]
	if g == nil {
		if r.Tombstone {
			return fmt.Errorf("%v tombstone for unknown group %q", r.Type, r.Group)
		}
		if r.Type != RecordGroup && r.Type != RecordMember && r.Type != RecordOffset {
			return fmt.Errorf("%v for unknown group %q", r.Type, r.Group)
		}
		g = newGroup(r.Group)
		c.groups[r.Group] = g
	}
	switch r.Type {
	case RecordGroup:
		if r.Tombstone {
			if len(g.members) > 0 || len(g.offsets) > 0 {
				return fmt.Errorf("group %q deleted with members or offsets", r.Group)
			}
			delete(c.groups, r.Group)
			return nil
		}
		if r.Epoch < g.epoch {
			return fmt.Errorf("group %q epoch goes back from %d to %d", r.Group, g.epoch, r.Epoch)
		}
		if r.MemberSeq < g.memberSeq {
			return fmt.Errorf("group %q member sequence goes back from %d to %d", r.Group, g.memberSeq, r.MemberSeq)
		}
		g.epoch, g.metadataHash, g.emptySinceMs, g.memberSeq = r.Epoch, r.MetadataHash, r.EmptySinceMs, r.MemberSeq
	case RecordMember:
		m := g.members[r.MemberID]
		if r.Tombstone {
			if m == nil {
				return fmt.Errorf("member tombstone for unknown member %q", r.MemberID)
			}
			if len(m.assigned) > 0 || len(m.pending) > 0 || g.target[r.MemberID] != nil {
				return fmt.Errorf("member %q deleted while it holds partitions", r.MemberID)
			}
			delete(g.members, r.MemberID)
			return nil
		}
		if m == nil {
			m = &member{id: r.MemberID, assigned: partSet{}, pending: partSet{}, lastHeartbeatMs: c.replayNowMs}
			g.members[r.MemberID] = m
		}
		if r.RebalanceTimeoutMs < 0 {
			return fmt.Errorf("member %q: rebalance timeout %d", r.MemberID, r.RebalanceTimeoutMs)
		}
		m.instanceID, m.regex, m.assignor, m.rebalanceTimeoutMs = r.InstanceID, r.Regex, r.Assignor, r.RebalanceTimeoutMs
		m.topics = slices.Clone(r.Topics)
		m.re = nil
		if r.Regex != "" {
			re, err := compileSubscription(r.Regex)
			if err != nil {
				return fmt.Errorf("member %q: regex: %v", r.MemberID, err)
			}
			m.re = re
		}
	case RecordTarget:
		if g.members[r.MemberID] == nil {
			return fmt.Errorf("target for unknown member %q", r.MemberID)
		}
		if r.Tombstone {
			delete(g.target, r.MemberID)
		} else {
			g.target[r.MemberID] = setOf(r.Partitions)
		}
	case RecordAssignmentEpoch:
		if r.Epoch < g.assignmentEpoch || r.Epoch > g.epoch {
			return fmt.Errorf("group %q assignment epoch %d outside [%d, %d]", r.Group, r.Epoch, g.assignmentEpoch, g.epoch)
		}
		g.assignmentEpoch = r.Epoch
	case RecordCurrent:
		m := g.members[r.MemberID]
		if m == nil {
			return fmt.Errorf("current assignment for unknown member %q", r.MemberID)
		}
		for tp := range m.assigned {
			delete(g.owner, tp)
		}
		for tp := range m.pending {
			delete(g.owner, tp)
		}
		if r.Tombstone {
			m.assigned, m.pending, m.epoch, m.prevEpoch = partSet{}, partSet{}, 0, 0
			return nil
		}
		m.epoch, m.prevEpoch = r.Epoch, r.PrevEpoch
		m.assigned, m.pending = setOf(r.Partitions), setOf(r.Pending)
		for _, tps := range [][]TopicPartition{r.Partitions, r.Pending} {
			for _, tp := range tps {
				if o, taken := g.owner[tp]; taken {
					return fmt.Errorf("group %q: %v given to %q while %q holds it", r.Group, tp, r.MemberID, o)
				}
				g.owner[tp] = r.MemberID
			}
		}
	case RecordOffset:
		tp := TopicPartition{r.Topic, r.Partition}
		if r.Tombstone {
			delete(g.offsets, tp)
		} else {
			g.offsets[tp] = OffsetAndMetadata{Offset: r.Offset, Metadata: r.Metadata, CommitMs: r.CommitMs}
		}
	default:
		return fmt.Errorf("unknown record type %d", r.Type)
	}
	return nil
}

// emit applies a record the coordinator itself produced and queues it for
// the log. The coordinator checks every change before it emits it, so a
// refusal here is a bug, not bad input.
func (c *Coordinator) emit(r Record) {
	if err := c.apply(r); err != nil {
		panic("group: invariant: " + err.Error())
	}
	c.out = append(c.out, r)
}

// take returns the records emitted since the last take.
func (c *Coordinator) take() []Record {
	out := c.out
	c.out = nil
	return out
}
