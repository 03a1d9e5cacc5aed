package server

import (
	"io"
	"log/slog"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// startGroupBroker is a broker of two shards (so group requests cross
// shards) whose offsets topic has few partitions.
func startGroupBroker(t *testing.T, dir string) *Broker {
	t.Helper()
	b, err := StartBroker(BrokerConfig{DataDir: dir, Listen: "127.0.0.1:0", Cores: 2, NodeID: 1,
		OffsetsTopicPartitions: 3, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGroupHeartbeatAssigns: two members of a group on one broker, over the
// wire: the first gets all four partitions, the second joins, the first is
// asked to revoke two and only once it has let go are they given to the
// second; no partition is ever owned by both.
func TestGroupHeartbeatAssigns(t *testing.T) {
	b := startGroupBroker(t, t.TempDir())
	defer b.Stop()
	addr := b.Addr().String()
	c := newTestClient(t, addr)
	if code := c.createTopic("orders", 4); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	g := newGroupTester(t, "billing", func() []string { return []string{addr} })
	m1, m2 := g.member("", "orders"), g.member("", "orders")
	r := m1.heartbeat()
	if r.ErrorCode != fb.ErrorCodeNone || r.MemberId == "" || r.MemberEpoch <= 0 || m1.count() != 4 {
		t.Fatalf("first join: %+v", r)
	}
	m1.id = r.MemberId
	r = m2.heartbeat()
	if r.ErrorCode != fb.ErrorCodeNone || r.MemberId == "" || r.MemberId == m1.id {
		t.Fatalf("second join: %+v", r)
	}
	m2.id = r.MemberId
	checkDisjoint(t, []*testMember{m1, m2})
	converge(t, 2, m1, m2)
	d := g.describe()
	if d.ErrorCode != fb.ErrorCodeNone || d.GroupState != schema.GroupStateStable || len(d.Members) != 2 {
		t.Fatalf("describe: %s", describeState(d))
	}
	// A heartbeat from an epoch the member never had is fenced.
	stale := &testMember{g: g, id: m1.id, epoch: m1.epoch + 7, owned: m1.owned}
	if r := stale.heartbeat(); r.ErrorCode != fb.ErrorCodeFencedMemberEpoch {
		t.Fatalf("heartbeat at a wrong epoch: %v", r.ErrorCode)
	}
}

// TestGroupCommitFetch: a member commits what it owns and reads it back;
// a commit from a stale epoch, or for a partition it does not own, is
// refused; the offsets topic takes no produce; an empty group is deleted
// with its offsets.
func TestGroupCommitFetch(t *testing.T) {
	b := startGroupBroker(t, t.TempDir())
	defer b.Stop()
	addr := b.Addr().String()
	c := newTestClient(t, addr)
	if code := c.createTopic("orders", 4); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	g := newGroupTester(t, "billing", func() []string { return []string{addr} })
	m1 := g.member("m1", "orders")
	if r := m1.heartbeat(); r.ErrorCode != fb.ErrorCodeNone || m1.count() != 4 {
		t.Fatalf("join: %+v", r)
	}
	r := g.commit(m1, m1.epoch, "orders", map[int32]int64{0: 10, 1: 20})
	for _, p := range r.Topics[0].Partitions {
		if r.ErrorCode != fb.ErrorCodeNone || p.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("commit: %v %+v", r.ErrorCode, p)
		}
	}
	// A member's fetch of named partitions: -1 where nothing is committed.
	env := g.call(&fb.MessageT{Type: fb.MessageOffsetFetchRequest, Value: &fb.OffsetFetchRequestT{GroupId: "billing",
		MemberId: "m1", MemberEpoch: m1.epoch, Topics: []*fb.GroupTopicPartitionsT{{Topic: "orders", Partitions: []int32{0, 1, 2}}}}})
	fr := env.Message.Value.(*fb.OffsetFetchResponseT)
	if fr.ErrorCode != fb.ErrorCodeNone || len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 3 {
		t.Fatalf("fetch: %+v", fr)
	}
	for i, want := range []int64{10, 20, -1} {
		if p := fr.Topics[0].Partitions[i]; p.Partition != int32(i) || p.CommittedOffset != want {
			t.Fatalf("fetch partition %d: %+v, want offset %d", i, p, want)
		}
	}
	if p := fr.Topics[0].Partitions[0]; p.CommittedMetadata != "md-10" {
		t.Fatalf("metadata %q", p.CommittedMetadata)
	}
	// A commit from an epoch other than the member's is refused whole.
	r = g.commit(m1, m1.epoch+1, "orders", map[int32]int64{0: 99})
	if r.ErrorCode != fb.ErrorCodeStaleMemberEpoch || r.Topics[0].Partitions[0].ErrorCode != fb.ErrorCodeStaleMemberEpoch {
		t.Fatalf("stale commit: %v", r.ErrorCode)
	}
	// So is a member's fetch at a stale epoch.
	env = g.call(&fb.MessageT{Type: fb.MessageOffsetFetchRequest, Value: &fb.OffsetFetchRequestT{GroupId: "billing",
		MemberId: "m1", MemberEpoch: m1.epoch + 1}})
	if code := env.Message.Value.(*fb.OffsetFetchResponseT).ErrorCode; code != fb.ErrorCodeStaleMemberEpoch {
		t.Fatalf("stale fetch: %v", code)
	}
	// A second member owns nothing yet: its commit of m1's partition is
	// refused for that partition.
	m2 := g.member("m2", "orders")
	if r := m2.heartbeat(); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("second join: %v", r.ErrorCode)
	}
	if m2.count() == 0 {
		r = g.commit(m2, m2.epoch, "orders", map[int32]int64{0: 99})
		if r.ErrorCode != fb.ErrorCodeNone || r.Topics[0].Partitions[0].ErrorCode != fb.ErrorCodeStaleMemberEpoch {
			t.Fatalf("commit of an unowned partition: %v %v", r.ErrorCode, r.Topics[0].Partitions[0].ErrorCode)
		}
	}
	if got := g.fetchAll(); len(got) != 2 || got["orders-0"] != 10 || got["orders-1"] != 20 {
		t.Fatalf("offsets after refused commits: %v", got)
	}
	// Clients may read the offsets topic but not write it.
	env, _ = c.call(produceMsg(fb.AcksAll, schema.OffsetsTopic, 0, batch(t, 0, 1, 1)))
	if code := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0].ErrorCode; code != fb.ErrorCodeInvalidTopic {
		t.Fatalf("produce to the offsets topic: %v", code)
	}
	// ListGroups shows it; DeleteGroups refuses it while it has members.
	env, _ = c.call(&fb.MessageT{Type: fb.MessageListGroupsRequest, Value: &fb.ListGroupsRequestT{}})
	if lg := env.Message.Value.(*fb.ListGroupsResponseT); len(lg.Groups) != 1 || lg.Groups[0].GroupId != "billing" {
		t.Fatalf("list groups: %+v", lg.Groups)
	}
	del := func() fb.ErrorCode {
		env := g.call(&fb.MessageT{Type: fb.MessageDeleteGroupsRequest, Value: &fb.DeleteGroupsRequestT{GroupIds: []string{"billing"}}})
		return env.Message.Value.(*fb.DeleteGroupsResponseT).Results[0].ErrorCode
	}
	if code := del(); code != fb.ErrorCodeNonEmptyGroup {
		t.Fatalf("delete with members: %v", code)
	}
	for _, m := range []*testMember{m1, m2} {
		m.epoch, m.owned = schema.MemberEpochLeave, nil
		if r := m.heartbeat(); r.ErrorCode != fb.ErrorCodeNone || r.MemberEpoch != schema.MemberEpochLeave {
			t.Fatalf("leave: %v %d", r.ErrorCode, r.MemberEpoch)
		}
	}
	if code := del(); code != fb.ErrorCodeNone {
		t.Fatalf("delete: %v", code)
	}
	if got := g.fetchAll(); len(got) != 0 {
		t.Fatalf("offsets after delete: %v", got)
	}
	if d := g.describe(); d.ErrorCode != fb.ErrorCodeGroupIdNotFound {
		t.Fatalf("describe after delete: %v", d.ErrorCode)
	}
}
