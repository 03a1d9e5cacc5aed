package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-db/strata/schema/fb"
)

// groupWait bounds the wait for a group to settle: a few heartbeat
// intervals (the coordinator's default is 5 s) per rebalance step.
const groupWait = 90 * time.Second

// ownership is the partitions' holders as the members' own callbacks tell
// them: a partition taken up (OnAssigned) while another member has not let
// go of it (OnRevoked) is a violation.
type ownership struct {
	mu         sync.Mutex
	owner      map[TopicPartition]string
	violations []string
}

func newOwnership() *ownership { return &ownership{owner: map[TopicPartition]string{}} }

func (o *ownership) take(name string, parts []TopicPartition) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, tp := range parts {
		if prev, ok := o.owner[tp]; ok && prev != name {
			o.violations = append(o.violations, fmt.Sprintf("%s/%d given to %s while %s holds it", tp.Topic, tp.Partition, name, prev))
		}
		o.owner[tp] = name
	}
}

func (o *ownership) release(name string, parts []TopicPartition) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, tp := range parts {
		if o.owner[tp] == name {
			delete(o.owner, tp)
		}
	}
}

func (o *ownership) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) > 0 {
		t.Fatalf("a partition held by two members at once: %v", o.violations)
	}
}

// testMember runs a GroupConsumer's Poll loop on a goroutine of its own
// (a GroupConsumer is used from one goroutine) and keeps its view: the
// partitions between its OnAssigned and OnRevoked calls.
type testMember struct {
	name string
	gc   *GroupConsumer

	mu        sync.Mutex
	view      tpSet
	records   []Record
	callbacks int // OnAssigned and OnRevoked calls
	err       error
	// inLoop, when set, runs once on the Poll goroutine between two Polls
	// (a GroupConsumer is used from one goroutine).
	inLoop func(gc *GroupConsumer)

	stop context.CancelFunc
	done chan error
}

// startMember dials a client of its own (as a process would have) to addrs
// (comma-separated) and starts a member of cfg's group.
func startMember(t *testing.T, addr string, own *ownership, name string, cfg GroupConfig) *testMember {
	return startMemberHook(t, addr, own, name, cfg, nil)
}

