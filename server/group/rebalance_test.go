package group

import (
	"strings"
	"testing"
)

// TestMemberRebalanceTimeout: a member's own rebalance timeout, not the
// coordinator's, bounds how long it may hold a partition it was asked to
// revoke; it is durable, and changing it alone moves no epoch.
func TestMemberRebalanceTimeout(t *testing.T) {
	c := New(Config{})
	var log []Record
	keep := func(recs []Record) { log = append(log, recs...) }
	keep(c.SetTopics(map[string]int32{"a": 2}, 0))
	sub := &Subscription{Topics: []string{"a"}}
	r, recs := c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m1", Subscription: sub, RebalanceTimeoutMs: 1000}, 0)
	keep(recs)
	if r.Error != ErrNone || len(r.Assignment) != 2 {
		t.Fatalf("m1 join: %+v", r)
	}
	r2, recs := c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m2", Subscription: sub}, 10)
	keep(recs)
	if r2.Error != ErrNone || len(r2.Assignment) != 0 {
		t.Fatalf("m2 join: %+v", r2)
	}
	// m1 learns it must give one up, and does not.
	r, recs = c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m1", MemberEpoch: r.MemberEpoch, Owned: r.Assignment}, 20)
	keep(recs)
	if r.Error != ErrNone || len(r.Assignment) != 1 {
		t.Fatalf("m1 asked to revoke: %+v", r)
	}
	if !strings.Contains(c.Describe(), "member m1 epoch=1 prev=0 rebalance=1000") {
		t.Fatalf("describe:\n%s", c.Describe())
	}
	// Replay keeps the member's timeout.
	rc, err := Replay(Config{}, log, 20)
	if err != nil || rc.Describe() != c.Describe() {
		t.Fatalf("replay: %v\n%s\nlive:\n%s", err, rc.Describe(), c.Describe())
	}
	keep(c.Tick(1020))
	if !c.IsMember("g", "m1") {
		t.Fatal("m1 removed before its rebalance timeout ran out")
	}
	keep(c.Tick(1021))
	if c.IsMember("g", "m1") {
		t.Fatal("m1 kept past its own rebalance timeout (the coordinator's is 300 s)")
	}
	// m2 changes its timeout alone: one Member record, the same epoch.
	d, _ := c.DescribeGroup("g")
	_, recs = c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m2", MemberEpoch: d.Members[0].Epoch, RebalanceTimeoutMs: 5000}, 1030)
	var members int
	for _, rec := range recs {
		if rec.Type == RecordMember {
			members++
			if rec.RebalanceTimeoutMs != 5000 {
				t.Fatalf("member record %v", rec)
			}
		}
	}
	if d2, _ := c.DescribeGroup("g"); members != 1 || d2.Epoch != d.Epoch || d2.Members[0].RebalanceTimeoutMs != 5000 {
		t.Fatalf("timeout change: %d member records, epoch %d -> %d, %+v", members, d.Epoch, d2.Epoch, d2.Members[0])
	}
}
