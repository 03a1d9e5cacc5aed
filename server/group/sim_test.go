package group

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
)

// The simulator runs one coordinator and a handful of consumer processes
// on a simulated clock: joins, leaves, crashes and restarts, static
// members restarting within their session, heartbeats slow enough to lose
// the session, lost responses, subscription changes, topics and partition
// counts changing, and coordinator failover (a fresh coordinator replaying
// the log written so far). After every step it checks that no partition
// is owned by two processes at once, as each process sees it (what it
// last received, plus what it was asked to revoke and has not yet let
// go); that a revocation only ever takes partitions the member's target
// no longer holds; and that an offset commit is accepted only from the
// partition's owner. After the chaos it lets the world go quiet and
// checks that every subscribed partition ends up owned by exactly one live
// member, and each member holds exactly its target.
//
// Seeds: STRATA_GROUP_SEEDS=n runs seeds 1..n (default simDefaultSeeds);
// STRATA_GROUP_SEED=s runs seed s alone, which replays a failure exactly.
const (
	simDefaultSeeds  = 300
	simChaosSteps    = 400
	simSessionMs     = 6_000
	simIntervalMs    = 1_000
	simRebalanceMs   = 2 * simSessionMs
	simMaxStepMs     = 400
	simMaxRevokeMs   = simSessionMs / 2
	simQuietMs       = 6*simSessionMs + 20*simIntervalMs
	simQuietStepMs   = 250
	simMaxPartitions = 6
	simGroup         = "g"
)

var simTopics = []string{"t0", "t1", "t2", "x-a", "x-b"}

func TestSimulation(t *testing.T) {
	first, last := uint64(1), uint64(simDefaultSeeds)
	if v := os.Getenv("STRATA_GROUP_SEEDS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("STRATA_GROUP_SEEDS=%q: %v", v, err)
		}
		last = n
	}
	if v := os.Getenv("STRATA_GROUP_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("STRATA_GROUP_SEED=%q: %v", v, err)
		}
		first, last = n, n
	}
	var total simStats
	for seed := first; seed <= last; seed++ {
		st := runSim(t, seed)
		if t.Failed() {
			return
		}
		for k, v := range st {
			if total == nil {
				total = simStats{}
			}
			total[k] += v
		}
	}
	t.Logf("seeds %d..%d: %v", first, last, total)
}

// simStats counts what the runs exercised, so a change that stops the
// simulator from reaching a case shows in its log (go test -v).
type simStats map[string]int

type simClient struct {
	idx         int
	incarnation int
	alive       bool
	memberID    string
	instanceID  string
	joined      bool
	epoch       int32
	sub         Subscription
	// view is what the process last received; revoking is what it was
	// asked to give up and still holds, with the time it lets go.
	view     partSet
	revoking map[TopicPartition]int64
	// released is what it gave up since it last joined: commits of them
	// must be refused.
	released partSet
	// lastOKSentMs is when the last request that got an answer was sent:
	// a process that has heard nothing for a session stops consuming, as
	// the coordinator will have expired it.
	lastOKSentMs int64
	nextHbMs     int64
	restartAtMs  int64
}

func (cl *simClient) owned() partSet {
	s := partSet{}
	for tp := range cl.view {
		s[tp] = struct{}{}
	}
	for tp := range cl.revoking {
		s[tp] = struct{}{}
	}
	return s
}

func (cl *simClient) dropAll() {
	for tp := range cl.owned() {
		cl.released[tp] = struct{}{}
	}
	cl.view, cl.revoking, cl.joined, cl.epoch = partSet{}, map[TopicPartition]int64{}, false, 0
}

type sim struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	cfg     Config
	c       *Coordinator
	log     []Record
	topics  map[string]int32
	clients []*simClient
	now     int64
	step    int
	chaos   bool
	failed  bool
	stats   simStats
}

func (s *sim) failf(format string, args ...any) {
	if s.failed {
		return
	}
	s.failed = true
	s.t.Errorf("seed %d, step %d, t=%dms: %s\nrerun: STRATA_GROUP_SEED=%d go test -count=1 -run TestSimulation ./server/group/",
		s.seed, s.step, s.now, fmt.Sprintf(format, args...), s.seed)
}

