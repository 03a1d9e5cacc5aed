package group

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The byte encoding of Records, as the broker stores them in the offsets
// log (docs/consumer-groups.md, "Records"). A record is a key and a value:
//
//	key   = keyVersion, type, group, then member (Member, Target, Current)
//	        or topic, partition (Offset); nothing more for Group and
//	        AssignmentEpoch
//	value = valueVersion, then the type's fields; a tombstone has no value
//
// so that compaction, which keeps the latest record of each key, keeps the
// latest state of each entity. Strings are a uvarint length and the bytes,
// integers varints (uint64 fields uvarints), lists a uvarint count and the
// elements; a partition list is grouped by topic (count of topics, then
// each topic's name, count and partitions). Every length is checked
// against what the input has left before anything is allocated, and
// against the coordinator's own bounds, so a decoder allocates at most a
// small constant times its input and never panics.

const (
	// keyVersion and valueVersion are the encodings written; a decoder
	// refuses any other, so a newer layout is never read as this one.
	keyVersion   byte = 0
	valueVersion byte = 0
)

// ErrCodec is the error of every record that does not decode.
var ErrCodec = errors.New("group: record does not decode")

// AppendKey appends r's key to dst.
func AppendKey(dst []byte, r Record) []byte {
	dst = append(dst, keyVersion, byte(r.Type))
	dst = appendString(dst, r.Group)
	switch r.Type {
	case RecordMember, RecordTarget, RecordCurrent:
		dst = appendString(dst, r.MemberID)
	case RecordOffset:
		dst = appendString(dst, r.Topic)
		dst = binary.AppendVarint(dst, int64(r.Partition))
	}
	return dst
}

