package metadata

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Snapshot layout. Brokers are in ascending id order and topics in
// ascending name order, so a state has exactly one encoding: two states
// are equal iff their snapshots are byte-equal, and Hash is a digest of it.
//
//	snapshot  = magic:"STMD" version:u8 offset:uvarint brokers:list(broker) topics:list(topic)
//	broker    = id incarnation:[16] epoch register-offset:uvarint flags:u8 rack:str listeners
//	flags     = bit 0 fenced, bit 1 in controlled shutdown, other bits zero
//	topic     = topic-id:[16] name:str configs partitions:list(partition)
//	partition = replicas:list(id) isr:list(id) leader leader-epoch partition-epoch elr:list(id) last-known-elr:list(id)
//
// Version 1 added the two ELR lists; a version 0 snapshot restores with
// them empty.
//
// Lists, strings and integers are encoded as in records (record_codec.go).

var snapshotMagic = [4]byte{'S', 'T', 'M', 'D'}

const (
	snapshotVersion  = 1
	flagFenced       = 1 << 0
	flagShuttingDown = 1 << 1
	knownBrokerFlags = flagFenced | flagShuttingDown

	// Smallest encodings, used to bound list counts by the bytes left.
	minSnapshotBrokerBytes = 1 + incarnationIDLen + 1 + 1 + 1 + 1 + 1 + minListenerBytes
	minSnapshotTopicBytes  = topicIDLen + 2 + 1 + 1
	// A partition: its replicas (a count and at least one id), an ISR
	// that may be empty (the last member fenced: its leader is then in
	// the ELR), the leader, two epochs and the two ELR lists.
	minSnapshotPartitionBytes = 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1
)

// AppendSnapshot appends the encoding of the whole state.
func (s *State) AppendSnapshot(dst []byte) []byte {
	dst = append(dst, snapshotMagic[:]...)
	dst = append(dst, snapshotVersion)
	dst = binary.AppendUvarint(dst, s.offset)
	brokers := s.sortedBrokers()
	dst = binary.AppendUvarint(dst, uint64(len(brokers)))
	for _, b := range brokers {
		dst = appendInt32(dst, b.id)
		dst = append(dst, b.incarnation[:]...)
		dst = appendInt64(dst, b.epoch)
		dst = binary.AppendUvarint(dst, b.registerOffset)
		var flags byte
		if b.fenced {
			flags |= flagFenced
		}
		if b.shuttingDown {
			flags |= flagShuttingDown
		}
		dst = append(dst, flags)
		dst = appendString(dst, b.rack)
		dst = appendListeners(dst, b.listeners)
	}
	topics := s.sortedTopics()
	dst = binary.AppendUvarint(dst, uint64(len(topics)))
	for _, t := range topics {
		dst = append(dst, t.id[:]...)
		dst = appendString(dst, t.name)
		dst = appendConfigs(dst, t.configs)
		dst = binary.AppendUvarint(dst, uint64(len(t.partitions)))
		for _, p := range t.partitions {
			dst = appendInt32s(dst, p.replicas)
			dst = appendInt32s(dst, p.isr)
			dst = appendInt32(dst, p.leader)
			dst = appendInt32(dst, p.leaderEpoch)
			dst = appendInt32(dst, p.partitionEpoch)
			dst = appendInt32s(dst, p.elr)
			dst = appendInt32s(dst, p.lastKnownELR)
		}
	}
	return dst
}

// Hash returns the SHA-256 of the state's canonical encoding. Two nodes
// hold equal states iff their hashes are equal.
func (s *State) Hash() [sha256.Size]byte {
	return sha256.Sum256(s.AppendSnapshot(nil))
}

