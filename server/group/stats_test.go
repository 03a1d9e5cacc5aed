package group

import (
	"testing"
)

// rebalanceOf is the one group's stats.
func rebalanceOf(t *testing.T, c *Coordinator) GroupStats {
	t.Helper()
	st, _ := c.Stats(1 << 20)
	if len(st) != 1 {
		t.Fatalf("stats of %d groups, want 1: %+v", len(st), st)
	}
	return st[0]
}

func bucketOf(ms int64) int {
	for i, b := range RebalanceBucketsMs {
		if ms <= b {
			return i
		}
	}
	return len(RebalanceBucketsMs)
}

// TestRebalanceClock: a rebalance starts when the group epoch moves (or
// the group stops being at rest) and ends when every member holds its
// target at the group epoch; a replayed coordinator starts counting
// afresh; a group emptied by a lapsed session counts no rebalance.
func TestRebalanceClock(t *testing.T) {
	c := New(Config{})
	var log []Record
	keep := func(recs []Record) { log = append(log, recs...) }
	keep(c.SetTopics(map[string]int32{"a": 4}, 0))
	sub := &Subscription{Topics: []string{"a"}}
	hb := func(member string, epoch int32, owned []TopicPartition, now int64) HeartbeatResponse {
		t.Helper()
		req := HeartbeatRequest{GroupID: "g", MemberID: member, MemberEpoch: epoch, Owned: owned}
		if epoch == EpochJoin {
			req.Subscription = sub
		}
		r, recs := c.Heartbeat(req, now)
		keep(recs)
		if r.Error != ErrNone {
			t.Fatalf("%s heartbeat at %d: %v", member, now, r.Error)
		}
		return r
	}

	// The first member gets everything in one call: a rebalance of 0 ms.
	r1 := hb("m1", EpochJoin, nil, 100)
	if s := rebalanceOf(t, c); s.Rebalancing || s.Rebalances != 1 || s.RebalanceTotalMs != 0 || s.RebalanceBuckets[0] != 1 {
		t.Fatalf("after the first join: %+v", s)
	}

	// A second member: running until m1 let go of two partitions and m2
	// took them.
	r2 := hb("m2", EpochJoin, nil, 1000)
	if s := rebalanceOf(t, c); !s.Rebalancing || s.RebalanceSinceMs != 1000 || s.Rebalances != 1 {
		t.Fatalf("after m2 joined: %+v", s)
	}
	r1 = hb("m1", r1.MemberEpoch, r1.Assignment, 1500)
	if len(r1.Assignment) != 2 {
		t.Fatalf("m1 keeps %v", r1.Assignment)
	}
	r1 = hb("m1", r1.MemberEpoch, r1.Assignment, 2000)
	if s := rebalanceOf(t, c); !s.Rebalancing || s.State != StateStable && s.State != StateReconciling {
		t.Fatalf("m1 let go, m2 holds nothing yet: %+v", s)
	}
	keep(c.Tick(2500))
	if s := rebalanceOf(t, c); !s.Rebalancing {
		t.Fatalf("a tick ended the rebalance before m2 took its partitions: %+v", s)
	}
	r2 = hb("m2", r2.MemberEpoch, r2.Assignment, 3000)
	if len(r2.Assignment) != 2 {
		t.Fatalf("m2 got %v", r2.Assignment)
	}
	s := rebalanceOf(t, c)
	if s.Rebalancing || s.Rebalances != 2 || s.RebalanceTotalMs != 2000 || s.RebalanceBuckets[bucketOf(2000)] != 1 {
		t.Fatalf("after m2 took its partitions: %+v", s)
	}
	// Heartbeats at rest change nothing.
	r1 = hb("m1", r1.MemberEpoch, r1.Assignment, 4000)
	r2 = hb("m2", r2.MemberEpoch, r2.Assignment, 4000)
	keep(c.Tick(4100))
	if s2 := rebalanceOf(t, c); s2.Rebalancing || s2.Rebalances != 2 {
		t.Fatalf("at rest: %+v", s2)
	}

	// A new coordinator counts afresh, and its clock runs from what
	// happens under it.
	c2, err := Replay(Config{}, log, 5000)
	if err != nil {
		t.Fatal(err)
	}
	c = c2
	keep(c.SetTopics(map[string]int32{"a": 4}, 5000))
	if s := rebalanceOf(t, c); s.Rebalancing || s.Rebalances != 0 || s.Epoch != r2.MemberEpoch {
		t.Fatalf("replayed: %+v", s)
	}
	_, recs := c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m1", MemberEpoch: EpochLeave}, 6000)
	keep(recs)
	if s := rebalanceOf(t, c); !s.Rebalancing || s.RebalanceSinceMs != 6000 {
		t.Fatalf("after m1 left: %+v", s)
	}
	keep(c.Tick(7000))
	r2 = hb("m2", r2.MemberEpoch, r2.Assignment, 8000)
	if len(r2.Assignment) != 4 {
		t.Fatalf("m2 holds %v", r2.Assignment)
	}
	if s := rebalanceOf(t, c); s.Rebalancing || s.Rebalances != 1 || s.RebalanceTotalMs != 2000 {
		t.Fatalf("after m2 took everything: %+v", s)
	}

	// A partition count change is a rebalance, ended by the heartbeat
	// that takes the new partition.
	keep(c.SetTopics(map[string]int32{"a": 5}, 9000))
	if s := rebalanceOf(t, c); !s.Rebalancing || s.RebalanceSinceMs != 9000 {
		t.Fatalf("after a fifth partition: %+v", s)
	}
	r2 = hb("m2", r2.MemberEpoch, r2.Assignment, 9500)
	if s := rebalanceOf(t, c); s.Rebalancing || s.Rebalances != 2 || s.RebalanceTotalMs != 2500 || len(r2.Assignment) != 5 {
		t.Fatalf("after m2 took the fifth: %+v %v", s, r2.Assignment)
	}

	// The last member's session lapses: the group (kept by its offset)
	// empties at rest, which is no rebalance.
	cr, recs := c.CommitOffsets(CommitRequest{GroupID: "g", MemberID: "m2", MemberEpoch: r2.MemberEpoch,
		Offsets: []CommitOffset{{TopicPartition: TopicPartition{"a", 0}, Offset: 3}}}, 9500)
	keep(recs)
	if cr.Error != ErrNone || cr.Partitions[0] != ErrNone {
		t.Fatalf("commit: %+v", cr)
	}
	keep(c.Tick(9500 + DefaultSessionTimeoutMs + 1))
	if s := rebalanceOf(t, c); s.Rebalancing || s.Rebalances != 2 || s.Members != 0 || s.State != StateEmpty {
		t.Fatalf("after m2's session lapsed: %+v", s)
	}
}