func runSim(t *testing.T, seed uint64) simStats {
	s := &sim{t: t, seed: seed, stats: simStats{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), chaos: true,
		cfg: Config{SessionTimeoutMs: simSessionMs, HeartbeatIntervalMs: simIntervalMs, RebalanceTimeoutMs: simRebalanceMs,
			Assignor: []string{AssignorUniform, AssignorRange}[seed%2]}}
	s.c = New(s.cfg)
	s.topics = map[string]int32{}
	for _, name := range simTopics {
		if s.rng.IntN(4) != 0 {
			s.topics[name] = int32(1 + s.rng.IntN(simMaxPartitions))
		}
	}
	s.record(s.c.SetTopics(s.topics, 0))
	for i := range 2 + s.rng.IntN(5) {
		cl := &simClient{idx: i, restartAtMs: int64(s.rng.IntN(2000))}
		if s.rng.IntN(3) == 0 {
			cl.instanceID = "i" + strconv.Itoa(i)
		}
		s.clients = append(s.clients, cl)
	}
	for s.step = 0; s.step < simChaosSteps && !s.failed; s.step++ {
		s.now += int64(1 + s.rng.IntN(simMaxStepMs))
		s.chaosEvent()
		s.advance()
	}
	s.chaos = false
	for _, cl := range s.clients {
		if !cl.alive && cl.restartAtMs > s.now {
			cl.restartAtMs = s.now
		}
	}
	for end := s.now + simQuietMs; s.now < end && !s.failed; s.step++ {
		s.now += simQuietStepMs
		s.advance()
	}
	if !s.failed {
		s.checkConverged()
	}
	return s.stats
}

func (s *sim) record(recs []Record) { s.log = append(s.log, recs...) }

// chaosEvent does at most one disruptive thing.
func (s *sim) chaosEvent() {
	cl := s.clients[s.rng.IntN(len(s.clients))]
	switch r := s.rng.IntN(100); {
	case r < 3 && cl.alive: // crash: the process stops and holds nothing
		s.stats["crashes"]++
		cl.alive, cl.restartAtMs = false, s.now+int64(s.rng.IntN(3*simSessionMs))
		cl.dropAll()
	case r < 6 && cl.alive && cl.joined: // graceful shutdown
		s.stats["leaves"]++
		epoch := EpochLeave
		if cl.instanceID != "" {
			epoch = EpochStaticLeave
		}
		cl.dropAll()
		s.heartbeatRaw(cl, HeartbeatRequest{GroupID: simGroup, MemberID: cl.memberID, InstanceID: cl.instanceID, MemberEpoch: epoch})
		cl.alive, cl.restartAtMs = false, s.now+int64(s.rng.IntN(simSessionMs))
	case r < 9 && cl.alive: // a pause: GC, a slow poll loop, sometimes past the session
		cl.nextHbMs = s.now + int64(s.rng.IntN(2*simSessionMs))
		s.stats["pauses"]++
	case r < 12 && cl.alive && cl.joined: // a new subscription
		cl.sub = s.randomSubscription()
		s.heartbeat(cl, true)
	case r < 15: // topic metadata changes
		name := simTopics[s.rng.IntN(len(simTopics))]
		if s.rng.IntN(4) == 0 {
			delete(s.topics, name)
		} else {
			s.topics[name] = int32(1 + s.rng.IntN(simMaxPartitions))
		}
		s.record(s.c.SetTopics(s.topics, s.now))
		s.stats["metadata changes"]++
	case r < 17: // coordinator failover
		s.failover()
		s.stats["failovers"]++
	}
}

func (s *sim) failover() {
	c, err := Replay(s.cfg, s.log, s.now)
	if err != nil {
		s.failf("replay: %v", err)
		return
	}
	if got, want := c.Describe(), s.c.Describe(); got != want {
		s.failf("replayed state differs:\n%s\nlive:\n%s", got, want)
		return
	}
	// Half the failovers load the way the broker does: through the byte
	// encoding and what compaction of the log would leave.
	if s.rng.IntN(2) == 0 {
		if c, err = replayCompacted(s.cfg, s.log, s.now); err != nil {
			s.failf("replay of the compacted log: %v", err)
			return
		}
		if got, want := c.Describe(), s.c.Describe(); got != want {
			s.failf("state replayed from the compacted log differs:\n%s\nlive:\n%s", got, want)
			return
		}
	}
	s.c = c
	s.record(s.c.SetTopics(s.topics, s.now))
}

func (s *sim) randomSubscription() Subscription {
	switch s.rng.IntN(4) {
	case 0:
		return Subscription{Regex: "x-.*"}
	case 1:
		return Subscription{Regex: "t[0-9]"}
	default:
		var topics []string
		for _, name := range simTopics {
			if s.rng.IntN(2) == 0 {
				topics = append(topics, name)
			}
		}
		if len(topics) == 0 {
			topics = []string{"t0"}
		}
		return Subscription{Topics: topics}
	}
}

