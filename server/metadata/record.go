package metadata

import (
	"fmt"
	"slices"
	"strings"
)

// RecordType identifies a record in the metadata log. Values are stable:
// they are on disk in every controller's log and snapshot.
type RecordType uint8

const (
	RecordRegisterBroker  RecordType = 1
	RecordFenceBroker     RecordType = 2
	RecordUnfenceBroker   RecordType = 3
	RecordBrokerShutdown  RecordType = 4
	RecordTopic           RecordType = 5
	RecordPartition       RecordType = 6
	RecordPartitionChange RecordType = 7
	RecordRemoveTopic     RecordType = 8
	RecordTopicConfig     RecordType = 9
)

// recordVersion is the version the broker records are written with, and
// partitionRecordVersion that of Partition and PartitionChange, whose
// version 1 added the ELR and last-known ELR. A decoder accepts versions
// up to a type's own and refuses newer ones, so a node never
// half-understands a record from a newer controller; a version 0
// partition record decodes with an empty ELR.
const (
	recordVersion          = 0
	partitionRecordVersion = 1
)

// version is the version type t is written with.
func (t RecordType) version() uint8 {
	if t == RecordPartition || t == RecordPartitionChange {
		return partitionRecordVersion
	}
	return recordVersion
}

func (t RecordType) String() string {
	switch t {
	case RecordRegisterBroker:
		return "RegisterBroker"
	case RecordFenceBroker:
		return "FenceBroker"
	case RecordUnfenceBroker:
		return "UnfenceBroker"
	case RecordBrokerShutdown:
		return "BrokerShutdown"
	case RecordTopic:
		return "Topic"
	case RecordPartition:
		return "Partition"
	case RecordPartitionChange:
		return "PartitionChange"
	case RecordRemoveTopic:
		return "RemoveTopic"
	case RecordTopicConfig:
		return "TopicConfig"
	}
	return fmt.Sprintf("RecordType(%d)", uint8(t))
}

// Record is one entry of the metadata log. Commands produce records; every
// node applies them in log order with State.Apply.
type Record interface {
	// Type is the record's type byte.
	Type() RecordType
	// AppendTo appends the record's encoding (type, version, body).
	AppendTo(dst []byte) []byte
	// String describes the record for logs and tests.
	String() string
	appendBody(dst []byte) []byte
}

// RegisterBrokerRecord registers a new incarnation of a broker. The broker
// starts fenced and out of controlled shutdown.
type RegisterBrokerRecord struct {
	ID          int32
	Incarnation IncarnationID
	Epoch       int64
	Rack        string
	Listeners   []Listener
}

// FenceBrokerRecord fences a broker: it may no longer lead or be in an ISR.
type FenceBrokerRecord struct {
	ID    int32
	Epoch int64
}

// UnfenceBrokerRecord lifts a broker's fence.
type UnfenceBrokerRecord struct {
	ID    int32
	Epoch int64
}

// BrokerShutdownRecord puts a broker into controlled shutdown: it stays
// registered and unfenced until its session ends, but may no longer lead
// or join an ISR.
type BrokerShutdownRecord struct {
	ID    int32
	Epoch int64
}

// TopicRecord creates a topic. Its partitions follow as PartitionRecords.
type TopicRecord struct {
	ID      TopicID
	Name    string
	Configs map[string]string
}

// PartitionRecord creates the next partition of a topic. A new
// partition has an empty ELR; a snapshot restores a partition through one
// and so carries its ELR and last-known ELR.
type PartitionRecord struct {
	TopicID        TopicID
	Partition      int32
	Replicas       []int32
	ISR            []int32
	ELR            []int32
	LastKnownELR   []int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
}

// PartitionChangeRecord sets a partition's leader, ISR and epochs. It holds
// whole values rather than deltas, so applying it needs nothing but the
// partition to exist and its epochs to move forward.
type PartitionChangeRecord struct {
	TopicID        TopicID
	Partition      int32
	Leader         int32
	ISR            []int32
	ELR            []int32
	LastKnownELR   []int32
	LeaderEpoch    int32
	PartitionEpoch int32
}

