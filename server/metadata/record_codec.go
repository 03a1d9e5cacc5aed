package metadata

import (
	"encoding/binary"
	"fmt"
)

// Record encoding (all integers varints, signed ones zig-zag):
//
//	record          = type:u8 version:u8 body   (version 1 for Partition and PartitionChange, else 0)
//	RegisterBroker  = id incarnation:[16] epoch rack:str listeners:list(name:str host:str port:uvarint)
//	FenceBroker     = id epoch
//	UnfenceBroker   = id epoch
//	BrokerShutdown  = id epoch
//	Topic           = topic-id:[16] name:str configs:list(key:str value:str), keys ascending
//	Partition       = topic-id:[16] partition replicas:list(id) isr:list(id) leader leader-epoch partition-epoch elr
//	PartitionChange = topic-id:[16] partition leader isr:list(id) leader-epoch partition-epoch elr
//	elr             = elr:list(id) last-known-elr:list(id)   (absent in version 0: both empty)
//	RemoveTopic     = topic-id:[16]
//	TopicConfig     = topic-id:[16] configs:list(key:str value:str), keys ascending
//	str             = len:uvarint bytes
//	list(x)         = count:uvarint x*

func appendHeader(dst []byte, t RecordType) []byte { return append(dst, byte(t), t.version()) }

func (r RegisterBrokerRecord) AppendTo(dst []byte) []byte {
	return r.appendBody(appendHeader(dst, r.Type()))
}
func (r FenceBrokerRecord) AppendTo(dst []byte) []byte {
	return r.appendBody(appendHeader(dst, r.Type()))
}
func (r UnfenceBrokerRecord) AppendTo(dst []byte) []byte {
	return r.appendBody(appendHeader(dst, r.Type()))
}
func (r BrokerShutdownRecord) AppendTo(dst []byte) []byte {
	return r.appendBody(appendHeader(dst, r.Type()))
}
func (r TopicRecord) AppendTo(dst []byte) []byte { return r.appendBody(appendHeader(dst, r.Type())) }
func (r PartitionRecord) AppendTo(dst []byte) []byte {
	return r.appendBody(appendHeader(dst, r.Type()))
}
func (r PartitionChangeRecord) AppendTo(dst []byte) []byte {
	return r.appendBody(appendHeader(dst, r.Type()))
}
func (r RemoveTopicRecord) AppendTo(dst []byte) []byte {
	return r.appendBody(appendHeader(dst, r.Type()))
}
func (r TopicConfigRecord) AppendTo(dst []byte) []byte {
	return r.appendBody(appendHeader(dst, r.Type()))
}

func (r RegisterBrokerRecord) appendBody(dst []byte) []byte {
	dst = appendInt32(dst, r.ID)
	dst = append(dst, r.Incarnation[:]...)
	dst = appendInt64(dst, r.Epoch)
	dst = appendString(dst, r.Rack)
	return appendListeners(dst, r.Listeners)
}

func appendListeners(dst []byte, ls []Listener) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ls)))
	for _, l := range ls {
		dst = appendString(dst, l.Name)
		dst = appendString(dst, l.Host)
		dst = binary.AppendUvarint(dst, uint64(l.Port))
	}
	return dst
}

func (r FenceBrokerRecord) appendBody(dst []byte) []byte {
	return appendInt64(appendInt32(dst, r.ID), r.Epoch)
}

func (r UnfenceBrokerRecord) appendBody(dst []byte) []byte {
	return appendInt64(appendInt32(dst, r.ID), r.Epoch)
}

func (r BrokerShutdownRecord) appendBody(dst []byte) []byte {
	return appendInt64(appendInt32(dst, r.ID), r.Epoch)
}

func (r TopicRecord) appendBody(dst []byte) []byte {
	dst = append(dst, r.ID[:]...)
	dst = appendString(dst, r.Name)
	return appendConfigs(dst, r.Configs)
}

func appendConfigs(dst []byte, configs map[string]string) []byte {
	keys := sortedKeys(configs)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendString(dst, configs[k])
	}
	return dst
}