// TestRebalanceEndsWhenTheGroupEmpties: a rebalance running when the last
// member leaves ends then.
func TestRebalanceEndsWhenTheGroupEmpties(t *testing.T) {
	c := New(Config{})
	c.SetTopics(map[string]int32{"a": 2}, 0)
	sub := &Subscription{Topics: []string{"a"}}
	r1, _ := c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m1", Subscription: sub}, 0)
	c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m2", Subscription: sub}, 10)
	if s := rebalanceOf(t, c); !s.Rebalancing {
		t.Fatalf("m2 joined: %+v", s)
	}
	c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m2", MemberEpoch: EpochLeave}, 20)
	c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m1", MemberEpoch: r1.MemberEpoch, Owned: r1.Assignment}, 30)
	// m1 was asked for nothing once m2 left: the group is at rest.
	if s := rebalanceOf(t, c); s.Rebalancing || s.Rebalances != 2 || s.RebalanceTotalMs != 20 {
		t.Fatalf("m2 left: %+v", s)
	}
	c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m3", Subscription: sub}, 40)
	if s := rebalanceOf(t, c); !s.Rebalancing {
		t.Fatalf("m3 joined: %+v", s)
	}
	c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m1", MemberEpoch: EpochLeave}, 50)
	c.Heartbeat(HeartbeatRequest{GroupID: "g", MemberID: "m3", MemberEpoch: EpochLeave}, 60)
	if s := rebalanceOf(t, c); s.Rebalancing || s.Rebalances != 3 || s.RebalanceTotalMs != 40 {
		t.Fatalf("everyone left: %+v", s)
	}
}

// TestStatsOffsetsBound: offsets past the bound are left out a group at a
// time and counted.
func TestStatsOffsetsBound(t *testing.T) {
	c := New(Config{})
	for _, g := range []string{"a", "b"} {
		resp, _ := c.CommitOffsets(CommitRequest{GroupID: g, MemberEpoch: -1, Offsets: []CommitOffset{
			{TopicPartition: TopicPartition{"t", 0}, Offset: 5}, {TopicPartition: TopicPartition{"t", 1}, Offset: 7}}}, 0)
		if resp.Error != ErrNone {
			t.Fatalf("commit %s: %v", g, resp.Error)
		}
	}
	st, omitted := c.Stats(3)
	if len(st) != 2 || len(st[0].Offsets) != 2 || st[0].Offsets[1].Offset != 7 || len(st[1].Offsets) != 0 || omitted != 2 {
		t.Fatalf("stats %+v omitted %d", st, omitted)
	}
	if st, omitted = c.Stats(4); len(st[1].Offsets) != 2 || omitted != 0 {
		t.Fatalf("stats %+v omitted %d", st, omitted)
	}
}