// Restore decodes a snapshot into a new State. It bounds every count before
// allocating, refuses non-canonical order, and checks the same rules Apply
// checks, so a restored state is one that records could have built.
func Restore(b []byte) (*State, error) {
	if len(b) > maxSnapshotBytes {
		return nil, fmt.Errorf("metadata: snapshot of %d bytes exceeds %d", len(b), maxSnapshotBytes)
	}
	if len(b) < len(snapshotMagic)+1 || !bytes.Equal(b[:len(snapshotMagic)], snapshotMagic[:]) {
		return nil, fmt.Errorf("metadata: not a metadata snapshot")
	}
	version := b[len(snapshotMagic)]
	if version > snapshotVersion {
		return nil, fmt.Errorf("metadata: snapshot version %d is newer than %d", version, snapshotVersion)
	}
	r := &reader{b: b[len(snapshotMagic)+1:]}
	s := NewState()
	s.offset = r.uvarint()
	if err := s.restoreBrokers(r); err != nil {
		return nil, fmt.Errorf("metadata: snapshot: %w", err)
	}
	if err := s.restoreTopics(r, version); err != nil {
		return nil, fmt.Errorf("metadata: snapshot: %w", err)
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("metadata: snapshot: %w", err)
	}
	return s, nil
}

func (s *State) restoreBrokers(r *reader) error {
	n := r.count(maxBrokers, minSnapshotBrokerBytes, "brokers")
	prevID := int32(-1)
	for i := 0; i < n && r.err == nil; i++ {
		b := &broker{id: r.brokerID(), incarnation: IncarnationID(r.fixed16())}
		b.epoch = r.brokerEpoch()
		b.registerOffset = r.uvarint()
		flags := r.u8()
		b.rack = r.string(maxRackLen, "rack")
		b.listeners = decodeListeners(r)
		if r.err != nil {
			break
		}
		if flags&^knownBrokerFlags != 0 {
			return fmt.Errorf("broker %d has unknown flags %#x", b.id, flags)
		}
		b.fenced = flags&flagFenced != 0
		b.shuttingDown = flags&flagShuttingDown != 0
		if b.id <= prevID {
			return fmt.Errorf("broker %d out of order", b.id)
		}
		if b.registerOffset >= s.offset {
			return fmt.Errorf("broker %d registered at %d, after offset %d", b.id, b.registerOffset, s.offset)
		}
		if err := validateListeners(b.listeners); err != nil {
			return err
		}
		if err := validateRack(b.rack); err != nil {
			return err
		}
		s.brokers[b.id] = b
		prevID = b.id
	}
	return r.err
}

func (s *State) restoreTopics(r *reader, version uint8) error {
	n := r.count(maxTopics, minSnapshotTopicBytes, "topics")
	prevName := ""
	for i := 0; i < n && r.err == nil; i++ {
		t := &topic{id: TopicID(r.fixed16())}
		t.name = r.string(maxTopicNameLen, "topic name")
		t.configs = decodeConfigs(r)
		if r.err != nil {
			break
		}
		if i > 0 && t.name <= prevName {
			return fmt.Errorf("topic %s out of order", t.name)
		}
		prevName = t.name
		if err := s.applyTopic(TopicRecord{ID: t.id, Name: t.name, Configs: t.configs}); err != nil {
			return err
		}
		minPartition := minSnapshotPartitionBytes
		if version == 0 {
			minPartition -= 2
		}
		np := r.count(maxPartitionsPerTopic, minPartition, "partitions")
		for p := 0; p < np && r.err == nil; p++ {
			rec := PartitionRecord{TopicID: t.id, Partition: int32(p)}
			rec.Replicas = r.brokerIDs("replicas")
			rec.ISR = r.brokerIDs("isr")
			rec.Leader = r.leader()
			rec.LeaderEpoch = r.epoch32()
			rec.PartitionEpoch = r.epoch32()
			if version >= 1 {
				rec.ELR = r.brokerIDs("elr")
				rec.LastKnownELR = r.brokerIDs("last-known elr")
			}
			if r.err != nil {
				break
			}
			if err := s.applyPartition(rec); err != nil {
				return err
			}
		}
	}
	return r.err
}