func (r PartitionRecord) appendBody(dst []byte) []byte {
	dst = append(dst, r.TopicID[:]...)
	dst = appendInt32(dst, r.Partition)
	dst = appendInt32s(dst, r.Replicas)
	dst = appendInt32s(dst, r.ISR)
	dst = appendInt32(dst, r.Leader)
	dst = appendInt32(dst, r.LeaderEpoch)
	dst = appendInt32(dst, r.PartitionEpoch)
	dst = appendInt32s(dst, r.ELR)
	return appendInt32s(dst, r.LastKnownELR)
}

func (r PartitionChangeRecord) appendBody(dst []byte) []byte {
	dst = append(dst, r.TopicID[:]...)
	dst = appendInt32(dst, r.Partition)
	dst = appendInt32(dst, r.Leader)
	dst = appendInt32s(dst, r.ISR)
	dst = appendInt32(dst, r.LeaderEpoch)
	dst = appendInt32(dst, r.PartitionEpoch)
	dst = appendInt32s(dst, r.ELR)
	return appendInt32s(dst, r.LastKnownELR)
}

func (r RemoveTopicRecord) appendBody(dst []byte) []byte { return append(dst, r.ID[:]...) }

func (r TopicConfigRecord) appendBody(dst []byte) []byte {
	return appendConfigs(append(dst, r.ID[:]...), r.Configs)
}

// DecodeRecord decodes one record. It checks every length against its
// limit before allocating, refuses unknown types and newer versions, and
// returns an error (never panics) on any malformed input. It checks the
// record's own form; whether it fits the current state is Apply's concern.
func DecodeRecord(b []byte) (Record, error) {
	r := &reader{b: b}
	t := RecordType(r.u8())
	v := r.u8()
	if r.err != nil {
		return nil, r.err
	}
	if v > t.version() {
		return nil, fmt.Errorf("metadata: %s version %d is newer than %d", t, v, t.version())
	}
	var rec Record
	switch t {
	case RecordRegisterBroker:
		rec = decodeRegisterBroker(r)
	case RecordFenceBroker:
		id, epoch := decodeBrokerRef(r)
		rec = FenceBrokerRecord{ID: id, Epoch: epoch}
	case RecordUnfenceBroker:
		id, epoch := decodeBrokerRef(r)
		rec = UnfenceBrokerRecord{ID: id, Epoch: epoch}
	case RecordBrokerShutdown:
		id, epoch := decodeBrokerRef(r)
		rec = BrokerShutdownRecord{ID: id, Epoch: epoch}
	case RecordTopic:
		rec = decodeTopic(r)
	case RecordPartition:
		rec = decodePartition(r, v)
	case RecordPartitionChange:
		rec = decodePartitionChange(r, v)
	case RecordRemoveTopic:
		rec = RemoveTopicRecord{ID: TopicID(r.fixed16())}
	case RecordTopicConfig:
		id := TopicID(r.fixed16())
		rec = TopicConfigRecord{ID: id, Configs: decodeConfigs(r)}
	default:
		return nil, fmt.Errorf("metadata: unknown record type %d", uint8(t))
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("metadata: decoding %s: %w", t, err)
	}
	return rec, nil
}

func (r *reader) brokerID() int32 {
	id := r.int32()
	if id < 0 {
		r.fail(fmt.Errorf("metadata: negative broker id %d", id))
	}
	return id
}

func (r *reader) brokerEpoch() int64 {
	e := r.int64()
	if e < 1 {
		r.fail(fmt.Errorf("metadata: broker epoch %d is not positive", e))
	}
	return e
}

func (r *reader) leader() int32 {
	l := r.int32()
	if l < NoLeader {
		r.fail(fmt.Errorf("metadata: bad leader %d", l))
	}
	return l
}

func (r *reader) epoch32() int32 {
	e := r.int32()
	if e < 0 {
		r.fail(fmt.Errorf("metadata: negative epoch %d", e))
	}
	return e
}

func (r *reader) partitionIndex() int32 {
	p := r.int32()
	if p < 0 || p >= maxPartitionsPerTopic {
		r.fail(fmt.Errorf("metadata: partition %d out of range", p))
	}
	return p
}

