package group

import (
	"cmp"
	"slices"
)

// LiveRecords is what a compacted log of records leaves to replay: the
// latest record of each key (AppendKey's), without tombstones, a group's
// tombstone dropping every earlier record of the group, and only the
// records of groups that have a Group record. They come in a fixed order
// per group (Group, Members, Targets, AssignmentEpoch, Currents, Offsets)
// that Replay accepts, and Replay of them builds the same state as Replay
// of the whole log.
//
// The broker loads a coordinator through it because compaction of the
// offsets log keeps the latest record of each key, not the order the
// records were written in: a member's Target written before its latest
// Member record would otherwise come before any Member record of it.
// (Every record of the state is a whole overwrite of its entity, so the
// latest of each key is the state.)
func LiveRecords(records []Record) []Record {
	type key struct {
		t                    RecordType
		group, member, topic string
		partition            int32
	}
	keyOf := func(r *Record) key {
		k := key{t: r.Type, group: r.Group}
		switch r.Type {
		case RecordMember, RecordTarget, RecordCurrent:
			k.member = r.MemberID
		case RecordOffset:
			k.topic, k.partition = r.Topic, r.Partition
		}
		return k
	}
	latest := map[key]int{}
	byGroup := map[string][]key{}
	for i := range records {
		r := &records[i]
		k := keyOf(r)
		if r.Tombstone {
			delete(latest, k)
			if r.Type == RecordGroup {
				for _, gk := range byGroup[r.Group] {
					delete(latest, gk)
				}
				delete(byGroup, r.Group)
			}
			continue
		}
		if _, seen := latest[k]; !seen {
			byGroup[r.Group] = append(byGroup[r.Group], k)
		}
		latest[k] = i
	}
	out := make([]Record, 0, len(latest))
	for k, i := range latest {
		if _, ok := latest[key{t: RecordGroup, group: k.group}]; ok {
			out = append(out, records[i])
		}
	}
	rank := func(t RecordType) int {
		switch t {
		case RecordGroup:
			return 0
		case RecordMember:
			return 1
		case RecordTarget:
			return 2
		case RecordAssignmentEpoch:
			return 3
		case RecordCurrent:
			return 4
		}
		return 5
	}
	slices.SortFunc(out, func(a, b Record) int {
		if c := cmp.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		if c := cmp.Compare(rank(a.Type), rank(b.Type)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.MemberID, b.MemberID); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return cmp.Compare(a.Partition, b.Partition)
	})
	return out
}

// LogRecords is what the broker writes for records the coordinator
// emitted: the records, and after each Group tombstone a tombstone for the
// group's AssignmentEpoch key. The coordinator never deletes that key on
// its own (its state has no AssignmentEpoch without a group), but a
// compacted log must: once the Group tombstone itself is compacted away,
// an AssignmentEpoch record left behind would be read as the epoch of a
// later group of the same name.
func LogRecords(records []Record) []Record {
	n := 0
	for i := range records {
		if records[i].Type == RecordGroup && records[i].Tombstone {
			n++
		}
	}
	if n == 0 {
		return records
	}
	out := make([]Record, 0, len(records)+n)
	for _, r := range records {
		out = append(out, r)
		if r.Type == RecordGroup && r.Tombstone {
			out = append(out, Record{Type: RecordAssignmentEpoch, Tombstone: true, Group: r.Group})
		}
	}
	return out
}
