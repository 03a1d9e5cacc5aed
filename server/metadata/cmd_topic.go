package metadata

import (
	"strconv"
)

// CreateTopicRequest asks for a new topic.
type CreateTopicRequest struct {
	Name string
	// ID is 16 random bytes the caller draws; it must not be zero or in use.
	ID TopicID
	// Configs holds any of the Config* keys; partitions and
	// replication.factor default to 1 when absent.
	Configs map[string]string
	// StartIndex is a random draw that places the first preferred leader
	// and the follower shift (see assignReplicas).
	StartIndex uint32
}

// CreateTopic creates a topic and places its replicas on the usable
// brokers (unfenced and not in controlled shutdown). Every partition starts
// with all its replicas in the ISR and its first replica as leader.
func (c *Controller) CreateTopic(req CreateTopicRequest) ([]Record, error) {
	s := c.state
	if err := validateTopicName(req.Name); err != nil {
		return nil, reject(ErrInvalidTopic, "%v", err)
	}
	if _, ok := s.topicsByName[req.Name]; ok {
		return nil, reject(ErrTopicAlreadyExists, "topic %s", req.Name)
	}
	if req.ID.IsZero() {
		return nil, reject(ErrInvalidTopicID, "zero topic id")
	}
	if _, ok := s.topics[req.ID]; ok {
		return nil, reject(ErrInvalidTopicID, "topic id %s is in use", req.ID)
	}
	configs, err := normalizeTopicConfigs(req.Configs)
	if err != nil {
		return nil, err
	}
	partitions := int(configInt(configs, ConfigPartitions, defaultPartitions))
	rf := int(configInt(configs, ConfigReplicationFactor, defaultReplicationFactor))
	if len(s.topics) >= maxTopics {
		return nil, reject(ErrPolicyViolation, "the cluster holds %d topics", len(s.topics))
	}
	if s.totalPartitions+partitions > maxTotalPartitions {
		return nil, reject(ErrPolicyViolation, "the cluster would hold more than %d partitions", maxTotalPartitions)
	}
	var usable []*broker
	for _, b := range s.sortedBrokers() {
		if b.live() {
			usable = append(usable, b)
		}
	}
	if rf > len(usable) {
		return nil, reject(ErrInvalidReplicationFactor, "replication factor %d exceeds the %d usable brokers", rf, len(usable))
	}
	assignment, err := assignReplicas(usable, partitions, rf, req.StartIndex)
	if err != nil {
		return nil, reject(ErrInvalidReplicationFactor, "%v", err)
	}
	records := make([]Record, 0, 1+partitions)
	records = append(records, TopicRecord{ID: req.ID, Name: req.Name, Configs: configs})
	for i, replicas := range assignment {
		records = append(records, PartitionRecord{
			TopicID: req.ID, Partition: int32(i), Replicas: replicas,
			ISR: append([]int32(nil), replicas...), Leader: replicas[0],
		})
	}
	return c.commit(records)
}

// normalizeTopicConfigs checks a topic's configs and returns them in
// normal form with partitions and replication.factor filled in.
func normalizeTopicConfigs(in map[string]string) (map[string]string, error) {
	if len(in) > maxConfigEntries {
		return nil, reject(ErrInvalidConfig, "%d configs; only %d keys exist", len(in), maxConfigEntries)
	}
	out := make(map[string]string, len(in)+2)
	out[ConfigPartitions] = strconv.Itoa(defaultPartitions)
	out[ConfigReplicationFactor] = strconv.Itoa(defaultReplicationFactor)
	for _, k := range sortedKeys(in) {
		v, err := normalizeConfig(k, in[k])
		if err != nil {
			code := ErrInvalidConfig
			switch k {
			case ConfigPartitions:
				code = ErrInvalidPartitions
			case ConfigReplicationFactor:
				code = ErrInvalidReplicationFactor
			}
			return nil, reject(code, "%v", err)
		}
		out[k] = v
	}
	if minISR, ok := out[ConfigMinInsyncReplicas]; ok {
		// A topic whose min.insync.replicas exceeds its replication factor
		// could never take an acks=all write.
		if configInt(out, ConfigMinInsyncReplicas, 1) > configInt(out, ConfigReplicationFactor, defaultReplicationFactor) {
			return nil, reject(ErrInvalidConfig, "min.insync.replicas %s exceeds replication.factor %s", minISR, out[ConfigReplicationFactor])
		}
	}
	if maxLag, ok := out[ConfigMaxCompactionLagMs]; ok {
		// The cleaner could never satisfy both: a segment must wait
		// longer than it may wait.
		if minLag := configInt(out, ConfigMinCompactionLagMs, 0); configInt(out, ConfigMaxCompactionLagMs, 0) < minLag {
			return nil, reject(ErrInvalidConfig, "max.compaction.lag.ms %s is below min.compaction.lag.ms %d", maxLag, minLag)
		}
	}
	return out, nil
}

// DeleteTopic deletes a topic and all its partitions.
func (c *Controller) DeleteTopic(name string) ([]Record, error) {
	t, ok := c.state.topicsByName[name]
	if !ok {
		return nil, reject(ErrUnknownTopicOrPartition, "topic %q", name)
	}
	return c.commit([]Record{RemoveTopicRecord{ID: t.id}})
}
