package server

import (
	"fmt"
	"maps"
	"syscall"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// groupClusterArgs keep the offsets topic small, so that its creation does
// not dominate the tests.
var groupClusterArgs = []string{"--offsets-topic-partitions", "3"}

func (c *testCluster) liveAddrs() []string {
	var out []string
	for _, n := range c.nodes {
		select {
		case <-n.done:
		default:
			if a := n.clientAddr(); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

// TestGroupStateSurvivesRestart: a single-node cluster (a process) keeps a
// group's committed offsets, members, epochs and assignments across a
// clean stop (SIGTERM) and a kill -9: the coordinator that loads from the
// log describes the same group, and its members go on heartbeating at
// their epochs.
func TestGroupStateSurvivesRestart(t *testing.T) {
	c := newTestClusterArgs(t, 1, false, groupClusterArgs...)
	n := c.nodes[1]
	c.createTopic(n, "orders", 4, 1)
	g := newGroupTester(t, "billing", c.liveAddrs)
	m1, m2 := g.member("m1", "orders"), g.member("m2", "orders")
	m1.heartbeat()
	m2.heartbeat()
	converge(t, 2, m1, m2)
	offsets := map[string]int64{}
	for i, m := range []*testMember{m1, m2} {
		for topic, ps := range m.owned {
			commit := map[int32]int64{}
			for _, p := range ps {
				commit[p] = int64(100*(i+1)) + int64(p)
				offsets[fmt.Sprintf("%s-%d", topic, p)] = commit[p]
			}
			r := g.commit(m, m.epoch, topic, commit)
			for _, p := range r.Topics[0].Partitions {
				if r.ErrorCode != fb.ErrorCodeNone || p.ErrorCode != fb.ErrorCodeNone {
					t.Fatalf("commit: %v %v", r.ErrorCode, p.ErrorCode)
				}
			}
		}
	}
	before := describeState(g.describe())
	for _, how := range []string{"SIGTERM", "kill -9"} {
		if how == "SIGTERM" {
			n.cmd.Process.Signal(syscall.SIGTERM)
			<-n.done
		} else {
			n.kill()
		}
		c.start(n)
		c.waitReady(n)
		g.coord = ""
		if got := g.fetchAll(); !maps.Equal(got, offsets) {
			t.Fatalf("after %s: offsets %v, want %v", how, got, offsets)
		}
		if after := describeState(g.describe()); after != before {
			t.Fatalf("after %s the group is\n%s\nwas\n%s", how, after, before)
		}
		for _, m := range []*testMember{m1, m2} {
			epoch := m.epoch
			if r := m.heartbeat(); r.ErrorCode != fb.ErrorCodeNone || r.MemberEpoch != epoch || m.count() != 2 {
				t.Fatalf("after %s, %s heartbeat: %v epoch %d (was %d), owns %v", how, m.id, r.ErrorCode, r.MemberEpoch, epoch, m.owned)
			}
		}
	}
}

// TestGroupCoordinatorFailover: three brokers, the offsets topic with three
// replicas; a member commits, the coordinator's broker is killed (-9), and
// the coordinator elected elsewhere serves every acknowledged commit and
// takes the member's next heartbeat and commit.
func TestGroupCoordinatorFailover(t *testing.T) {
	c := newTestClusterArgs(t, 3, false, groupClusterArgs...)
	c.createTopic(c.nodes[1], "orders", 4, 3)
	g := newGroupTester(t, "billing", c.liveAddrs)
	m := g.member("m1", "orders")
	if r := m.heartbeat(); r.ErrorCode != fb.ErrorCodeNone || m.count() != 4 {
		t.Fatalf("join: %v %v", r.ErrorCode, m.owned)
	}
	want := map[string]int64{}
	for round := int64(1); round <= 20; round++ {
		commit := map[int32]int64{}
		for p := int32(0); p < 4; p++ {
			commit[p] = round*1000 + int64(p)
		}
		r := g.commit(m, m.epoch, "orders", commit)
		if r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("commit round %d: %v", round, r.ErrorCode)
		}
		for _, p := range r.Topics[0].Partitions {
			if p.ErrorCode != fb.ErrorCodeNone {
				t.Fatalf("commit round %d partition %d: %v", round, p.Partition, p.ErrorCode)
			}
			want[fmt.Sprintf("orders-%d", p.Partition)] = commit[p.Partition]
		}
	}
	g.find()
	old := g.node
	c.nodes[old].kill()
	t.Logf("killed node %d, the coordinator", old)
	g.coord = ""
	if got := g.fetchAll(); !maps.Equal(got, want) {
		t.Fatalf("after failover: offsets %v, want %v", got, want)
	}
	if g.node == old {
		t.Fatalf("coordinator still node %d", old)
	}
	epoch := m.epoch
	if r := m.heartbeat(); r.ErrorCode != fb.ErrorCodeNone || r.MemberEpoch != epoch {
		t.Fatalf("heartbeat after failover: %v epoch %d (was %d)", r.ErrorCode, r.MemberEpoch, epoch)
	}
	if r := g.commit(m, m.epoch, "orders", map[int32]int64{0: 99_999}); r.ErrorCode != fb.ErrorCodeNone || r.Topics[0].Partitions[0].ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("commit after failover: %v", r.ErrorCode)
	}
	want["orders-0"] = 99_999
	if got := g.fetchAll(); !maps.Equal(got, want) {
		t.Fatalf("after the new commit: offsets %v, want %v", got, want)
	}
}

// TestGroupCommitWithoutReplicas: with both other brokers down (and with
// them the controller quorum, so the ISR cannot shrink), a commit cannot
// be acknowledged: the coordinator answers it with a retriable error, not
// a success, and drops its state; once the brokers are back it loads the
// log again and serves every acknowledged commit, and the member goes on.
func TestGroupCommitWithoutReplicas(t *testing.T) {
	c := newTestClusterArgs(t, 3, false, groupClusterArgs...)
	c.createTopic(c.nodes[1], "orders", 4, 3)
	g := newGroupTester(t, "billing", c.liveAddrs)
	m := g.member("m1", "orders")
	if r := m.heartbeat(); r.ErrorCode != fb.ErrorCodeNone || m.count() != 4 {
		t.Fatalf("join: %v %v", r.ErrorCode, m.owned)
	}
	if r := g.commit(m, m.epoch, "orders", map[int32]int64{0: 10, 1: 11, 2: 12, 3: 13}); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("commit: %v", r.ErrorCode)
	}
	g.find()
	coord := g.node
	var others []*clusterNode
	for id, n := range c.nodes {
		if id != coord {
			others = append(others, n)
			n.kill()
		}
	}
	env, _, err := rawCallWithin(g.coord, &fb.MessageT{Type: fb.MessageOffsetCommitRequest, Value: &fb.OffsetCommitRequestT{
		GroupId: "billing", MemberId: m.id, MemberEpoch: m.epoch, Topics: []*fb.OffsetCommitTopicT{{Name: "orders",
			Partitions: []*fb.OffsetCommitPartitionT{{Partition: 0, CommittedOffset: 20}}}}}}, groupTestWait)
	if err != nil {
		t.Fatalf("commit without replicas: %v", err)
	}
	code := env.Message.Value.(*fb.OffsetCommitResponseT).ErrorCode
	if code == fb.ErrorCodeNone || !schema.ErrorRetriable(code) {
		t.Fatalf("commit without replicas answered %v, want a retriable error", code)
	}
	t.Logf("commit without replicas: %s", schema.ErrorName(code))
	for _, n := range others {
		c.start(n)
	}
	for _, n := range others {
		c.waitReady(n)
	}
	got := g.fetchAll()
	t.Logf("offsets after the outage: %v", got)
	// The refused commit may have been written (its outcome was unknown,
	// as for any produce that timed out); everything acknowledged is there.
	if got["orders-0"] != 10 && got["orders-0"] != 20 {
		t.Fatalf("orders-0 at %d after the outage", got["orders-0"])
	}
	for p, want := range map[string]int64{"orders-1": 11, "orders-2": 12, "orders-3": 13} {
		if got[p] != want {
			t.Fatalf("%s at %d after the outage, want %d", p, got[p], want)
		}
	}
	epoch := m.epoch
	if r := m.heartbeat(); r.ErrorCode != fb.ErrorCodeNone || r.MemberEpoch != epoch {
		t.Fatalf("heartbeat after the outage: %v epoch %d (was %d)", r.ErrorCode, r.MemberEpoch, epoch)
	}
	if r := g.commit(m, m.epoch, "orders", map[int32]int64{0: 30}); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("commit after the outage: %v", r.ErrorCode)
	}
	if got := g.fetchAll(); got["orders-0"] != 30 {
		t.Fatalf("orders-0 at %d, want 30", got["orders-0"])
	}
}