// startMemberHook is startMember with a hook run (on the member's Poll
// goroutine) after each OnAssigned.
func startMemberHook(t *testing.T, addrs string, own *ownership, name string, cfg GroupConfig,
	assignedHook func(m *testMember, ctx context.Context, parts []TopicPartition)) *testMember {
	t.Helper()
	cl, err := Dial(context.Background(), Config{Brokers: strings.Split(addrs, ","), RetryBackoffMs: 20, RetryBackoffMaxMs: 200,
		ResponseTimeoutMs: responseTimeoutMsTest, ClientID: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	m := &testMember{name: name, view: tpSet{}, done: make(chan error, 1)}
	onAssigned, onRevoked := cfg.OnAssigned, cfg.OnRevoked
	cfg.OnAssigned = func(ctx context.Context, parts []TopicPartition) {
		own.take(name, parts)
		m.mu.Lock()
		for _, tp := range parts {
			m.view[tp] = struct{}{}
		}
		m.callbacks++
		m.mu.Unlock()
		if onAssigned != nil {
			onAssigned(ctx, parts)
		}
		if assignedHook != nil {
			assignedHook(m, ctx, parts)
		}
	}
	cfg.OnRevoked = func(ctx context.Context, parts []TopicPartition) {
		if onRevoked != nil {
			onRevoked(ctx, parts)
		}
		m.mu.Lock()
		for _, tp := range parts {
			delete(m.view, tp)
		}
		m.callbacks++
		m.mu.Unlock()
		own.release(name, parts)
	}
	if cfg.MaxWaitMs == 0 {
		cfg.MaxWaitMs = 100
	}
	m.gc, err = NewGroupConsumer(cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() {
		for ctx.Err() == nil {
			m.mu.Lock()
			f := m.inLoop
			m.inLoop = nil
			m.mu.Unlock()
			if f != nil {
				f(m.gc)
			}
			// Short Polls, so that inLoop runs soon after it is set.
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			recs, err := m.gc.Poll(pctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				err = nil
			}
			m.mu.Lock()
			if err != nil && ctx.Err() == nil {
				// The member stays in the group (it heartbeats in the
				// background) until the test closes it.
				m.err = err
				m.mu.Unlock()
				<-ctx.Done()
				break
			}
			for _, r := range recs {
				if !m.view.has(TopicPartition{Topic: r.Topic, Partition: r.Partition}) {
					m.err = fmt.Errorf("%s: record of %s/%d, which it does not hold", name, r.Topic, r.Partition)
				}
			}
			m.records = append(m.records, recs...)
			m.mu.Unlock()
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		m.done <- m.gc.Close(cctx)
	}()
	t.Cleanup(func() { m.close() })
	return m
}

// close stops the Poll loop and closes the member (once).
func (m *testMember) close() error {
	if m.stop == nil {
		return nil
	}
	m.stop()
	m.stop = nil
	return <-m.done
}

func (m *testMember) held() []TopicPartition {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view.sorted()
}

func (m *testMember) failure() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// waitGroup polls cond until it holds, a member failed, or groupWait ends.
func waitGroup(t *testing.T, what string, members []*testMember, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(groupWait)
	for !cond() {
		for _, m := range members {
			if err := m.failure(); err != nil {
				t.Fatalf("waiting for %s: %s: %v", what, m.name, err)
			}
		}
		if time.Now().After(deadline) {
			var views []string
			for _, m := range members {
				views = append(views, fmt.Sprintf("%s=%s", m.name, tpList(m.held())))
			}
			t.Fatalf("no %s within %v: %v", what, groupWait, views)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// balanced reports whether the members' views cover every partition of
// topic (n of them) exactly once with counts differing by at most one.
func balanced(members []*testMember, topic string, n int) bool {
	seen := tpSet{}
	lo, hi := n, 0
	for _, m := range members {
		h := m.held()
		lo, hi = min(lo, len(h)), max(hi, len(h))
		for _, tp := range h {
			if seen.has(tp) || tp.Topic != topic {
				return false
			}
			seen[tp] = struct{}{}
		}
	}
	return len(seen) == n && hi-lo <= 1
}

func produceTo(t *testing.T, ctx context.Context, cl *Client, topic string, partitions, perPartition int) {
	t.Helper()
	p, err := NewProducer(cl, ProducerConfig{Acks: AcksAll, ManualPartitions: true})
	if err != nil {
		t.Fatal(err)
	}
	for part := range partitions {
		for i := range perPartition {
			r := &Record{Topic: topic, Partition: int32(part), Value: []byte(fmt.Sprintf("%d-%d", part, i))}
			if err := p.Send(ctx, r, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestGroupTwoMembersShare: one member takes all four partitions, a
// second joins and the coordinator moves two to it incrementally; by the
// members' own callbacks no partition is ever held by both, and every
// record each returns is of a partition it holds. Records written after
// each move are read exactly once between the two: auto-commit commits a
// partition's position before it is let go of, and its next owner starts
// there. When the second leaves, the first gets its partitions back.
func TestGroupTwoMembersShare(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "shared", 4)
	produceTo(t, ctx, cl, "shared", 4, 5)
	own := newOwnership()
	cfg := GroupConfig{GroupID: "pair", Topics: []string{"shared"}, Reset: ResetEarliest}
	a := startMember(t, b.Addr, own, "a", cfg)
	members := []*testMember{a}
	waitGroup(t, "a holding all four", members, func() bool { return len(a.held()) == 4 })
	waitGroup(t, "the first 20 records read", members, readAll(members, 20))
	c := startMember(t, b.Addr, own, "c", cfg)
	members = append(members, c)
	waitGroup(t, "two and two", members, func() bool { return balanced(members, "shared", 4) })
	own.check(t)
	produceTo(t, ctx, cl, "shared", 4, 5)
	waitGroup(t, "the next 20 records read", members, readAll(members, 40))
	if err := c.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if h := c.held(); len(h) != 0 {
		t.Fatalf("closed member still holds %v", h)
	}
	waitGroup(t, "a holding all four again", members, func() bool { return len(a.held()) == 4 })
	own.check(t)
	produceTo(t, ctx, cl, "shared", 4, 5)
	waitGroup(t, "the last 20 records read", members, readAll(members, 60))
}

// readAll reports whether the members read n distinct records between
// them, failing the test if any record was read twice.
func readAll(members []*testMember, n int) func() bool {
	return func() bool {
		seen := map[TopicPartition]map[int64]string{}
		total := 0
		for _, m := range members {
			m.mu.Lock()
			for _, r := range m.records {
				tp := TopicPartition{Topic: r.Topic, Partition: r.Partition}
				if seen[tp] == nil {
					seen[tp] = map[int64]string{}
				}
				if by, dup := seen[tp][r.Offset]; dup {
					m.err = fmt.Errorf("%s/%d@%d read by %s and by %s", r.Topic, r.Partition, r.Offset, by, m.name)
				}
				seen[tp][r.Offset] = m.name
				total++
			}
			m.mu.Unlock()
		}
		return total == n
	}
}

// TestGroupFiveOnFour: five members of a group on four partitions, asking
// for the range assignor, end with four holding one each and exactly one
// idle.
func TestGroupFiveOnFour(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "four", 4)
	own := newOwnership()
	var members []*testMember
	for i := range 5 {
		members = append(members, startMember(t, b.Addr, own, fmt.Sprintf("m%d", i),
			GroupConfig{GroupID: "five", Topics: []string{"four"}, ServerAssignor: AssignorRange}))
	}
	waitGroup(t, "one each and one idle", members, func() bool {
		idle, ones := 0, 0
		for _, m := range members {
			switch len(m.held()) {
			case 0:
				idle++
			case 1:
				ones++
			}
		}
		return idle == 1 && ones == 4 && balanced(members, "four", 4)
	})
	own.check(t)
	// Every member reaches the group's epoch at its next heartbeat.
	var desc GroupDescription
	waitGroup(t, "the group stable", members, func() bool {
		var err error
		desc, err = NewAdmin(cl).DescribeGroup(ctx, "five")
		return err == nil && desc.State == GroupStateStable
	})
	if len(desc.Members) != 5 || desc.Assignor != AssignorRange {
		t.Fatalf("describe: %d members, assignor %q; want 5 and range: %+v", len(desc.Members), desc.Assignor, desc)
	}
}

// TestGroupResumeAtCommit: a member commits offset N of a partition and
// closes; a new member of the group starts reading there. The admin's
// offsets and lag say the same.
func TestGroupResumeAtCommit(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "resume", 1)
	produceTo(t, ctx, cl, "resume", 1, 10)
	own := newOwnership()
	tp := TopicPartition{Topic: "resume", Partition: 0}
	cfg := GroupConfig{GroupID: "resumers", Topics: []string{"resume"}, Reset: ResetEarliest, DisableAutoCommit: true}
	admin := NewAdmin(cl)
	const n = 7
	committer := startMemberCommitting(t, b.Addr, own, cfg, tp, n)
	// Without auto-commit, Close commits nothing more.
	if err := committer.close(); err != nil {
		t.Fatal(err)
	}
	offs, err := admin.CommittedOffsets(ctx, "resumers")
	if err != nil || offs[tp] != n {
		t.Fatalf("committed %v %v, want %d", offs, err, n)
	}
	desc, err := admin.DescribeGroup(ctx, "resumers")
	if err != nil {
		t.Fatal(err)
	}
	lags, err := admin.GroupOffsets(ctx, "resumers", desc)
	if err != nil || len(lags) != 1 || lags[0].Committed != n || lags[0].LogEnd != 10 || lags[0].Lag != 10-n {
		t.Fatalf("offsets %+v %v", lags, err)
	}
	next := startMember(t, b.Addr, own, "next", cfg)
	waitGroup(t, "the new member's first records", []*testMember{next}, func() bool {
		next.mu.Lock()
		defer next.mu.Unlock()
		return len(next.records) > 0
	})
	next.mu.Lock()
	got := next.records[0].Offset
	next.mu.Unlock()
	if got != n {
		t.Fatalf("the new member started at %d, want the committed %d", got, n)
	}
	own.check(t)
}

// startMemberCommitting starts a member that, once it holds tp, commits
// offset n for it (from its own Poll goroutine, in OnAssigned) and then
// goes on polling.
func startMemberCommitting(t *testing.T, addr string, own *ownership, cfg GroupConfig, tp TopicPartition, n int64) *testMember {
	committed := make(chan error, 1)
	m := startMemberHook(t, addr, own, "committer", cfg, func(m *testMember, ctx context.Context, parts []TopicPartition) {
		if slices.Contains(parts, tp) {
			committed <- m.gc.CommitOffsets(ctx, map[TopicPartition]int64{tp: n})
		}
	})
	select {
	case err := <-committed:
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
	case <-time.After(groupWait):
		t.Fatalf("the committing member was never given %v", tp)
	}
	return m
}

// TestGroupStaticMemberKeepsPartitions: a static member closes (leave
// with -2) and its next incarnation, under the same instance id, gets the
// same partitions back; the other member notices nothing (no callback).
func TestGroupStaticMemberKeepsPartitions(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "static", 4)
	own := newOwnership()
	cfgA := GroupConfig{GroupID: "statics", InstanceID: "host-a", Topics: []string{"static"}}
	cfgB := GroupConfig{GroupID: "statics", InstanceID: "host-b", Topics: []string{"static"}}
	a := startMember(t, b.Addr, own, "a", cfgA)
	bm := startMember(t, b.Addr, own, "b", cfgB)
	members := []*testMember{a, bm}
	waitGroup(t, "two and two", members, func() bool { return balanced(members, "static", 4) })
	before := a.held()
	bm.mu.Lock()
	bCallbacks := bm.callbacks
	bm.mu.Unlock()
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	desc, err := NewAdmin(cl).DescribeGroup(ctx, "statics")
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.Members) != 2 {
		t.Fatalf("after the static leave the group has %d members, want 2 (one reserved for host-a): %+v", len(desc.Members), desc.Members)
	}
	a2 := startMember(t, b.Addr, own, "a2", cfgA)
	waitGroup(t, "the new incarnation holding its partitions", []*testMember{a2, bm}, func() bool {
		return slices.Equal(a2.held(), before)
	})
	bm.mu.Lock()
	after := bm.callbacks
	bm.mu.Unlock()
	if after != bCallbacks {
		t.Fatalf("the other member's partitions changed (%d callbacks before, %d after) across a static restart", bCallbacks, after)
	}
	own.check(t)
}

// TestGroupResetNone: with auto.offset.reset none, a partition with no
// committed offset fails Poll with ErrNoCommittedOffset, and an admin
// reset of the offsets is refused while the group has members, then
// accepted once it has none.
func TestGroupResetNone(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "strict", 1)
	produceTo(t, ctx, cl, "strict", 1, 3)
	own := newOwnership()
	m := startMember(t, b.Addr, own, "strict", GroupConfig{GroupID: "strict", Topics: []string{"strict"}, Reset: ResetNone})
	waitGroup(t, "the no-offset error", nil, func() bool {
		err := m.failure()
		return err != nil
	})
	if err := m.failure(); !errors.Is(err, ErrNoCommittedOffset) {
		t.Fatalf("poll: %v, want ErrNoCommittedOffset", err)
	}
	admin := NewAdmin(cl)
	tp := TopicPartition{Topic: "strict", Partition: 0}
	err := admin.ResetOffsets(ctx, "strict", map[TopicPartition]int64{tp: 1})
	if ErrorCode(err) != fb.ErrorCodeNonEmptyGroup {
		t.Fatalf("reset with a member: %v, want NON_EMPTY_GROUP", err)
	}
	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	if err := admin.ResetOffsets(ctx, "strict", map[TopicPartition]int64{tp: 1}); err != nil {
		t.Fatalf("reset of an empty group: %v", err)
	}
	next := startMember(t, b.Addr, own, "next", GroupConfig{GroupID: "strict", Topics: []string{"strict"}, Reset: ResetNone})
	waitGroup(t, "records from the reset offset", []*testMember{next}, func() bool {
		next.mu.Lock()
		defer next.mu.Unlock()
		return len(next.records) > 0
	})
	next.mu.Lock()
	first := next.records[0].Offset
	next.mu.Unlock()
	if first != 1 {
		t.Fatalf("first record at %d, want the reset offset 1", first)
	}
	if err := next.close(); err != nil {
		t.Fatal(err)
	}
	groups, err := admin.ListGroups(ctx)
	if err != nil || !slices.ContainsFunc(groups, func(g GroupListing) bool { return g.GroupID == "strict" }) {
		t.Fatalf("list groups: %v %v", groups, err)
	}
	if err := admin.DeleteGroups(ctx, "strict"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := admin.DescribeGroup(ctx, "strict"); ErrorCode(err) != fb.ErrorCodeGroupIdNotFound {
		t.Fatalf("describe after delete: %v, want GROUP_ID_NOT_FOUND", err)
	}
}