// advance runs the processes' own timers, the coordinator's tick, and
// every heartbeat that is due, then checks the invariants.
func (s *sim) advance() {
	for _, cl := range s.clients {
		if cl.alive && cl.joined && s.now-cl.lastOKSentMs >= simSessionMs {
			cl.dropAll()
		}
		for tp, at := range cl.revoking {
			if at <= s.now {
				delete(cl.revoking, tp)
				cl.released[tp] = struct{}{}
			}
		}
	}
	s.record(s.c.Tick(s.now))
	for _, cl := range s.clients {
		if !cl.alive && s.now >= cl.restartAtMs {
			s.restart(cl)
		}
		if cl.alive && s.now >= cl.nextHbMs {
			s.heartbeat(cl, false)
		}
		if s.chaos && cl.alive && cl.joined && s.rng.IntN(6) == 0 {
			s.commit(cl)
		}
	}
	s.checkOwnership()
}

func (s *sim) restart(cl *simClient) {
	cl.alive, cl.incarnation = true, cl.incarnation+1
	cl.view, cl.revoking, cl.released = partSet{}, map[TopicPartition]int64{}, partSet{}
	cl.joined, cl.epoch, cl.nextHbMs = false, 0, s.now
	cl.sub = s.randomSubscription()
	// Most processes choose their member id, as Kafka 4.0 clients do;
	// some leave it to the coordinator.
	cl.memberID = ""
	if s.rng.IntN(5) != 0 {
		cl.memberID = fmt.Sprintf("c%d.%d", cl.idx, cl.incarnation)
	}
}

func (s *sim) heartbeat(cl *simClient, subscriptionChanged bool) {
	req := HeartbeatRequest{GroupID: simGroup, MemberID: cl.memberID, InstanceID: cl.instanceID, MemberEpoch: cl.epoch}
	if !cl.joined {
		req.MemberEpoch = EpochJoin
	}
	if !cl.joined || subscriptionChanged || s.rng.IntN(10) == 0 {
		sub := cl.sub
		req.Subscription = &sub
	}
	if cl.joined {
		req.Owned = cl.owned().sorted()
	}
	cl.nextHbMs = s.now + simIntervalMs/2 + int64(s.rng.IntN(simIntervalMs))
	resp, ok := s.heartbeatRaw(cl, req)
	if !ok {
		return
	}
	switch resp.Error {
	case ErrNone:
	case ErrUnknownMemberID, ErrFencedMemberEpoch:
		s.stats[resp.Error.String()]++
		cl.dropAll()
		return
	case ErrUnreleasedInstanceID, ErrGroupMaxSizeReached:
		s.stats[resp.Error.String()]++
		cl.nextHbMs = s.now + simIntervalMs
		return
	default:
		s.failf("%s: heartbeat %+v: %v", cl.memberID, req, resp.Error)
		return
	}
	if !cl.joined && cl.instanceID != "" && len(resp.Assignment) > 0 {
		s.stats["static rejoins keeping partitions"]++
	}
	cl.memberID, cl.epoch, cl.joined, cl.lastOKSentMs = resp.MemberID, resp.MemberEpoch, true, s.now
	next := setOf(resp.Assignment)
	m := s.c.groups[simGroup].members[resp.MemberID]
	target := s.c.groups[simGroup].target[resp.MemberID]
	for tp := range cl.view.minus(next) {
		if target.has(tp) {
			s.failf("%s was asked to revoke %v, which its target %v still holds", cl.memberID, tp, fmtParts(target.sorted()))
		}
		at := s.now
		if s.rng.IntN(2) == 0 {
			at += int64(s.rng.IntN(simMaxRevokeMs))
		}
		cl.revoking[tp] = at
		s.stats["revocations"]++
	}
	for tp := range next {
		// A revocation called off: the process keeps consuming it.
		delete(cl.revoking, tp)
		delete(cl.released, tp)
	}
	cl.view = next
	if m == nil || m.epoch != resp.MemberEpoch {
		s.failf("%s answered epoch %d, coordinator holds %v", cl.memberID, resp.MemberEpoch, m)
	}
}

