package metadata

import "slices"

// Leader election rules, shared by every command that moves leadership:
//
//   - Clean: the first replica, in replica order, that is in the ISR and
//     live (registered, unfenced, not in controlled shutdown).
//   - Unclean: only when no ISR member is live and the topic sets
//     unclean.leader.election.enable=true: the first live replica; the ISR
//     becomes that replica alone, since nothing else is known to match it.
//   - Otherwise there is no leader (NoLeader).
//
// A new leader always gets a new leader epoch; every change to a partition
// gets a new partition epoch.

// chooseLeader picks a leader for p given the ISR isr. It returns the new
// leader and ISR, or ok=false when no broker is eligible.
func chooseLeader(p *partition, isr []int32, live func(int32) bool, unclean bool) (int32, []int32, bool) {
	for _, id := range p.replicas {
		if slices.Contains(isr, id) && live(id) {
			return id, isr, true
		}
	}
	if unclean {
		for _, id := range p.replicas {
			if live(id) {
				return id, []int32{id}, true
			}
		}
	}
	return NoLeader, isr, false
}

// isLive reports whether broker id may lead or be in an ISR.
func (s *State) isLive(id int32) bool {
	b, ok := s.brokers[id]
	return ok && b.live()
}

// removeBrokerChanges returns the partition changes that take broker id
// out of service, for fencing and controlled shutdown alike (Kafka's
// KRaft controller does the same for both):
//
//   - id leaves every ISR it is in, unless it is the last member: the last
//     ISR member is kept so that, when it returns, it can lead again
//     without an unclean election;
//   - every partition id leads gets a new leader by the election rules,
//     which never picks id; with none eligible the partition is left with
//     no leader.
func (s *State) removeBrokerChanges(id int32) []Record {
	var out []Record
	for _, t := range s.sortedTopics() {
		for i := range t.partitions {
			if rec, ok := s.removeReplicaChange(t, int32(i), id); ok {
				out = append(out, rec)
			}
		}
	}
	return out
}

// removeReplicaChange is the change that takes broker id out of service
// for one partition of t, by the rules of removeBrokerChanges; ok is false
// when there is nothing to change.
func (s *State) removeReplicaChange(t *topic, index int32, id int32) (PartitionChangeRecord, bool) {
	p := t.partitions[index]
	inISR := slices.Contains(p.isr, id)
	if !inISR && p.leader != id {
		return PartitionChangeRecord{}, false
	}
	live := func(x int32) bool { return x != id && s.isLive(x) }
	isr := p.isr
	if inISR && len(isr) > 1 {
		isr = without(isr, id)
	}
	leader, leaderEpoch := p.leader, p.leaderEpoch
	if p.leader == id {
		leader, isr, _ = chooseLeader(p, isr, live, t.uncleanAllowed())
		leaderEpoch++
	}
	if leader == p.leader && slices.Equal(isr, p.isr) {
		return PartitionChangeRecord{}, false
	}
	return PartitionChangeRecord{
		TopicID: t.id, Partition: index, Leader: leader, ISR: slices.Clone(isr),
		LeaderEpoch: leaderEpoch, PartitionEpoch: p.partitionEpoch + 1,
	}, true
}

// leaderlessElections returns the elections that broker id's return makes
// possible: every partition with no leader that has id as a replica.
func (s *State) leaderlessElections(id int32) []Record {
	live := func(x int32) bool { return x == id || s.isLive(x) }
	var out []Record
	for _, t := range s.sortedTopics() {
		for i, p := range t.partitions {
			if p.leader != NoLeader || !slices.Contains(p.replicas, id) {
				continue
			}
			leader, isr, ok := chooseLeader(p, p.isr, live, t.uncleanAllowed())
			if !ok {
				continue
			}
			out = append(out, PartitionChangeRecord{
				TopicID: t.id, Partition: int32(i), Leader: leader, ISR: slices.Clone(isr),
				LeaderEpoch: p.leaderEpoch + 1, PartitionEpoch: p.partitionEpoch + 1,
			})
		}
	}
	return out
}

func without(ids []int32, id int32) []int32 {
	out := make([]int32, 0, len(ids))
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// inReplicaOrder returns the members of isr ordered as they appear in
// replicas, so that an ISR has one canonical form.
func inReplicaOrder(replicas, isr []int32) []int32 {
	out := make([]int32, 0, len(isr))
	for _, id := range replicas {
		if slices.Contains(isr, id) {
			out = append(out, id)
		}
	}
	return out
}
