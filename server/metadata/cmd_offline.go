package metadata

import "slices"

// OfflineReplicaRequest is a broker's report that its replica of a
// partition is offline: a write, fdatasync, fallocate or rename of the
// partition's log failed, and storage is fail-stop, so the broker serves
// the partition no more until it restarts.
type OfflineReplicaRequest struct {
	BrokerID    int32
	BrokerEpoch int64
	TopicID     TopicID
	Partition   int32
}

// ReportOfflineReplica moves one partition away from a broker whose replica
// went offline, by the rules fencing applies to all of a broker's
// partitions (removeBrokerChanges): the broker leaves the ISR, and if it
// led, the partition gets a new leader by the election rules, never that
// broker; with none eligible the partition has no leader, which is what an
// offline partition is. Like a fenced broker it joins the ELR when the
// ISR falls below min.insync.replicas: storage is fail-stop, so what it
// made durable before the failure is still there when it restarts (its
// log recovery checks every frame), and its registration after the
// restart says whether that shutdown was clean; an unclean one takes it
// out of the ELR. Its return (a new registration, unfenced) elects it
// again where it is in the ELR and nothing better is.
//
// It is refused when the broker is not registered at its epoch or is not a
// replica of the partition. A report that changes nothing gives no
// records.
func (c *Controller) ReportOfflineReplica(req OfflineReplicaRequest) ([]Record, error) {
	if _, err := c.brokerAtEpoch(req.BrokerID, req.BrokerEpoch); err != nil {
		return nil, err
	}
	t, p, err := c.partitionByID(req.TopicID, req.Partition)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(p.replicas, req.BrokerID) {
		return nil, reject(ErrIneligibleReplica, "broker %d is not a replica of %s-%d", req.BrokerID, t.name, req.Partition)
	}
	rec, ok := c.state.removeReplicaChange(t, req.Partition, req.BrokerID)
	if !ok {
		return nil, nil
	}
	return c.commit([]Record{rec})
}
