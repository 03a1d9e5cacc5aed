package server

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// groupTestWait bounds every wait of the group tests; groupTestPoll is the pause
// between polls of a condition.
const (
	groupTestWait = 60 * time.Second
	groupTestPoll = 50 * time.Millisecond
)

// groupTester sends a group's requests to its coordinator, found through
// FindCoordinator on any of brokers(), and sends them again while the
// answer is a retriable coordinator error (the coordinator moved, is
// loading, or its topic is being created).
type groupTester struct {
	t       *testing.T
	brokers func() []string
	group   string
	coord   string
	node    int32
}

func newGroupTester(t *testing.T, group string, brokers func() []string) *groupTester {
	return &groupTester{t: t, brokers: brokers, group: group}
}

// find looks the coordinator up until one answers.
func (g *groupTester) find() {
	g.t.Helper()
	deadline := time.Now().Add(groupTestWait)
	var last string
	for time.Now().Before(deadline) {
		for _, addr := range g.brokers() {
			env, _, err := rawCall(addr, &fb.MessageT{Type: fb.MessageFindCoordinatorRequest,
				Value: &fb.FindCoordinatorRequestT{GroupId: g.group}})
			if err != nil {
				last = err.Error()
				continue
			}
			if env.ErrorCode != fb.ErrorCodeNone {
				last = schema.ErrorName(env.ErrorCode)
				continue
			}
			r := env.Message.Value.(*fb.FindCoordinatorResponseT)
			if r.ErrorCode == fb.ErrorCodeNone {
				g.coord, g.node = fmt.Sprintf("%s:%d", r.Host, r.Port), r.NodeId
				return
			}
			last = schema.ErrorName(r.ErrorCode)
		}
		time.Sleep(groupTestPoll)
	}
	g.t.Fatalf("no coordinator for %s within %v: %s", g.group, groupTestWait, last)
}

// retriableGroupCode reports whether a group answer asks to try again.
func retriableGroupCode(c fb.ErrorCode) bool {
	switch c {
	case fb.ErrorCodeNotCoordinator, fb.ErrorCodeCoordinatorNotAvailable, fb.ErrorCodeCoordinatorLoadInProgress,
		fb.ErrorCodeLeaderNotAvailable:
		return true
	}
	return false
}

// groupAnswerCode is the top-level error code of a group answer.
func groupAnswerCode(env *fb.EnvelopeT) fb.ErrorCode {
	if env.ErrorCode != fb.ErrorCodeNone || env.Message == nil {
		return env.ErrorCode
	}
	switch v := env.Message.Value.(type) {
	case *fb.ConsumerGroupHeartbeatResponseT:
		return v.ErrorCode
	case *fb.OffsetCommitResponseT:
		return v.ErrorCode
	case *fb.OffsetFetchResponseT:
		return v.ErrorCode
	case *fb.ConsumerGroupDescribeResponseT:
		if len(v.Groups) == 1 {
			return v.Groups[0].ErrorCode
		}
	case *fb.DeleteGroupsResponseT:
		if len(v.Results) == 1 && retriableGroupCode(v.Results[0].ErrorCode) {
			return v.Results[0].ErrorCode
		}
	}
	return fb.ErrorCodeNone
}

// call sends m to the coordinator until the answer is not a retriable
// coordinator error.
func (g *groupTester) call(m *fb.MessageT) *fb.EnvelopeT {
	g.t.Helper()
	deadline := time.Now().Add(groupTestWait)
	for {
		if g.coord == "" {
			g.find()
		}
		env, _, err := rawCall(g.coord, m)
		if err == nil && !retriableGroupCode(groupAnswerCode(env)) {
			return env
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%v: no answer within %v: %v %v", m.Type, groupTestWait, err, env)
		}
		g.coord = ""
		time.Sleep(groupTestPoll)
	}
}

// testMember is one consumer of a group, as a raw client: what it owns is
// what it was last assigned (it lets go of a revoked partition as soon as
// it hears of it).
type testMember struct {
	g      *groupTester
	id     string
	epoch  int32
	topics []string
	owned  map[string][]int32
}

func (g *groupTester) member(id string, topics ...string) *testMember {
	return &testMember{g: g, id: id, topics: topics}
}

func ownedT(owned map[string][]int32) []*fb.GroupTopicPartitionsT {
	var out []*fb.GroupTopicPartitionsT
	for _, t := range slices.Sorted(maps.Keys(owned)) {
		out = append(out, &fb.GroupTopicPartitionsT{Topic: t, Partitions: owned[t]})
	}
	return out
}

// heartbeat sends one heartbeat (a join at epoch 0) and takes the answer.
func (m *testMember) heartbeat() *fb.ConsumerGroupHeartbeatResponseT {
	m.g.t.Helper()
	req := &fb.ConsumerGroupHeartbeatRequestT{GroupId: m.g.group, MemberId: m.id, MemberEpoch: m.epoch,
		RebalanceTimeoutMs: -1, OwnedTopicPartitions: ownedT(m.owned)}
	if m.epoch == 0 {
		req.SubscribedTopicNames = m.topics
	}
	env := m.g.call(&fb.MessageT{Type: fb.MessageConsumerGroupHeartbeatRequest, Value: req})
	r := env.Message.Value.(*fb.ConsumerGroupHeartbeatResponseT)
	if r.ErrorCode == fb.ErrorCodeNone {
		m.epoch = r.MemberEpoch
		m.owned = map[string][]int32{}
		for _, tp := range r.Assignment {
			m.owned[tp.Topic] = tp.Partitions
		}
	}
	return r
}