// AppendValue appends r's value to dst; a tombstone has none and leaves
// dst as it is (the broker writes a null value for it).
func AppendValue(dst []byte, r Record) []byte {
	if r.Tombstone {
		return dst
	}
	dst = append(dst, valueVersion)
	switch r.Type {
	case RecordGroup:
		dst = binary.AppendVarint(dst, int64(r.Epoch))
		dst = binary.AppendUvarint(dst, r.MetadataHash)
		dst = binary.AppendVarint(dst, r.EmptySinceMs)
		dst = binary.AppendUvarint(dst, r.MemberSeq)
	case RecordMember:
		dst = appendString(dst, r.InstanceID)
		dst = binary.AppendUvarint(dst, uint64(len(r.Topics)))
		for _, t := range r.Topics {
			dst = appendString(dst, t)
		}
		dst = appendString(dst, r.Regex)
		dst = appendString(dst, r.Assignor)
		dst = binary.AppendVarint(dst, r.RebalanceTimeoutMs)
	case RecordTarget:
		dst = appendParts(dst, r.Partitions)
	case RecordAssignmentEpoch:
		dst = binary.AppendVarint(dst, int64(r.Epoch))
	case RecordCurrent:
		dst = binary.AppendVarint(dst, int64(r.Epoch))
		dst = binary.AppendVarint(dst, int64(r.PrevEpoch))
		dst = appendParts(dst, r.Partitions)
		dst = appendParts(dst, r.Pending)
	case RecordOffset:
		dst = binary.AppendVarint(dst, r.Offset)
		dst = appendString(dst, r.Metadata)
		dst = binary.AppendVarint(dst, r.CommitMs)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendParts writes a sorted partition list grouped by topic.
func appendParts(dst []byte, tps []TopicPartition) []byte {
	topics := 0
	for i := range tps {
		if i == 0 || tps[i].Topic != tps[i-1].Topic {
			topics++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(topics))
	for i := 0; i < len(tps); {
		j := i
		for j < len(tps) && tps[j].Topic == tps[i].Topic {
			j++
		}
		dst = appendString(dst, tps[i].Topic)
		dst = binary.AppendUvarint(dst, uint64(j-i))
		for _, tp := range tps[i:j] {
			dst = binary.AppendVarint(dst, int64(tp.Partition))
		}
		i = j
	}
	return dst
}

// DecodeRecord reads one record from its key and value; a nil value is a
// tombstone. It checks the encoding and the coordinator's bounds on ids
// and names, not the record's meaning (Replay does that).
func DecodeRecord(key, value []byte) (Record, error) {
	var r Record
	k := decoder{b: key}
	if v := k.byte(); k.err == nil && v != keyVersion {
		return r, fmt.Errorf("%w: key version %d", ErrCodec, v)
	}
	r.Type = RecordType(k.byte())
	r.Group = k.str(maxGroupIDLen)
	switch r.Type {
	case RecordGroup, RecordAssignmentEpoch:
	case RecordMember, RecordTarget, RecordCurrent:
		r.MemberID = k.str(maxMemberIDLen)
	case RecordOffset:
		r.Topic = k.str(maxTopicNameLen)
		r.Partition = k.int32()
	default:
		if k.err == nil {
			return r, fmt.Errorf("%w: record type %d", ErrCodec, r.Type)
		}
	}
	if err := k.end("key"); err != nil {
		return Record{}, err
	}
	if value == nil {
		r.Tombstone = true
		return r, nil
	}
	v := decoder{b: value}
	if ver := v.byte(); v.err == nil && ver != valueVersion {
		return Record{}, fmt.Errorf("%w: value version %d", ErrCodec, ver)
	}
	switch r.Type {
	case RecordGroup:
		r.Epoch = v.int32()
		r.MetadataHash = v.uvarint()
		r.EmptySinceMs = v.varint()
		r.MemberSeq = v.uvarint()
	case RecordMember:
		r.InstanceID = v.str(maxInstanceIDLen)
		n := v.count(maxSubscribedTopics)
		if n > 0 {
			r.Topics = make([]string, 0, n)
		}
		for range n {
			r.Topics = append(r.Topics, v.str(maxTopicNameLen))
		}
		r.Regex = v.str(maxRegexLen)
		r.Assignor = v.str(maxAssignorNameLen)
		r.RebalanceTimeoutMs = v.varint()
	case RecordTarget:
		r.Partitions = v.parts()
	case RecordAssignmentEpoch:
		r.Epoch = v.int32()
	case RecordCurrent:
		r.Epoch = v.int32()
		r.PrevEpoch = v.int32()
		r.Partitions = v.parts()
		r.Pending = v.parts()
	case RecordOffset:
		r.Offset = v.varint()
		r.Metadata = v.str(maxOffsetMetadataLen)
		r.CommitMs = v.varint()
	}
	if err := v.end("value"); err != nil {
		return Record{}, err
	}
	return r, nil
}

// maxAssignorNameLen bounds a stored assignor name; the known ones are far
// shorter.
const maxAssignorNameLen = 64

// decoder reads the encoding; the first error sticks and every later read
// returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrCodec}, args...)...)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < -1<<31 || v > 1<<31-1 {
		d.fail("int32 out of range: %d", v)
		return 0
	}
	return int32(v)
}

// count reads a list length: at most limit, and at most the bytes left
// (every element takes at least one), so a list is never allocated past
// what the input can fill.
func (d *decoder) count(limit int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("count %d over its bound", n)
		return 0
	}
	return int(n)
}

func (d *decoder) str(limit int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("string of %d bytes over its bound", n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// parts reads a partition list. Each topic's name is allocated once and
// shared by its partitions.
func (d *decoder) parts() []TopicPartition {
	topics := d.count(maxPartitionListTopics)
	var out []TopicPartition
	for range topics {
		topic := d.str(maxTopicNameLen)
		n := d.count(maxPartitionListLen - len(out))
		if d.err == nil && n == 0 {
			// The encoder writes no topic without partitions: one
			// encoding per list.
			d.fail("topic %q with no partitions", topic)
		}
		if d.err != nil {
			return nil
		}
		if out == nil {
			out = make([]TopicPartition, 0, n)
		}
		for range n {
			p := d.int32()
			if d.err != nil {
				return nil
			}
			out = append(out, TopicPartition{topic, p})
		}
	}
	return out
}

// Bounds on a stored partition list. They are far above what a heartbeat
// may report owned (a target may hold more than a member could report,
// and a log that decodes nowhere would keep its groups from loading); the
// input's own length bounds the memory.
const (
	maxPartitionListLen    = 1 << 24
	maxPartitionListTopics = 1 << 24
)

func (d *decoder) end(what string) error {
	if d.err != nil {
		return fmt.Errorf("%s: %w", what, d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %s: %d bytes left over", ErrCodec, what, len(d.b))
	}
	return nil
}