func (r *reader) brokerIDs(what string) []int32 {
	ids := r.int32s(maxReplicationFactor, what)
	for _, id := range ids {
		if id < 0 {
			r.fail(fmt.Errorf("metadata: negative broker id %d in %s", id, what))
		}
	}
	return ids
}

func decodeBrokerRef(r *reader) (int32, int64) {
	id := r.brokerID()
	return id, r.brokerEpoch()
}

func decodeRegisterBroker(r *reader) RegisterBrokerRecord {
	rec := RegisterBrokerRecord{ID: r.brokerID(), Incarnation: IncarnationID(r.fixed16())}
	rec.Epoch = r.brokerEpoch()
	rec.Rack = r.string(maxRackLen, "rack")
	rec.Listeners = decodeListeners(r)
	return rec
}

// minListenerBytes is the smallest encoded listener: two one-byte names and
// a one-byte port, each after its length.
const minListenerBytes = 5

func decodeListeners(r *reader) []Listener {
	n := r.count(maxListeners, minListenerBytes, "listeners")
	if r.err != nil {
		return nil
	}
	ls := make([]Listener, n)
	for i := range ls {
		ls[i].Name = r.string(maxListenerNameLen, "listener name")
		ls[i].Host = r.string(maxHostLen, "host")
		port := r.uvarint()
		if r.err != nil {
			return nil
		}
		if port > maxPort {
			r.fail(fmt.Errorf("metadata: port %d out of range", port))
			return nil
		}
		ls[i].Port = uint16(port)
		if err := validateListener(ls[i]); err != nil {
			r.fail(err)
			return nil
		}
	}
	return ls
}

func decodeTopic(r *reader) TopicRecord {
	rec := TopicRecord{ID: TopicID(r.fixed16())}
	rec.Name = r.string(maxTopicNameLen, "topic name")
	if r.err == nil {
		if err := validateTopicName(rec.Name); err != nil {
			r.fail(err)
		}
	}
	rec.Configs = decodeConfigs(r)
	return rec
}

// minConfigEntryBytes is the smallest encoded key/value pair.
const minConfigEntryBytes = 3

func decodeConfigs(r *reader) map[string]string {
	n := r.count(maxConfigEntries, minConfigEntryBytes, "configs")
	if r.err != nil {
		return nil
	}
	configs := make(map[string]string, n)
	prev := ""
	for i := 0; i < n; i++ {
		k := r.string(maxConfigKeyLen, "config key")
		v := r.string(maxConfigValueLen, "config value")
		if r.err != nil {
			return nil
		}
		if i > 0 && k <= prev {
			r.fail(fmt.Errorf("metadata: config keys not in ascending order"))
			return nil
		}
		prev = k
		configs[k] = v
	}
	return configs
}

// maxConfigKeyLen bounds a config key; the longest known key is
// unclean.leader.election.enable.
const maxConfigKeyLen = 64

func decodePartition(r *reader, version uint8) PartitionRecord {
	rec := PartitionRecord{TopicID: TopicID(r.fixed16())}
	rec.Partition = r.partitionIndex()
	rec.Replicas = r.brokerIDs("replicas")
	rec.ISR = r.brokerIDs("isr")
	rec.Leader = r.leader()
	rec.LeaderEpoch = r.epoch32()
	rec.PartitionEpoch = r.epoch32()
	if version >= 1 {
		rec.ELR = r.brokerIDs("elr")
		rec.LastKnownELR = r.brokerIDs("last-known elr")
	}
	return rec
}

func decodePartitionChange(r *reader, version uint8) PartitionChangeRecord {
	rec := PartitionChangeRecord{TopicID: TopicID(r.fixed16())}
	rec.Partition = r.partitionIndex()
	rec.Leader = r.leader()
	rec.ISR = r.brokerIDs("isr")
	rec.LeaderEpoch = r.epoch32()
	rec.PartitionEpoch = r.epoch32()
	if version >= 1 {
		rec.ELR = r.brokerIDs("elr")
		rec.LastKnownELR = r.brokerIDs("last-known elr")
	}
	return rec
}
