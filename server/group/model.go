package group

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return tp.Topic + "-" + strconv.Itoa(int(tp.Partition)) }

func compareTP(a, b TopicPartition) int {
	if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// partSet is a set of partitions. Everything that leaves the package is a
// sorted slice (sorted), so output never depends on map order.
type partSet map[TopicPartition]struct{}

func setOf(tps []TopicPartition) partSet {
	s := make(partSet, len(tps))
	for _, tp := range tps {
		s[tp] = struct{}{}
	}
	return s
}

func (s partSet) has(tp TopicPartition) bool { _, ok := s[tp]; return ok }

func (s partSet) sorted() []TopicPartition {
	out := make([]TopicPartition, 0, len(s))
	for tp := range s {
		out = append(out, tp)
	}
	slices.SortFunc(out, compareTP)
	return out
}

// minus is s without the partitions of o.
func (s partSet) minus(o partSet) partSet {
	out := partSet{}
	for tp := range s {
		if !o.has(tp) {
			out[tp] = struct{}{}
		}
	}
	return out
}

// and is the partitions in both s and o.
func (s partSet) and(o partSet) partSet {
	out := partSet{}
	for tp := range s {
		if o.has(tp) {
			out[tp] = struct{}{}
		}
	}
	return out
}

func union(a, b partSet) partSet {
	out := make(partSet, len(a)+len(b))
	for tp := range a {
		out[tp] = struct{}{}
	}
	for tp := range b {
		out[tp] = struct{}{}
	}
	return out
}

func (s partSet) equal(o partSet) bool {
	if len(s) != len(o) {
		return false
	}
	for tp := range s {
		if !o.has(tp) {
			return false
		}
	}
	return true
}

func (s partSet) subsetOf(o partSet) bool {
	for tp := range s {
		if !o.has(tp) {
			return false
		}
	}
	return true
}

// group is one consumer group. Fields marked durable are rebuilt by
// Replay; the rest is the coordinator's memory of the present (sessions)
// and starts afresh on failover.
type group struct {
	id string
	// epoch is the group epoch (durable).
	epoch int32
	// metadataHash fingerprints the partition counts of the topics the
	// members subscribe to, as of the last epoch bump (durable), so a new
	// coordinator notices metadata that changed while nobody led the group.
	metadataHash uint64
	// emptySinceMs is when the last member left, or -1 while it has
	// members (durable); empty groups' offsets expire from it.
	emptySinceMs int64
	// memberSeq counts the member ids made up for the group (durable).
	memberSeq uint64
	// assignmentEpoch is the group epoch the target assignment was
	// computed for (durable).
	assignmentEpoch int32
	members         map[string]*member
	// target is each member's target assignment (durable).
	target map[string]partSet
	// owner maps each partition some member holds (assigned or pending
	// revocation) to that member; derived from the members.
	owner   map[TopicPartition]string
	offsets map[TopicPartition]OffsetAndMetadata
	// rebalance times the group's rebalances (memory only; stats.go).
	rebalance rebalanceClock
}

// member is one member of a group.
type member struct {
	id         string
	instanceID string
	// subscription, as the member sent it (durable).
	topics   []string
	regex    string
	re       *regexp.Regexp
	assignor string
	// rebalanceTimeoutMs is the member's own rebalance timeout, 0 for the
	// coordinator's (durable).
	rebalanceTimeoutMs int64
	// epoch and prevEpoch are the member epoch and the one before it
	// (durable); epoch is EpochStaticLeave while a static member is away.
	epoch, prevEpoch int32
	// assigned is what the member may own now; pending is what it was asked
	// to revoke and has not yet acknowledged (durable). Neither can be
	// given to another member.
	assigned, pending partSet
	// lastHeartbeatMs starts the session; revokeSinceMs starts the
	// rebalance timeout while pending is not empty (memory only).
	lastHeartbeatMs int64
	revokeSinceMs   int64
}

// subscribes reports whether the member's subscription covers topic.
func (m *member) subscribes(topic string) bool {
	if m.re != nil {
		return m.re.MatchString(topic)
	}
	_, ok := slices.BinarySearch(m.topics, topic)
	return ok
}

// OffsetAndMetadata is one committed offset.
type OffsetAndMetadata struct {
	Offset   int64
	Metadata string
	CommitMs int64
}

func newGroup(id string) *group {
	return &group{
		id:           id,
		emptySinceMs: -1,
		members:      map[string]*member{},
		target:       map[string]partSet{},
		owner:        map[TopicPartition]string{},
		offsets:      map[TopicPartition]OffsetAndMetadata{},
	}
}

func (g *group) sortedMemberIDs() []string {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (g *group) memberByInstance(instanceID string) *member {
	for _, m := range g.members {
		if m.instanceID == instanceID {
			return m
		}
	}
	return nil
}