// heartbeatRaw sends one heartbeat; in the chaos phase a response is
// sometimes lost after the coordinator acted on the request.
func (s *sim) heartbeatRaw(cl *simClient, req HeartbeatRequest) (HeartbeatResponse, bool) {
	resp, recs := s.c.Heartbeat(req, s.now)
	s.record(recs)
	if s.chaos && s.rng.IntN(20) == 0 {
		s.stats["lost responses"]++
		return resp, false
	}
	return resp, true
}

// commit commits what the process holds and something it let go of; the
// coordinator must accept only partitions no other process holds, and
// refuse every partition the process released.
func (s *sim) commit(cl *simClient) {
	req := CommitRequest{GroupID: simGroup, MemberID: cl.memberID, MemberEpoch: cl.epoch}
	for _, tp := range cl.owned().sorted() {
		req.Offsets = append(req.Offsets, CommitOffset{TopicPartition: tp, Offset: s.now})
	}
	for _, tp := range cl.released.sorted() {
		req.Offsets = append(req.Offsets, CommitOffset{TopicPartition: tp, Offset: s.now})
	}
	resp, recs := s.c.CommitOffsets(req, s.now)
	s.record(recs)
	if resp.Error != ErrNone {
		return
	}
	held := cl.owned()
	for i, code := range resp.Partitions {
		tp := req.Offsets[i].TopicPartition
		if code != ErrNone {
			s.stats["commits refused"]++
			continue
		}
		s.stats["commits accepted"]++
		// A partition it let go of may still be pending revocation (its
		// acknowledgement is the next heartbeat) or have been given back in
		// a response that was lost: the coordinator cannot tell, and no one
		// else holds it. Anything else it let go of must be refused.
		if m := s.c.groups[simGroup].members[cl.memberID]; !held.has(tp) && !m.assigned.has(tp) && !m.pending.has(tp) {
			s.failf("%s's commit of %v, which it let go of, was accepted", cl.memberID, tp)
		}
		for _, o := range s.clients {
			if o != cl && o.alive && o.owned().has(tp) {
				s.failf("%s's commit of %v was accepted while %s holds it", cl.memberID, tp, o.memberID)
			}
		}
	}
}

func (s *sim) checkOwnership() {
	holder := map[TopicPartition]*simClient{}
	for _, cl := range s.clients {
		if !cl.alive {
			continue
		}
		for _, tp := range cl.owned().sorted() {
			if o := holder[tp]; o != nil {
				s.failf("%v held by %s (epoch %d) and %s (epoch %d)\n%s", tp, o.memberID, o.epoch, cl.memberID, cl.epoch, s.c.Describe())
				return
			}
			holder[tp] = cl
		}
	}
}

// checkConverged runs after the quiet phase: every partition some live
// member subscribes to is held by exactly one live member that subscribes
// to its topic, and every member holds exactly its target at the
// assignment epoch.
func (s *sim) checkConverged() {
	g := s.c.groups[simGroup]
	if g == nil {
		s.failf("no group after the quiet phase")
		return
	}
	holder := map[TopicPartition]*simClient{}
	for _, cl := range s.clients {
		if !cl.alive || !cl.joined {
			s.failf("process %d not in the group after the quiet phase", cl.idx)
			return
		}
		m := g.members[cl.memberID]
		if m == nil || m.epoch != g.assignmentEpoch || g.assignmentEpoch != g.epoch {
			s.failf("%s not at the group's epoch %d: %v\n%s", cl.memberID, g.epoch, m, s.c.Describe())
			return
		}
		if len(cl.revoking) > 0 || !cl.view.equal(g.target[m.id]) || !m.assigned.equal(cl.view) {
			s.failf("%s holds %s, target %s\n%s", cl.memberID, fmtParts(cl.view.sorted()), fmtParts(g.target[m.id].sorted()), s.c.Describe())
			return
		}
		for tp := range cl.view {
			if !m.subscribes(tp.Topic) || tp.Partition >= s.topics[tp.Topic] {
				s.failf("%s holds %v, which it does not subscribe to or does not exist", cl.memberID, tp)
			}
			holder[tp] = cl
		}
	}
	if len(g.members) != len(s.clients) {
		s.failf("%d members for %d processes\n%s", len(g.members), len(s.clients), s.c.Describe())
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range s.topics {
			if !yield(n) {
				return
			}
		}
	}) {
		subscribed := false
		for _, m := range g.members {
			subscribed = subscribed || m.subscribes(name)
		}
		for p := int32(0); subscribed && p < s.topics[name]; p++ {
			if holder[TopicPartition{name, p}] == nil {
				s.failf("%s-%d is subscribed but nobody holds it\n%s", name, p, s.c.Describe())
			}
		}
	}
}