func (m *testMember) count() int {
	n := 0
	for _, ps := range m.owned {
		n += len(ps)
	}
	return n
}

// converge heartbeats every member in turn until each owns want
// partitions at one epoch, checking after every answer that no partition
// is owned by two members.
func converge(t *testing.T, want int, members ...*testMember) {
	t.Helper()
	for round := 0; round < 50; round++ {
		for _, m := range members {
			if r := m.heartbeat(); r.ErrorCode != fb.ErrorCodeNone {
				t.Fatalf("%s heartbeat: %v %s", m.id, r.ErrorCode, r.ErrorMessage)
			}
			checkDisjoint(t, members)
		}
		done := true
		for _, m := range members {
			done = done && m.count() == want && m.epoch == members[0].epoch
		}
		if done {
			return
		}
	}
	for _, m := range members {
		t.Logf("%s epoch %d owns %v", m.id, m.epoch, m.owned)
	}
	t.Fatalf("members did not converge to %d partitions each", want)
}

func checkDisjoint(t *testing.T, members []*testMember) {
	t.Helper()
	owner := map[string]string{}
	for _, m := range members {
		for topic, ps := range m.owned {
			for _, p := range ps {
				k := fmt.Sprintf("%s-%d", topic, p)
				if o, ok := owner[k]; ok {
					t.Fatalf("%s owned by %s and %s", k, o, m.id)
				}
				owner[k] = m.id
			}
		}
	}
}

// commit commits offsets (partition -> offset) of one topic as the member
// (or as an admin, with m nil) and returns the per-partition codes.
func (g *groupTester) commit(m *testMember, epoch int32, topic string, offsets map[int32]int64) *fb.OffsetCommitResponseT {
	g.t.Helper()
	req := &fb.OffsetCommitRequestT{GroupId: g.group, MemberEpoch: epoch}
	if m != nil {
		req.MemberId = m.id
	}
	tr := &fb.OffsetCommitTopicT{Name: topic}
	for _, p := range slices.Sorted(maps.Keys(offsets)) {
		tr.Partitions = append(tr.Partitions, &fb.OffsetCommitPartitionT{Partition: p, CommittedOffset: offsets[p],
			CommittedMetadata: fmt.Sprintf("md-%d", offsets[p])})
	}
	req.Topics = []*fb.OffsetCommitTopicT{tr}
	env := g.call(&fb.MessageT{Type: fb.MessageOffsetCommitRequest, Value: req})
	return env.Message.Value.(*fb.OffsetCommitResponseT)
}

// fetchAll is every committed offset of the group, by "topic-partition",
// through an admin fetch.
func (g *groupTester) fetchAll() map[string]int64 {
	g.t.Helper()
	env := g.call(&fb.MessageT{Type: fb.MessageOffsetFetchRequest, Value: &fb.OffsetFetchRequestT{GroupId: g.group, MemberEpoch: -1}})
	r := env.Message.Value.(*fb.OffsetFetchResponseT)
	if r.ErrorCode != fb.ErrorCodeNone {
		g.t.Fatalf("fetch: %v", r.ErrorCode)
	}
	out := map[string]int64{}
	for _, tr := range r.Topics {
		for _, p := range tr.Partitions {
			out[fmt.Sprintf("%s-%d", tr.Name, p.Partition)] = p.CommittedOffset
		}
	}
	return out
}

// describe is the group's ConsumerGroupDescribe entry.
func (g *groupTester) describe() *fb.DescribedGroupT {
	g.t.Helper()
	env := g.call(&fb.MessageT{Type: fb.MessageConsumerGroupDescribeRequest, Value: &fb.ConsumerGroupDescribeRequestT{GroupIds: []string{g.group}}})
	return env.Message.Value.(*fb.ConsumerGroupDescribeResponseT).Groups[0]
}

// describeState is a described group as text, for comparing one across
// a restart.
func describeState(d *fb.DescribedGroupT) string {
	s := fmt.Sprintf("%s %v epoch=%d assignment-epoch=%d state=%s\n", d.GroupId, d.ErrorCode, d.GroupEpoch, d.AssignmentEpoch, d.GroupState)
	for _, m := range d.Members {
		s += fmt.Sprintf("  %s epoch=%d topics=%v owns=%s revoking=%s target=%s\n", m.MemberId, m.MemberEpoch,
			m.SubscribedTopicNames, fmtTPs(m.Assignment), fmtTPs(m.PendingRevocation), fmtTPs(m.TargetAssignment))
	}
	return s
}

func fmtTPs(tps []*fb.GroupTopicPartitionsT) string {
	s := ""
	for _, tp := range tps {
		s += fmt.Sprintf("%s%v", tp.Topic, tp.Partitions)
	}
	return s
}
