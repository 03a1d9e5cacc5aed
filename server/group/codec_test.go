package group

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// encodeLog is what the broker writes for a log: LogRecords through the
// byte encoding, a tombstone with a nil value.
type encoded struct{ key, value []byte }

func encodeLog(records []Record) []encoded {
	var out []encoded
	for _, r := range LogRecords(records) {
		e := encoded{key: AppendKey(nil, r)}
		if !r.Tombstone {
			e.value = AppendValue([]byte{}, r)
		}
		out = append(out, e)
	}
	return out
}

// compact keeps the latest record of each key, in log order, as the
// log cleaner does (tombstones kept: they are dropped only later).
func compact(log []encoded) []encoded {
	last := map[string]int{}
	for i, e := range log {
		last[string(e.key)] = i
	}
	var out []encoded
	for i, e := range log {
		if last[string(e.key)] == i {
			out = append(out, e)
		}
	}
	return out
}

// replayCompacted replays records the way the broker loads a
// coordinator: encoded, compacted, decoded, LiveRecords.
func replayCompacted(cfg Config, records []Record, nowMs int64) (*Coordinator, error) {
	var decoded []Record
	for _, e := range compact(encodeLog(records)) {
		r, err := DecodeRecord(e.key, e.value)
		if err != nil {
			return nil, err
		}
		decoded = append(decoded, r)
	}
	return Replay(cfg, LiveRecords(decoded), nowMs)
}

func sampleRecords() []Record {
	tps := []TopicPartition{{"a", 0}, {"a", 2}, {"b", 1}}
	return []Record{
		{Type: RecordGroup, Group: "g", Epoch: 3, MetadataHash: 0xfeedface, EmptySinceMs: -1, MemberSeq: 2},
		{Type: RecordMember, Group: "g", MemberID: "m1", InstanceID: "i1", Topics: []string{"a", "b"}, Assignor: "range", RebalanceTimeoutMs: 60000},
		{Type: RecordMember, Group: "g", MemberID: "m2", Regex: "x-.*"},
		{Type: RecordTarget, Group: "g", MemberID: "m1", Partitions: tps},
		{Type: RecordAssignmentEpoch, Group: "g", Epoch: 3},
		{Type: RecordCurrent, Group: "g", MemberID: "m1", Epoch: 3, PrevEpoch: 2, Partitions: tps[:2], Pending: tps[2:]},
		{Type: RecordOffset, Group: "g", Topic: "a", Partition: 2, Offset: 1234, Metadata: "md", CommitMs: 1700000000000},
		{Type: RecordCurrent, Tombstone: true, Group: "g", MemberID: "m1"},
		{Type: RecordOffset, Tombstone: true, Group: "g", Topic: "a", Partition: 2},
		{Type: RecordGroup, Tombstone: true, Group: "g"},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		key := AppendKey(nil, r)
		var value []byte
		if !r.Tombstone {
			value = AppendValue([]byte{}, r)
		}
		got, err := DecodeRecord(key, value)
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, r)
		}
	}
}

// TestCodecGolden pins the bytes: a change of the encoding must come with
// a new version byte, since logs written before it are read after it.
func TestCodecGolden(t *testing.T) {
	want := []struct{ key, value string }{
		{"000101 67", "00 06 cef5b7f70f 01 02"},
		{"000201 67 026d31", "00 026931 02 0161 0162 00 0572616e6765 c0a907"},
		{"000201 67 026d32", "00 00 00 04782d2e2a 00 00"},
		{"000301 67 026d31", "00 02 0161 02 00 04 0162 01 02"},
		{"000401 67", "00 06"},
		{"000501 67 026d31", "00 06 04 01 0161 02 00 04 01 0162 01 02"},
		{"000601 67 0161 04", "00 a413 026d64 80a0abfef962"},
		{"000501 67 026d31", ""},
		{"000601 67 0161 04", ""},
		{"000101 67", ""},
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i, r := range sampleRecords() {
		key := AppendKey(nil, r)
		value := AppendValue(nil, r)
		if !bytes.Equal(key, unhex(want[i].key)) || !bytes.Equal(value, unhex(want[i].value)) {
			t.Errorf("%v:\n key %x\nvalue %x", r, key, value)
		}
	}
}

func TestCodecRefuses(t *testing.T) {
	good := sampleRecords()[1]
	key, value := AppendKey(nil, good), AppendValue(nil, good)
	cases := map[string][2][]byte{
		"empty key":         {nil, value},
		"key version":       {append([]byte{1}, key[1:]...), value},
		"record type":       {append([]byte{0, 9}, key[2:]...), value},
		"value version":     {key, append([]byte{1}, value[1:]...)},
		"key trailing":      {append(slices.Clone(key), 0), value},
		"value trailing":    {key, append(slices.Clone(value), 0)},
		"value truncated":   {key, value[:len(value)-1]},
		"string past input": {[]byte{0, 1, 0x7f, 'g'}, []byte{0}},
		"group id too long": {append([]byte{0, 1, 0x80, 0x02}, make([]byte, 256)...), []byte{0}},
		"huge count":        {key, []byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for name, c := range cases {
		if _, err := DecodeRecord(c[0], c[1]); !errors.Is(err, ErrCodec) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// decodedSize is what a decoded record holds: string bytes, and list
// elements at one each.
func decodedSize(r Record) int {
	n := len(r.Group) + len(r.MemberID) + len(r.InstanceID) + len(r.Regex) + len(r.Assignor) + len(r.Topic) + len(r.Metadata)
	for _, t := range r.Topics {
		n += len(t) + 1
	}
	return n + len(r.Partitions) + len(r.Pending)
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		var value []byte
		if !r.Tombstone {
			value = AppendValue(nil, r)
		}
		f.Add(AppendKey(nil, r), value, r.Tombstone)
	}
	f.Fuzz(func(t *testing.T, key, value []byte, tombstone bool) {
		if tombstone {
			value = nil
		} else if value == nil {
			value = []byte{}
		}
		r, err := DecodeRecord(key, value)
		if err != nil {
			return
		}
		// No amplification: every string byte and list element decoded
		// came from a byte of the input (partition names are shared, so
		// they count once per topic).
		if got := decodedSize(r); got > len(key)+len(value) {
			t.Fatalf("decoded %d from %d input bytes", got, len(key)+len(value))
		}
		// What decodes encodes back to a record that decodes the same.
		var v2 []byte
		if !r.Tombstone {
			v2 = AppendValue([]byte{}, r)
		}
		r2, err := DecodeRecord(AppendKey(nil, r), v2)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoded record differs: %v\n%#v\n%#v", err, r, r2)
		}
	})
}
