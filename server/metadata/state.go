package metadata

import (
	"cmp"
	"fmt"
	"slices"
)

// State is the cluster metadata that the log's records build: the
// registered brokers and the topics with their partitions. Every voter and
// every broker holds one and feeds it the same records in the same order
// with Apply, so all hold the same State (Hash checks that).
//
// State is not safe for concurrent use; readers on other goroutines use an
// Image taken from it.
type State struct {
	// offset is the number of records applied: the log offset of the next.
	offset          uint64
	brokers         map[int32]*broker
	topics          map[TopicID]*topic
	topicsByName    map[string]*topic
	totalPartitions int
}

// NewState returns the empty state of a log with no records.
func NewState() *State {
	return &State{
		brokers:      make(map[int32]*broker),
		topics:       make(map[TopicID]*topic),
		topicsByName: make(map[string]*topic),
	}
}

// Offset returns the number of records applied. A broker reports it in
// its heartbeat to say how far it has caught up.
func (s *State) Offset() uint64 { return s.offset }

// Apply applies one record. It checks that the record fits the state and
// leaves the state unchanged when it does not; since every node applies
// the same records to the same state, every node refuses the same record,
// and a refusal means the log is corrupt or written by an incompatible
// controller.
func (s *State) Apply(rec Record) error {
	var err error
	switch r := rec.(type) {
	case RegisterBrokerRecord:
		err = s.applyRegisterBroker(r)
	case FenceBrokerRecord:
		err = s.applyBrokerFlag(r.ID, r.Epoch, func(b *broker) { b.fenced = true })
	case UnfenceBrokerRecord:
		err = s.applyBrokerFlag(r.ID, r.Epoch, func(b *broker) { b.fenced = false })
	case BrokerShutdownRecord:
		err = s.applyBrokerFlag(r.ID, r.Epoch, func(b *broker) { b.shuttingDown = true })
	case TopicRecord:
		err = s.applyTopic(r)
	case PartitionRecord:
		err = s.applyPartition(r)
	case PartitionChangeRecord:
		err = s.applyPartitionChange(r)
	case RemoveTopicRecord:
		err = s.applyRemoveTopic(r)
	case TopicConfigRecord:
		err = s.applyTopicConfig(r)
	default:
		err = fmt.Errorf("unknown record %T", rec)
	}
	if err != nil {
		return fmt.Errorf("metadata: applying %s at offset %d: %w", rec.Type(), s.offset, err)
	}
	s.offset++
	return nil
}

// ApplyAll applies records in order, stopping at the first refusal.
func (s *State) ApplyAll(records []Record) error {
	for _, rec := range records {
		if err := s.Apply(rec); err != nil {
			return err
		}
	}
	return nil
}

func (s *State) applyRegisterBroker(r RegisterBrokerRecord) error {
	if r.ID < 0 {
		return fmt.Errorf("negative broker id %d", r.ID)
	}
	if err := validateListeners(r.Listeners); err != nil {
		return err
	}
	if err := validateRack(r.Rack); err != nil {
		return err
	}
	if old, ok := s.brokers[r.ID]; ok {
		if r.Epoch <= old.epoch {
			return fmt.Errorf("broker %d epoch %d does not exceed %d", r.ID, r.Epoch, old.epoch)
		}
	} else {
		if r.Epoch < 1 {
			return fmt.Errorf("broker %d epoch %d is not positive", r.ID, r.Epoch)
		}
		if len(s.brokers) >= maxBrokers {
			return fmt.Errorf("more than %d brokers", maxBrokers)
		}
	}
	s.brokers[r.ID] = &broker{
		id:             r.ID,
		incarnation:    r.Incarnation,
		epoch:          r.Epoch,
		registerOffset: s.offset,
		listeners:      slices.Clone(r.Listeners),
		rack:           r.Rack,
		fenced:         true,
	}
	return nil
}

func (s *State) applyBrokerFlag(id int32, epoch int64, set func(*broker)) error {
	b, ok := s.brokers[id]
	if !ok {
		return fmt.Errorf("broker %d is not registered", id)
	}
	if epoch != b.epoch {
		return fmt.Errorf("broker %d epoch %d, record has %d", id, b.epoch, epoch)
	}
	set(b)
	return nil
}

func (s *State) applyTopic(r TopicRecord) error {
	if r.ID.IsZero() {
		return fmt.Errorf("zero topic id")
	}
	if _, ok := s.topics[r.ID]; ok {
		return fmt.Errorf("topic id %s exists", r.ID)
	}
	if err := validateTopicName(r.Name); err != nil {
		return err
	}
	if _, ok := s.topicsByName[r.Name]; ok {
		return fmt.Errorf("topic %s exists", r.Name)
	}
	if len(s.topics) >= maxTopics {
		return fmt.Errorf("more than %d topics", maxTopics)
	}
	if err := checkNormalConfigs(r.Configs); err != nil {
		return err
	}
	t := &topic{id: r.ID, name: r.Name, configs: make(map[string]string, len(r.Configs))}
	for k, v := range r.Configs {
		t.configs[k] = v
	}
	s.topics[t.id] = t
	s.topicsByName[t.name] = t
	return nil
}