// RemoveTopicRecord deletes a topic and all its partitions.
type RemoveTopicRecord struct {
	ID TopicID
}

// TopicConfigRecord replaces a topic's whole config map (an altered
// config, or a grown partition count that PartitionRecords then fill).
// It holds the whole map rather than a delta, as PartitionChangeRecord
// holds whole values: applying it needs only the topic to exist.
type TopicConfigRecord struct {
	ID      TopicID
	Configs map[string]string
}

func (RegisterBrokerRecord) Type() RecordType  { return RecordRegisterBroker }
func (FenceBrokerRecord) Type() RecordType     { return RecordFenceBroker }
func (UnfenceBrokerRecord) Type() RecordType   { return RecordUnfenceBroker }
func (BrokerShutdownRecord) Type() RecordType  { return RecordBrokerShutdown }
func (TopicRecord) Type() RecordType           { return RecordTopic }
func (PartitionRecord) Type() RecordType       { return RecordPartition }
func (PartitionChangeRecord) Type() RecordType { return RecordPartitionChange }
func (RemoveTopicRecord) Type() RecordType     { return RecordRemoveTopic }
func (TopicConfigRecord) Type() RecordType     { return RecordTopicConfig }

func (r RegisterBrokerRecord) String() string {
	ls := make([]string, len(r.Listeners))
	for i, l := range r.Listeners {
		ls[i] = l.String()
	}
	return fmt.Sprintf("RegisterBroker id=%d epoch=%d incarnation=%s rack=%q listeners=[%s]",
		r.ID, r.Epoch, r.Incarnation, r.Rack, strings.Join(ls, " "))
}

func (r FenceBrokerRecord) String() string {
	return fmt.Sprintf("FenceBroker id=%d epoch=%d", r.ID, r.Epoch)
}

func (r UnfenceBrokerRecord) String() string {
	return fmt.Sprintf("UnfenceBroker id=%d epoch=%d", r.ID, r.Epoch)
}

func (r BrokerShutdownRecord) String() string {
	return fmt.Sprintf("BrokerShutdown id=%d epoch=%d", r.ID, r.Epoch)
}

func (r TopicRecord) String() string {
	return fmt.Sprintf("Topic name=%s id=%s configs={%s}", r.Name, r.ID, formatConfigs(r.Configs))
}

func (r PartitionRecord) String() string {
	return fmt.Sprintf("Partition topic=%s partition=%d replicas=%v isr=%v%s leader=%d leader-epoch=%d partition-epoch=%d",
		r.TopicID, r.Partition, r.Replicas, r.ISR, formatELR(r.ELR, r.LastKnownELR), r.Leader, r.LeaderEpoch, r.PartitionEpoch)
}

func (r PartitionChangeRecord) String() string {
	return fmt.Sprintf("PartitionChange topic=%s partition=%d leader=%d isr=%v%s leader-epoch=%d partition-epoch=%d",
		r.TopicID, r.Partition, r.Leader, r.ISR, formatELR(r.ELR, r.LastKnownELR), r.LeaderEpoch, r.PartitionEpoch)
}

// formatELR prints " elr=[..]" and " last-known-elr=[..]" for the lists
// that are not empty, so that a partition with neither prints as it did
// before the ELR existed.
func formatELR(elr, lastKnownELR []int32) string {
	var b strings.Builder
	if len(elr) > 0 {
		fmt.Fprintf(&b, " elr=%v", elr)
	}
	if len(lastKnownELR) > 0 {
		fmt.Fprintf(&b, " last-known-elr=%v", lastKnownELR)
	}
	return b.String()
}

func (r RemoveTopicRecord) String() string {
	return fmt.Sprintf("RemoveTopic id=%s", r.ID)
}

func (r TopicConfigRecord) String() string {
	return fmt.Sprintf("TopicConfig id=%s configs={%s}", r.ID, formatConfigs(r.Configs))
}

// formatConfigs prints a config map with sorted keys.
func formatConfigs(configs map[string]string) string {
	keys := sortedKeys(configs)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + configs[k]
	}
	return strings.Join(parts, " ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
