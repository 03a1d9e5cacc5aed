package group

import (
	"reflect"
	"testing"
)

func TestDescribeListDelete(t *testing.T) {
	c := New(Config{})
	c.SetTopics(map[string]int32{"a": 2}, 0)
	resp, _ := c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m1", Subscription: &Subscription{Topics: []string{"a"}}}, 1)
	if resp.Error != ErrNone || len(resp.Assignment) != 2 {
		t.Fatalf("join: %+v", resp)
	}
	if _, recs := c.CommitOffsets(CommitRequest{GroupID: "g", MemberID: "m1", MemberEpoch: resp.MemberEpoch,
		Offsets: []CommitOffset{{TopicPartition: TopicPartition{"a", 0}, Offset: 7}}}, 2); len(recs) != 1 {
		t.Fatalf("commit: %v", recs)
	}
	d, ok := c.DescribeGroup("g")
	want := GroupDescription{ID: "g", State: StateStable, Epoch: 1, AssignmentEpoch: 1, Assignor: AssignorUniform,
		Members: []MemberDescription{{ID: "m1", Epoch: 1, Topics: []string{"a"},
			Assigned: []TopicPartition{{"a", 0}, {"a", 1}}, Pending: []TopicPartition{}, Target: []TopicPartition{{"a", 0}, {"a", 1}}}}}
	if !ok || !reflect.DeepEqual(d, want) {
		t.Fatalf("describe:\n got %+v\nwant %+v", d, want)
	}
	if _, ok := c.DescribeGroup("nope"); ok {
		t.Fatal("described a group that does not exist")
	}
	if code, _ := c.DeleteGroup("g"); code != ErrNonEmptyGroup {
		t.Fatalf("delete with a member: %v", code)
	}
	if code, _ := c.DeleteGroup("nope"); code != ErrGroupIDNotFound {
		t.Fatalf("delete unknown: %v", code)
	}
	c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m1", MemberEpoch: EpochLeave}, 3)
	if got := c.ListGroups(); !reflect.DeepEqual(got, []GroupSummary{{"g", StateEmpty}}) {
		t.Fatalf("list: %v", got)
	}
	code, recs := c.DeleteGroup("g")
	if code != ErrNone || len(recs) != 2 || !recs[0].Tombstone || recs[0].Type != RecordOffset || recs[1].Type != RecordGroup {
		t.Fatalf("delete: %v %v", code, recs)
	}
	if got := c.ListGroups(); len(got) != 0 {
		t.Fatalf("list after delete: %v", got)
	}
	if got, _ := c.FetchOffsets(FetchRequest{GroupID: "g", Partitions: []TopicPartition{{"a", 0}}}); got[0].Offset != -1 {
		t.Fatalf("offset after delete: %v", got)
	}
}