func (s *State) applyPartition(r PartitionRecord) error {
	t, ok := s.topics[r.TopicID]
	if !ok {
		return fmt.Errorf("unknown topic id %s", r.TopicID)
	}
	if int(r.Partition) != len(t.partitions) {
		return fmt.Errorf("topic %s partition %d arrives after %d partitions", t.name, r.Partition, len(t.partitions))
	}
	if int64(len(t.partitions)) >= configInt(t.configs, ConfigPartitions, defaultPartitions) {
		return fmt.Errorf("topic %s has all its partitions", t.name)
	}
	if s.totalPartitions >= maxTotalPartitions {
		return fmt.Errorf("more than %d partitions", maxTotalPartitions)
	}
	if err := validateReplicaSet(r.Replicas, r.ISR, r.ELR, r.LastKnownELR, r.Leader); err != nil {
		return err
	}
	for _, id := range r.Replicas {
		if _, ok := s.brokers[id]; !ok {
			return fmt.Errorf("replica %d is not a registered broker", id)
		}
	}
	if r.LeaderEpoch < 0 || r.PartitionEpoch < 0 {
		return fmt.Errorf("negative epoch")
	}
	t.partitions = append(t.partitions, &partition{
		replicas:       slices.Clone(r.Replicas),
		isr:            inReplicaOrder(r.Replicas, r.ISR),
		elr:            inReplicaOrder(r.Replicas, r.ELR),
		lastKnownELR:   inReplicaOrder(r.Replicas, r.LastKnownELR),
		leader:         r.Leader,
		leaderEpoch:    r.LeaderEpoch,
		partitionEpoch: r.PartitionEpoch,
	})
	s.totalPartitions++
	return nil
}

func (s *State) applyPartitionChange(r PartitionChangeRecord) error {
	t, ok := s.topics[r.TopicID]
	if !ok {
		return fmt.Errorf("unknown topic id %s", r.TopicID)
	}
	if r.Partition < 0 || int(r.Partition) >= len(t.partitions) {
		return fmt.Errorf("topic %s has no partition %d", t.name, r.Partition)
	}
	p := t.partitions[r.Partition]
	if err := validateReplicaSet(p.replicas, r.ISR, r.ELR, r.LastKnownELR, r.Leader); err != nil {
		return err
	}
	if r.PartitionEpoch <= p.partitionEpoch {
		return fmt.Errorf("partition epoch %d does not exceed %d", r.PartitionEpoch, p.partitionEpoch)
	}
	if r.LeaderEpoch < p.leaderEpoch {
		return fmt.Errorf("leader epoch %d is below %d", r.LeaderEpoch, p.leaderEpoch)
	}
	if r.Leader != p.leader && r.LeaderEpoch == p.leaderEpoch {
		return fmt.Errorf("leader changes from %d to %d without a new leader epoch", p.leader, r.Leader)
	}
	p.leader = r.Leader
	p.isr = inReplicaOrder(p.replicas, r.ISR)
	p.elr = inReplicaOrder(p.replicas, r.ELR)
	p.lastKnownELR = inReplicaOrder(p.replicas, r.LastKnownELR)
	p.leaderEpoch = r.LeaderEpoch
	p.partitionEpoch = r.PartitionEpoch
	return nil
}

// applyTopicConfig replaces a topic's configs. The partition count may
// only grow (the PartitionRecords that follow fill it) and the
// replication factor never changes.
func (s *State) applyTopicConfig(r TopicConfigRecord) error {
	t, ok := s.topics[r.ID]
	if !ok {
		return fmt.Errorf("unknown topic id %s", r.ID)
	}
	if err := checkNormalConfigs(r.Configs); err != nil {
		return err
	}
	if n := configInt(r.Configs, ConfigPartitions, defaultPartitions); n < int64(len(t.partitions)) ||
		n < configInt(t.configs, ConfigPartitions, defaultPartitions) {
		return fmt.Errorf("topic %s partitions %d is below its %d", t.name, n, configInt(t.configs, ConfigPartitions, defaultPartitions))
	}
	if r.Configs[ConfigReplicationFactor] != t.configs[ConfigReplicationFactor] {
		return fmt.Errorf("topic %s replication factor changes from %s to %s", t.name, t.configs[ConfigReplicationFactor], r.Configs[ConfigReplicationFactor])
	}
	t.configs = make(map[string]string, len(r.Configs))
	for k, v := range r.Configs {
		t.configs[k] = v
	}
	return nil
}

func (s *State) applyRemoveTopic(r RemoveTopicRecord) error {
	t, ok := s.topics[r.ID]
	if !ok {
		return fmt.Errorf("unknown topic id %s", r.ID)
	}
	delete(s.topics, t.id)
	delete(s.topicsByName, t.name)
	s.totalPartitions -= len(t.partitions)
	return nil
}

// sortedBrokers returns the brokers in id order.
func (s *State) sortedBrokers() []*broker {
	bs := make([]*broker, 0, len(s.brokers))
	for _, b := range s.brokers {
		bs = append(bs, b)
	}
	slices.SortFunc(bs, func(a, b *broker) int { return cmp.Compare(a.id, b.id) })
	return bs
}

// sortedTopics returns the topics in name order.
func (s *State) sortedTopics() []*topic {
	ts := make([]*topic, 0, len(s.topics))
	for _, t := range s.topics {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *topic) int { return cmp.Compare(a.name, b.name) })
	return ts
}
