package metadata

import (
	"cmp"
	"slices"
)

// Image is an immutable copy of the metadata at one offset, for the broker
// to serve Metadata requests from. The controller's goroutine builds a new
// Image after applying records and publishes it; shards read it without
// locks because nothing ever changes it. The slices and maps its methods
// return belong to the Image and must not be modified.
type Image struct {
	offset  uint64
	brokers []BrokerInfo // ascending id
	topics  []TopicInfo  // ascending name
	byName  map[string]int
	byID    map[TopicID]int
}

// BrokerInfo describes one registered broker.
type BrokerInfo struct {
	ID           int32
	Epoch        int64
	Incarnation  IncarnationID
	Rack         string
	Listeners    []Listener
	Fenced       bool
	ShuttingDown bool
}

// TopicInfo describes one topic.
type TopicInfo struct {
	ID         TopicID
	Name       string
	Configs    map[string]string
	Partitions []PartitionInfo // index i is partition i
}

// PartitionInfo describes one partition.
type PartitionInfo struct {
	Partition      int32
	Replicas       []int32
	ISR            []int32
	Leader         int32 // NoLeader when none
	LeaderEpoch    int32
	PartitionEpoch int32
	// ELR is the eligible leader replicas and LastKnownELR the replicas
	// that left it having lost their logs (election.go).
	ELR          []int32
	LastKnownELR []int32
}

// Image returns an immutable copy of the state.
func (s *State) Image() *Image {
	im := &Image{
		offset: s.offset,
		byName: make(map[string]int, len(s.topics)),
		byID:   make(map[TopicID]int, len(s.topics)),
	}
	for _, b := range s.sortedBrokers() {
		im.brokers = append(im.brokers, BrokerInfo{
			ID: b.id, Epoch: b.epoch, Incarnation: b.incarnation, Rack: b.rack,
			Listeners: slices.Clone(b.listeners), Fenced: b.fenced, ShuttingDown: b.shuttingDown,
		})
	}
	for i, t := range s.sortedTopics() {
		ti := TopicInfo{ID: t.id, Name: t.name, Configs: make(map[string]string, len(t.configs))}
		for k, v := range t.configs {
			ti.Configs[k] = v
		}
		ti.Partitions = make([]PartitionInfo, len(t.partitions))
		for j, p := range t.partitions {
			ti.Partitions[j] = p.info(int32(j))
		}
		im.topics = append(im.topics, ti)
		im.byName[t.name] = i
		im.byID[t.id] = i
	}
	return im
}

// Offset is the number of records the image reflects.
func (im *Image) Offset() uint64 { return im.offset }

// Brokers lists every registered broker in id order, fenced ones included.
func (im *Image) Brokers() []BrokerInfo { return im.brokers }

// Broker looks a broker up by id.
func (im *Image) Broker(id int32) (BrokerInfo, bool) {
	i, ok := slices.BinarySearchFunc(im.brokers, id, func(b BrokerInfo, id int32) int {
		return cmp.Compare(b.ID, id)
	})
	if !ok {
		return BrokerInfo{}, false
	}
	return im.brokers[i], true
}

// Topics lists every topic in name order.
func (im *Image) Topics() []TopicInfo { return im.topics }

// TopicByName looks a topic up by name.
func (im *Image) TopicByName(name string) (TopicInfo, bool) {
	i, ok := im.byName[name]
	if !ok {
		return TopicInfo{}, false
	}
	return im.topics[i], true
}

// TopicByID looks a topic up by id.
func (im *Image) TopicByID(id TopicID) (TopicInfo, bool) {
	i, ok := im.byID[id]
	if !ok {
		return TopicInfo{}, false
	}
	return im.topics[i], true
}

// Partition looks one partition up by topic name and index.
func (im *Image) Partition(topic string, partition int32) (PartitionInfo, bool) {
	t, ok := im.TopicByName(topic)
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return PartitionInfo{}, false
	}
	return t.Partitions[partition], true
}

// PartitionByID describes one partition of the state by topic id and
// index, without building a whole Image: the controller leader answers an
// AlterPartition with the partition as it then holds it.
func (s *State) PartitionByID(id TopicID, index int32) (PartitionInfo, bool) {
	t, ok := s.topics[id]
	if !ok || index < 0 || int(index) >= len(t.partitions) {
		return PartitionInfo{}, false
	}
	return t.partitions[index].info(index), true
}

// info is the partition's description, sharing nothing with the state.
func (p *partition) info(index int32) PartitionInfo {
	return PartitionInfo{
		Partition: index, Replicas: slices.Clone(p.replicas), ISR: slices.Clone(p.isr),
		Leader: p.leader, LeaderEpoch: p.leaderEpoch, PartitionEpoch: p.partitionEpoch,
		ELR: slices.Clone(p.elr), LastKnownELR: slices.Clone(p.lastKnownELR),
	}
}
