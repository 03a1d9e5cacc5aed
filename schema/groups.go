package schema

import "unicode/utf16"

// OffsetsTopic is the internal topic that holds the consumer groups' state
// and committed offsets (docs/consumer-groups.md, "The broker"). Clients
// may read it; they may not produce to it.
const OffsetsTopic = "__consumer_offsets"

// Consumer-group member epochs with a meaning of their own in a
// ConsumerGroupHeartbeat (the same values as server/group's).
const (
	// MemberEpochJoin joins, or rejoins after a fence or a lost session.
	MemberEpochJoin int32 = 0
	// MemberEpochLeave leaves the group.
	MemberEpochLeave int32 = -1
	// MemberEpochStaticLeave is a static member shutting down that means to
	// come back within its session and keep its partitions.
	MemberEpochStaticLeave int32 = -2
)

// Server assignor names a member may ask for in a heartbeat.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

// Group states as ConsumerGroupDescribe and ListGroups name them.
const (
	GroupStateEmpty       = "Empty"
	GroupStateAssigning   = "Assigning"
	GroupStateReconciling = "Reconciling"
	GroupStateStable      = "Stable"
	GroupStateDead        = "Dead"
)

// JavaStringHash is Java's String.hashCode of s: the UTF-16 code units
// of s folded as h = 31*h + unit in 32-bit arithmetic.
func JavaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r1, r2 := utf16.EncodeRune(r); r1 != '\uFFFD' || r2 != '\uFFFD' {
			h = 31*h + int32(r1)
			h = 31*h + int32(r2)
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// GroupPartition is the partition of OffsetsTopic that holds groupID when
// the topic has partitions partitions (partitions > 0): abs(hashCode) %
// partitions, as Kafka computes it, where abs of the smallest int32 is 0.
func GroupPartition(groupID string, partitions int32) int32 {
	h := JavaStringHash(groupID)
	switch {
	case h == -1<<31:
		h = 0
	case h < 0:
		h = -h
	}
	return h % partitions
}
