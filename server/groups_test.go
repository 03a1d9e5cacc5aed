package server

import (
	"io"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/group"
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
	// The first lookup finds no offsets topic: it is created, and the
	// answer says to retry.
	env, _ := c.call(&fb.MessageT{Type: fb.MessageFindCoordinatorRequest, Value: &fb.FindCoordinatorRequestT{GroupId: "billing"}})
	if fc := env.Message.Value.(*fb.FindCoordinatorResponseT); fc.ErrorCode != fb.ErrorCodeCoordinatorNotAvailable || fc.NodeId != -1 {
		t.Fatalf("first lookup: %+v", fc)
	}
	g := newGroupTester(t, "billing", func() []string { return []string{addr} })
	g.find()
	if g.node != 1 || g.coord != addr {
		t.Fatalf("coordinator %d at %s, want 1 at %s", g.node, g.coord, addr)
	}
	// One broker: one replica (not the default three), the configured
	// partitions.
	env, _ = c.call(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{Topics: []string{schema.OffsetsTopic}}})
	tm := topicOf(env.Message.Value.(*fb.MetadataResponseT), schema.OffsetsTopic)
	if tm == nil || len(tm.Partitions) != 3 || len(tm.Partitions[0].Replicas) != 1 {
		t.Fatalf("offsets topic: %+v", tm)
	}
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
	for _, mem := range d.Members {
		// rawCall's client id and address, from the member's last
		// heartbeat.
		if mem.ClientId != "repl-test" || mem.ClientHost != "127.0.0.1" || len(mem.SubscribedTopicNames) != 1 || len(mem.TargetAssignment) != 1 {
			t.Fatalf("described member: %+v", mem)
		}
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

// TestGroupSessionsAndTopics: the coordinators' timers and the metadata
// reach them. A member that stops heartbeating is removed once its session
// lapses and its partitions go to the member left; a topic created after
// a member subscribed to it is assigned to it.
func TestGroupSessionsAndTopics(t *testing.T) {
	b, err := StartBroker(BrokerConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Cores: 2, NodeID: 1,
		OffsetsTopicPartitions: 3, Group: group.Config{SessionTimeoutMs: 5000},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	addr := b.Addr().String()
	c := newTestClient(t, addr)
	if code := c.createTopic("orders", 4); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	g := newGroupTester(t, "billing", func() []string { return []string{addr} })
	m1, m2 := g.member("m1", "orders", "later"), g.member("m2", "orders", "later")
	m1.heartbeat()
	m2.heartbeat()
	converge(t, 2, m1, m2)
	// m2 goes silent; m1 heartbeats on (well within its session, even
	// with a slow disk under each acknowledgement) until it holds
	// everything.
	deadline := time.Now().Add(groupTestWait)
	for m1.count() != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("m1 owns %v; m2's partitions never came", m1.owned)
		}
		time.Sleep(200 * time.Millisecond)
		if r := m1.heartbeat(); r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("heartbeat: %v", r.ErrorCode)
		}
	}
	if d := g.describe(); len(d.Members) != 1 || d.Members[0].MemberId != "m1" {
		t.Fatalf("members after m2's session lapsed: %s", describeState(d))
	}
	if r := m2.heartbeat(); r.ErrorCode != fb.ErrorCodeUnknownMemberId {
		t.Fatalf("heartbeat of a removed member: %v", r.ErrorCode)
	}
	if code := c.createTopic("later", 2); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	for len(m1.owned["later"]) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("m1 owns %v; the new topic never came", m1.owned)
		}
		time.Sleep(200 * time.Millisecond)
		if r := m1.heartbeat(); r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("heartbeat: %v", r.ErrorCode)
		}
	}
}

