package metadata

import "slices"

// AlterPartitionRequest is a partition leader's proposal of a new ISR: it
// shrinks the ISR when a follower falls behind and grows it when one
// catches up. The epochs are those of the leader's view of the partition.
type AlterPartitionRequest struct {
	BrokerID       int32
	BrokerEpoch    int64
	TopicID        TopicID
	Partition      int32
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32
}

// AlterPartition applies a leader's ISR change. It is refused when the
// proposer is not registered at its epoch; when the leader epoch is not the
// partition's (the proposer's view is stale, or ahead of the controller);
// when the proposer is not the leader; when the partition epoch is stale;
// or when the new ISR is empty, holds a broker
// twice, holds a broker that is not a replica, omits the leader, or holds a
// fenced broker or one in controlled shutdown. Every accepted request
// moves the partition epoch, an ISR equal to the current one too. The new
// ISR is stored in replica order, and the ELR follows the rules of
// election.go.
func (c *Controller) AlterPartition(req AlterPartitionRequest) ([]Record, error) {
	if _, err := c.brokerAtEpoch(req.BrokerID, req.BrokerEpoch); err != nil {
		return nil, err
	}
	t, p, err := c.partitionByID(req.TopicID, req.Partition)
	if err != nil {
		return nil, err
	}
	// The leader epoch is checked before leadership, as Kafka does, so that
	// a deposed leader learns that its epoch is over.
	switch {
	case req.LeaderEpoch < p.leaderEpoch:
		return nil, reject(ErrFencedLeaderEpoch, "leader epoch %d is older than %d", req.LeaderEpoch, p.leaderEpoch)
	case req.LeaderEpoch > p.leaderEpoch:
		return nil, reject(ErrUnknownLeaderEpoch, "leader epoch %d is newer than %d", req.LeaderEpoch, p.leaderEpoch)
	case p.leader != req.BrokerID:
		return nil, reject(ErrNotLeader, "broker %d does not lead %s-%d (leader %d)", req.BrokerID, t.name, req.Partition, p.leader)
	case req.PartitionEpoch != p.partitionEpoch:
		return nil, reject(ErrInvalidUpdateVersion, "partition epoch %d, current %d", req.PartitionEpoch, p.partitionEpoch)
	}
	if len(req.ISR) == 0 {
		return nil, reject(ErrEmptyISR, "%s-%d", t.name, req.Partition)
	}
	if len(req.ISR) > len(p.replicas) || hasDuplicate(req.ISR) {
		return nil, reject(ErrIneligibleReplica, "isr %v holds a broker twice", req.ISR)
	}
	for _, id := range req.ISR {
		if !slices.Contains(p.replicas, id) {
			return nil, reject(ErrIneligibleReplica, "broker %d is not a replica of %s-%d", id, t.name, req.Partition)
		}
		if !c.state.isLive(id) {
			return nil, reject(ErrFencedReplica, "broker %d is fenced or shutting down", id)
		}
	}
	if !slices.Contains(req.ISR, p.leader) {
		return nil, reject(ErrIneligibleReplica, "isr %v omits the leader %d", req.ISR, p.leader)
	}
	isr := inReplicaOrder(p.replicas, req.ISR)
	rec, changed := changeRecord(t, req.Partition, settle(t, p, isr, c.state.isLive, false))
	if !changed {
		// The ISR the partition already has: accepted all the same with a
		// new partition epoch, which fences every older copy of the
		// leader's requests (one the network held back could otherwise
		// still apply at this epoch). The replica machine relies on it.
		rec = PartitionChangeRecord{
			TopicID: t.id, Partition: req.Partition, Leader: p.leader, ISR: slices.Clone(p.isr),
			ELR: slices.Clone(p.elr), LastKnownELR: slices.Clone(p.lastKnownELR),
			LeaderEpoch: p.leaderEpoch, PartitionEpoch: p.partitionEpoch + 1,
		}
	}
	return c.commit([]Record{rec})
}

// ElectLeader runs an election on one partition by the election rules
// (election.go): the first live ISR member in replica order, which is the
// preferred replica whenever it is live and in sync; with none, the first
// live ELR member; with none and unclean election enabled on the topic,
// the first live last-known ELR member or replica. It is refused when that
// choice already leads, or when no broker is eligible.
func (c *Controller) ElectLeader(topicName string, partitionIndex int32) ([]Record, error) {
	t, ok := c.state.topicsByName[topicName]
	if !ok {
		return nil, reject(ErrUnknownTopicOrPartition, "topic %q", topicName)
	}
	_, p, err := c.partitionByID(t.id, partitionIndex)
	if err != nil {
		return nil, err
	}
	tg := settle(t, p, p.isr, c.state.isLive, true)
	if tg.leader == NoLeader {
		return nil, reject(ErrEligibleLeadersNotAvailable, "%s-%d has no live in-sync or eligible replica", t.name, partitionIndex)
	}
	if tg.leader == p.leader {
		return nil, reject(ErrElectionNotNeeded, "broker %d already leads %s-%d", tg.leader, t.name, partitionIndex)
	}
	rec, _ := changeRecord(t, partitionIndex, tg)
	return c.commit([]Record{rec})
}

func (c *Controller) partitionByID(id TopicID, index int32) (*topic, *partition, error) {
	t, ok := c.state.topics[id]
	if !ok {
		return nil, nil, reject(ErrUnknownTopicOrPartition, "topic id %s", id)
	}
	if index < 0 || int(index) >= len(t.partitions) {
		return nil, nil, reject(ErrUnknownTopicOrPartition, "%s has no partition %d", t.name, index)
	}
	return t, t.partitions[index], nil
}
