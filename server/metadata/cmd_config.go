package metadata

import "fmt"

// AlterTopicConfigsRequest changes some of a topic's configs: Set gives
// keys new values and Delete returns keys to their defaults. A key may
// not be in both.
type AlterTopicConfigsRequest struct {
	Topic  string
	Set    map[string]string
	Delete []string
}

// AlterTopicConfigs checks a change exactly as CreateTopic checks a new
// topic's configs (every key known, every value in range, and the
// cross-key rules on the result), refuses a key that cannot change at run
// time, and returns one TopicConfigRecord holding the whole new map: the
// change applies all together or not at all.
func (c *Controller) AlterTopicConfigs(req AlterTopicConfigsRequest) ([]Record, error) {
	t, ok := c.state.topicsByName[req.Topic]
	if !ok {
		return nil, reject(ErrUnknownTopicOrPartition, "topic %q", req.Topic)
	}
	if len(req.Set)+len(req.Delete) > 2*maxConfigEntries {
		return nil, reject(ErrInvalidConfig, "%d changes; only %d keys exist", len(req.Set)+len(req.Delete), maxConfigEntries)
	}
	for _, k := range req.Delete {
		if _, dup := req.Set[k]; dup {
			return nil, reject(ErrInvalidConfig, "%s is both set and deleted", k)
		}
	}
	for _, k := range append(sortedKeys(req.Set), req.Delete...) {
		if _, known := configSpecs[k]; !known {
			return nil, reject(ErrInvalidConfig, "unknown config key %q", k)
		}
		if why, ro := readOnlyConfigs[k]; ro {
			return nil, reject(ErrInvalidConfig, "%s cannot be changed: %s", k, why)
		}
	}
	next := make(map[string]string, len(t.configs)+len(req.Set))
	for k, v := range t.configs {
		next[k] = v
	}
	for _, k := range req.Delete {
		delete(next, k)
	}
	for k, v := range req.Set {
		next[k] = v
	}
	configs, err := normalizeTopicConfigs(next)
	if err != nil {
		return nil, err
	}
	records, err := c.commit([]Record{TopicConfigRecord{ID: t.id, Configs: configs}})
	if err != nil {
		return nil, err
	}
	// The election rules read min.insync.replicas and
	// unclean.leader.election.enable: each partition is settled again
	// under the new configs, in the same batch. A lowered minimum that the
	// ISR now meets empties the ELR; unclean election turned on elects a
	// leader for a partition that has none but a live replica.
	var changes []Record
	for i, p := range t.partitions {
		if rec, changed := changeRecord(t, int32(i), settle(t, p, p.isr, c.state.isLive, false)); changed {
			changes = append(changes, rec)
		}
	}
	if len(changes) == 0 {
		return records, nil
	}
	more, err := c.commit(changes)
	if err != nil {
		return nil, err
	}
	return append(records, more...), nil
}

// CreatePartitionsRequest grows a topic to Count partitions.
type CreatePartitionsRequest struct {
	Topic string
	Count int
	// StartIndex is the caller's random draw, as for CreateTopic.
	StartIndex uint32
}

// CreatePartitions adds partitions to a topic, placing their replicas on
// the usable brokers as creation does (the placement of Count partitions,
// of which the new ones take the tail), each with all its replicas in the
// ISR and its first replica leading. The partition count only grows.
func (c *Controller) CreatePartitions(req CreatePartitionsRequest) ([]Record, error) {
	s := c.state
	t, ok := s.topicsByName[req.Topic]
	if !ok {
		return nil, reject(ErrUnknownTopicOrPartition, "topic %q", req.Topic)
	}
	have := len(t.partitions)
	switch {
	case req.Count < have:
		return nil, reject(ErrInvalidPartitions, "topic %s has %d partitions; a topic's partitions can be added, never removed", t.name, have)
	case req.Count == have:
		return nil, reject(ErrInvalidPartitions, "topic %s already has %d partitions", t.name, have)
	case req.Count > maxPartitionsPerTopic:
		return nil, reject(ErrInvalidPartitions, "%d partitions; the most a topic may have is %d", req.Count, maxPartitionsPerTopic)
	}
	if s.totalPartitions+req.Count-have > maxTotalPartitions {
		return nil, reject(ErrPolicyViolation, "the cluster would hold more than %d partitions", maxTotalPartitions)
	}
	rf := int(configInt(t.configs, ConfigReplicationFactor, defaultReplicationFactor))
	var usable []*broker
	for _, b := range s.sortedBrokers() {
		if b.live() {
			usable = append(usable, b)
		}
	}
	if rf > len(usable) {
		return nil, reject(ErrInvalidReplicationFactor, "replication factor %d exceeds the %d usable brokers", rf, len(usable))
	}
	assignment, err := assignReplicas(usable, req.Count, rf, req.StartIndex)
	if err != nil {
		return nil, reject(ErrInvalidReplicationFactor, "%v", err)
	}
	configs := make(map[string]string, len(t.configs))
	for k, v := range t.configs {
		configs[k] = v
	}
	configs[ConfigPartitions] = fmt.Sprint(req.Count)
	records := []Record{TopicConfigRecord{ID: t.id, Configs: configs}}
	for i := have; i < req.Count; i++ {
		replicas := assignment[i]
		records = append(records, PartitionRecord{
			TopicID: t.id, Partition: int32(i), Replicas: replicas,
			ISR: append([]int32(nil), replicas...), Leader: replicas[0],
		})
	}
	return c.commit(records)
}
