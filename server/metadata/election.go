package metadata

import "slices"

// Leader election and the eligible leader replicas (KIP-966), shared by
// every command that changes a partition.
//
// The ISR holds only live brokers (registered, unfenced, not in
// controlled shutdown): a broker leaves every ISR when it is fenced, shuts
// down or reports its replica offline, the last member included, so an
// ISR may be empty (and the partition then has no leader).
//
// The ELR. The broker's replica machine keeps the high watermark still
// while the ISR holds fewer than min.insync.replicas members (strict min
// ISR), and a replica leaves the ISR holding at least the high watermark
// (which is the least log end of the ISR). So while the ISR is below
// min.insync.replicas, every replica that was in it since it fell below
// still holds every committed record, and may lead without losing any:
//
//   - whenever a change leaves the ISR with min.insync.replicas members or
//     more, the ELR and the last-known ELR are emptied;
//   - otherwise the ELR becomes the old ELR and the old ISR, less the new
//     ISR, less the brokers the change says lost their logs;
//   - a broker that may have lost records it held (it registers again
//     without proof of a clean shutdown, on a topic that does not flush
//     before acknowledging) leaves the ELR for the last-known ELR;
//   - the last-known ELR is emptied whenever the partition has a leader.
//
// Election, when the leader leaves the ISR or a leaderless partition gets
// a broker back:
//
//   - Clean, from the ISR: the first live ISR member in replica order,
//     which is the preferred replica whenever it is live and in sync.
//   - Clean, from the ELR: with no live ISR member, the first live ELR
//     member in replica order; it becomes the ISR, alone, and leaves the
//     ELR.
//   - Unclean: only when neither has a live member and the topic sets
//     unclean.leader.election.enable=true: the first live last-known ELR
//     member, else the first live replica. The ISR becomes that replica
//     alone, and the ELR and last-known ELR are emptied: nothing else is
//     known to match its log.
//   - Otherwise there is no leader (NoLeader).
//
// A new leader always gets a new leader epoch; every change to a partition
// gets a new partition epoch.

// target is what a change makes of a partition.
type target struct {
	leader       int32
	isr          []int32
	elr          []int32
	lastKnownELR []int32
}

// settle completes a change of partition p of t whose ISR becomes isr:
// it elects a leader when elect is set or the leader is not a live member
// of isr, then sets the ELR and last-known ELR by the rules above. lost
// are brokers whose logs are lost, which leave the ELR. live says who may
// lead or be in an ISR after the change.
func settle(t *topic, p *partition, isr []int32, live func(int32) bool, elect bool, lost ...int32) target {
	tg := target{leader: p.leader, isr: inReplicaOrder(p.replicas, isr)}
	elr := minus(p.elr, lost)
	if elect || tg.leader == NoLeader || !slices.Contains(tg.isr, tg.leader) || !live(tg.leader) {
		tg.leader = NoLeader
		if id, ok := firstLive(p.replicas, tg.isr, live); ok {
			tg.leader = id
		} else if id, ok := firstLive(p.replicas, elr, live); ok {
			tg.leader, tg.isr = id, []int32{id}
		} else if t.uncleanAllowed() {
			id, ok := firstLive(p.replicas, p.lastKnownELR, live)
			if !ok {
				id, ok = firstLive(p.replicas, p.replicas, live)
			}
			if ok {
				return target{leader: id, isr: []int32{id}}
			}
		}
	}
	if len(tg.isr) >= t.minISR() {
		return tg
	}
	tg.elr = inReplicaOrder(p.replicas, minus(minus(union(elr, p.isr), tg.isr), lost))
	if tg.leader == NoLeader {
		known := union(p.lastKnownELR, intersect(p.elr, lost))
		tg.lastKnownELR = inReplicaOrder(p.replicas, minus(minus(known, tg.elr), tg.isr))
	}
	return tg
}

// changeRecord is the record that takes partition index of t to tg, and
// false when tg is what the partition already is.
func changeRecord(t *topic, index int32, tg target) (PartitionChangeRecord, bool) {
	p := t.partitions[index]
	if tg.leader == p.leader && slices.Equal(tg.isr, p.isr) && slices.Equal(tg.elr, p.elr) &&
		slices.Equal(tg.lastKnownELR, p.lastKnownELR) {
		return PartitionChangeRecord{}, false
	}
	leaderEpoch := p.leaderEpoch
	if tg.leader != p.leader {
		leaderEpoch++
	}
	return PartitionChangeRecord{
		TopicID: t.id, Partition: index, Leader: tg.leader, ISR: slices.Clone(tg.isr),
		ELR: slices.Clone(tg.elr), LastKnownELR: slices.Clone(tg.lastKnownELR),
		LeaderEpoch: leaderEpoch, PartitionEpoch: p.partitionEpoch + 1,
	}, true
}

// firstLive is the first replica, in replica order, in set and live.
func firstLive(replicas, set []int32, live func(int32) bool) (int32, bool) {
	for _, id := range replicas {
		if slices.Contains(set, id) && live(id) {
			return id, true
		}
	}
	return NoLeader, false
}

// isLive reports whether broker id may lead or be in an ISR.
func (s *State) isLive(id int32) bool {
	b, ok := s.brokers[id]
	return ok && b.live()
}

// removeBrokerChanges returns the partition changes that take broker id
// out of service, for fencing and controlled shutdown alike (Kafka's
// KRaft controller does the same for both): id leaves every ISR it is
// in, the last member too (joining the ELR when the rules say so), and
// every partition id leads gets a new leader by the election rules, which
// never pick id; with none eligible the partition has no leader.
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
	if !slices.Contains(p.isr, id) && p.leader != id {
		return PartitionChangeRecord{}, false
	}
	live := func(x int32) bool { return x != id && s.isLive(x) }
	return changeRecord(t, index, settle(t, p, without(p.isr, id), live, false))
}

// lostLogChanges returns the changes that take broker id out of every ELR
// of a topic that does not fdatasync before acknowledging: it has
// registered again without proof of a clean shutdown, so its log may have
// lost records it had written but not flushed. Under the sync flush
// policy (the default) a replica's reported end is its durable end, which
// a crash keeps (docs/replication.md, "Durable ends"), so the broker
// stays.
func (s *State) lostLogChanges(id int32) []Record {
	var out []Record
	for _, t := range s.sortedTopics() {
		if t.flushesBeforeAck() {
			continue
		}
		for i, p := range t.partitions {
			if !slices.Contains(p.elr, id) {
				continue
			}
			if rec, ok := changeRecord(t, int32(i), settle(t, p, p.isr, s.isLive, false, id)); ok {
				out = append(out, rec)
			}
		}
	}
	return out
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
			tg := settle(t, p, p.isr, live, true)
			if tg.leader == NoLeader {
				continue
			}
			if rec, ok := changeRecord(t, int32(i), tg); ok {
				out = append(out, rec)
			}
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

// union, minus and intersect are set operations on short id lists (at
// most maxReplicationFactor members); their order is not canonical, which
// inReplicaOrder restores.
func union(a, b []int32) []int32 {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func minus(a, b []int32) []int32 {
	var out []int32
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func intersect(a, b []int32) []int32 {
	var out []int32
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// inReplicaOrder returns the members of set ordered as they appear in
// replicas, so that an ISR or ELR has one canonical form; it is nil when
// set is empty, so that empty lists compare and encode alike.
func inReplicaOrder(replicas, set []int32) []int32 {
	var out []int32
	for _, id := range replicas {
		if slices.Contains(set, id) {
			out = append(out, id)
		}
	}
	return out
}