// TestGroupLogCompacted: the offsets log is compacted under the
// coordinator (small segments, tombstones dropped at once) and a
// restarted broker loads what compaction left: the same offsets, members,
// epochs and assignments, a deleted group gone and the group of the same
// name made after it intact.
func TestGroupLogCompacted(t *testing.T) {
	dir := t.TempDir()
	start := func() *Broker {
		b, err := StartBroker(BrokerConfig{DataDir: dir, Listen: "127.0.0.1:0", Cores: 2, NodeID: 1,
			LogRetentionCheckInterval: retentionCheckIntervalTest, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := start()
	addr := b.Addr().String()
	brokers := func() []string { return []string{addr} }
	c := newTestClient(t, addr)
	if code := c.createTopic(schema.OffsetsTopic, 1, topicConfigs("segment.bytes=4096", "cleanup.policy=compact",
		"min.cleanable.dirty.ratio=0.01", "delete.retention.ms=0")...); code != fb.ErrorCodeNone {
		t.Fatalf("create the offsets topic: %v", code)
	}
	if code := c.createTopic("orders", 4); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	// A group made, deleted, and made again under the same name.
	tmp := newGroupTester(t, "temp", brokers)
	t1 := tmp.member("t1", "orders")
	t1.heartbeat()
	tmp.commit(t1, t1.epoch, "orders", map[int32]int64{0: 1, 1: 1, 2: 1, 3: 1})
	t1.epoch, t1.owned = schema.MemberEpochLeave, nil
	t1.heartbeat()
	env := tmp.call(&fb.MessageT{Type: fb.MessageDeleteGroupsRequest, Value: &fb.DeleteGroupsRequestT{GroupIds: []string{"temp"}}})
	if code := env.Message.Value.(*fb.DeleteGroupsResponseT).Results[0].ErrorCode; code != fb.ErrorCodeNone {
		t.Fatalf("delete: %v", code)
	}
	// Made again by an admin commit: a group that never computed an
	// assignment, so nothing of its own overwrites the old group's
	// AssignmentEpoch record.
	if r := tmp.commit(nil, -1, "orders", map[int32]int64{3: 7}); r.ErrorCode != fb.ErrorCodeNone || r.Topics[0].Partitions[0].ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("admin commit: %v", r.ErrorCode)
	}
	// A group with a long history of commits.
	g := newGroupTester(t, "billing", brokers)
	m1, m2 := g.member("m1", "orders"), g.member("m2", "orders")
	m1.heartbeat()
	for round := int64(0); round < 150; round++ {
		g.commit(m1, m1.epoch, "orders", map[int32]int64{0: round, 1: round, 2: round, 3: round})
	}
	m2.heartbeat()
	converge(t, 2, m1, m2)
	for round := int64(150); round < 250; round++ {
		for _, m := range []*testMember{m1, m2} {
			commit := map[int32]int64{}
			for _, p := range m.owned["orders"] {
				commit[p] = round
			}
			if r := g.commit(m, m.epoch, "orders", commit); r.ErrorCode != fb.ErrorCodeNone {
				t.Fatalf("commit: %v", r.ErrorCode)
			}
		}
	}
	// Wait until the cleaner has left fewer than a third of the records.
	deadline := time.Now().Add(groupTestWait)
	for {
		kept, end := countRecords(t, c, schema.OffsetsTopic)
		if kept < end/3 {
			t.Logf("compacted: %d records of %d kept", kept, end)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("offsets log not compacted: %d records of %d kept", kept, end)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantOffsets, wantGroup := g.fetchAll(), describeState(g.describe())
	wantTmpOffsets, wantTmp := tmp.fetchAll(), describeState(tmp.describe())
	if len(wantTmpOffsets) != 1 || wantTmpOffsets["orders-3"] != 7 {
		t.Fatalf("the group made again holds %v", wantTmpOffsets)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b = start()
	defer b.Stop()
	addr = b.Addr().String()
	g.coord, tmp.coord = "", ""
	if got := g.fetchAll(); !maps.Equal(got, wantOffsets) {
		t.Fatalf("offsets after the reload: %v, want %v", got, wantOffsets)
	}
	if got := describeState(g.describe()); got != wantGroup {
		t.Fatalf("group after the reload:\n%s\nwant\n%s", got, wantGroup)
	}
	if got := tmp.fetchAll(); !maps.Equal(got, wantTmpOffsets) {
		t.Fatalf("offsets of the group made again after the reload: %v, want %v", got, wantTmpOffsets)
	}
	if got := describeState(tmp.describe()); got != wantTmp {
		t.Fatalf("group made again after the reload:\n%s\nwant\n%s", got, wantTmp)
	}
	for _, m := range []*testMember{m1, m2} {
		epoch := m.epoch
		if r := m.heartbeat(); r.ErrorCode != fb.ErrorCodeNone || r.MemberEpoch != epoch {
			t.Fatalf("%s after the reload: %v epoch %d (was %d)", m.id, r.ErrorCode, r.MemberEpoch, epoch)
		}
	}
}

// countRecords reads partition 0 of topic from its log start and returns
// how many records it holds and where it ends.
func countRecords(t *testing.T, c *testClient, topic string) (kept, end int64) {
	t.Helper()
	var br schema.BatchReader
	var v schema.RecordView
	off := int64(0)
	for {
		env, trailing := c.call(fetchMsg(topic, 0, off, 0, 0))
		r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
		if r.ErrorCode == fb.ErrorCodeOffsetOutOfRange && off < r.LogStartOffset {
			off = r.LogStartOffset
			continue
		}
		if r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("fetch at %d: %v", off, r.ErrorCode)
		}
		if len(trailing) == 0 {
			return kept, r.HighWatermark
		}
		for len(trailing) > 0 {
			n, err := schema.PeekFrameLength(trailing, schema.MaxFrameBytes)
			if err != nil || n > len(trailing) {
				break // a frame cut short by the byte limit: fetched again
			}
			if err := br.Reset(trailing[:n]); err != nil {
				t.Fatalf("fetch at %d: %v", off, err)
			}
			for br.Next(&v) {
				kept++
			}
			h := br.Header()
			off = h.NextOffset()
			trailing = trailing[n:]
		}
	}
}

// TestGroupCommitTooLarge: a commit whose records could not fit one batch
// of the offsets log is refused whole with MESSAGE_TOO_LARGE, and the
// coordinator goes on serving.
func TestGroupCommitTooLarge(t *testing.T) {
	b := startGroupBroker(t, t.TempDir())
	defer b.Stop()
	addr := b.Addr().String()
	g := newGroupTester(t, "billing", func() []string { return []string{addr} })
	big := &fb.OffsetCommitTopicT{Name: "orders"}
	md := string(make([]byte, 4000))
	for p := int32(0); p < 2200; p++ {
		big.Partitions = append(big.Partitions, &fb.OffsetCommitPartitionT{Partition: p, CommittedOffset: 1, CommittedMetadata: md})
	}
	env := g.call(&fb.MessageT{Type: fb.MessageOffsetCommitRequest, Value: &fb.OffsetCommitRequestT{GroupId: "billing",
		MemberEpoch: -1, Topics: []*fb.OffsetCommitTopicT{big}}})
	r := env.Message.Value.(*fb.OffsetCommitResponseT)
	if r.ErrorCode != fb.ErrorCodeMessageTooLarge || r.Topics[0].Partitions[2199].ErrorCode != fb.ErrorCodeMessageTooLarge {
		t.Fatalf("commit of %d bytes: %v", 2200*4000, r.ErrorCode)
	}
	if r := g.commit(nil, -1, "orders", map[int32]int64{0: 5}); r.ErrorCode != fb.ErrorCodeNone || r.Topics[0].Partitions[0].ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("small commit after it: %v", r.ErrorCode)
	}
	if got := g.fetchAll(); len(got) != 1 || got["orders-0"] != 5 {
		t.Fatalf("offsets: %v", got)
	}
}
