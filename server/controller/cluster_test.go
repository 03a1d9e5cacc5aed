package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/metadata"
)

const (
	// stepEvery paces the simulated clock; one step is one raft tick and
	// simTickMs of metadata time.
	stepEvery = 2 * time.Millisecond
	simTickMs = 100
	// proposalTimeout is how long a test client waits for a command.
	proposalTimeout = 2 * time.Second
)

// simCluster is a controller quorum on a simNet, each voter on its own
// MemFS, driven step by step by the test.
type simCluster struct {
	t     testing.TB
	ids   []uint64
	net   *simNet
	mem   map[uint64]*segment.MemFS
	hist  *history
	clock atomic.Int64
	// sessionMs is the brokers' session timeout (metadata default when 0).
	sessionMs int64
	drains    sync.WaitGroup

	mu     sync.Mutex
	nodes  map[uint64]*Node
	frozen map[uint64]*freezableFS
	ticks  map[uint64]chan struct{}
	stepC  chan struct{} // closed and replaced at every step
}

func newSimCluster(t testing.TB, voters int, seed uint64, sessionTimeoutMs int64) *simCluster {
	c := &simCluster{
		t: t, net: newSimNet(seed), mem: make(map[uint64]*segment.MemFS), hist: newHistory(),
		nodes: make(map[uint64]*Node), frozen: make(map[uint64]*freezableFS),
		ticks: make(map[uint64]chan struct{}), stepC: make(chan struct{}),
	}
	c.clock.Store(1_000_000)
	c.sessionMs = sessionTimeoutMs
	for i := 1; i <= voters; i++ {
		c.ids = append(c.ids, uint64(i))
		c.mem[uint64(i)] = segment.NewMemFS()
	}
	for _, id := range c.ids {
		c.start(id)
	}
	return c
}

func (c *simCluster) start(id uint64) {
	ffs := &freezableFS{fs: c.mem[id]}
	ticks := make(chan struct{}, 1)
	n, err := New(Config{
		ID: id, Voters: c.ids, Dir: "/voter", FS: ffs, Transport: c.net.endpoint(id),
		Ticks: ticks, NowMs: c.clock.Load, ElectionTicks: 10, HeartbeatTicks: 1,
		SnapshotEntries: 48, CompactKeepEntries: 8, SegmentBytes: 8 << 10, IndexBytes: 1 << 10,
		Metadata: metadata.Config{SessionTimeoutMs: c.sessionMs},
	})
	if err != nil {
		c.t.Fatalf("start voter %d: %v", id, err)
	}
	sub := n.Subscribe(1 << 16)
	c.drains.Add(1)
	go func() {
		defer c.drains.Done()
		for ch := range sub.C {
			c.hist.record(id, ch)
		}
		if err := sub.Err(); err != nil {
			c.hist.fail("voter %d subscription: %v", id, err)
		}
	}()
	if err := n.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[id], c.frozen[id], c.ticks[id] = n, ffs, ticks
	c.mu.Unlock()
}

// crash cuts the voter off the network, freezes its disk at this instant,
// throws away everything not synced (tearing unsynced writes when torn),
// and stops what is left of the process.
func (c *simCluster) crash(id uint64, torn bool, seed uint64) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	delete(c.ticks, id)
	ffs := c.frozen[id]
	c.mu.Unlock()
	if n == nil {
		return
	}
	c.net.down(id)
	ffs.frozen.Store(true)
	if torn {
		c.mem[id].CrashTorn(seed)
	} else {
		c.mem[id].Crash()
	}
	n.Stop() // errors expected: its disk is gone
}

func (c *simCluster) live(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// leader returns a live voter that believes it leads.
func (c *simCluster) leader() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range c.ids {
		if n := c.nodes[id]; n != nil && n.Leader() == id {
			return n
		}
	}
	return nil
}

func (c *simCluster) step() {
	c.net.step()
	c.clock.Add(simTickMs)
	c.mu.Lock()
	for _, ch := range c.ticks {
		select {
		case ch <- struct{}{}:
		default: // the voter is busy; the tick is lost, as time passes
		}
	}
	close(c.stepC)
	c.stepC = make(chan struct{})
	c.mu.Unlock()
}

// nextStep returns a channel closed at the next step.
func (c *simCluster) nextStep() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stepC
}

func (c *simCluster) stopAll() {
	for _, id := range c.ids {
		c.mu.Lock()
		n := c.nodes[id]
		delete(c.nodes, id)
		c.mu.Unlock()
		if n != nil {
			if err := n.Stop(); err != nil {
				c.t.Errorf("stop voter %d: %v", id, err)
			}
			if err := n.Err(); err != nil {
				c.t.Errorf("voter %d failed: %v", id, err)
			}
		}
	}
	c.drains.Wait()
}

// runSteps steps the clock until cond holds (checked between steps).
func (c *simCluster) runUntil(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tk := time.NewTicker(stepEvery)
	defer tk.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		<-tk.C
		c.step()
	}
}

// await runs f on another goroutine, stepping the clock until it returns.
func (c *simCluster) await(what string, f func() error) {
	c.t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	var err error
	c.runUntil(what, func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

// converge heals everything, restarts every crashed voter, commits one
// more command through the leader, and waits until every voter has
// applied the same index with the same state hash. It returns that hash
// and that index.
func (c *simCluster) converge(seed uint64) (hash [32]byte, applied uint64) {
	c.t.Helper()
	c.net.heal()
	c.net.setFaults(0, 0, 1)
	for _, id := range c.ids {
		if c.live(id) == nil {
			c.start(id)
		}
	}
	var final uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for final == 0 {
			l := c.leader()
			if l == nil {
				<-c.nextStep()
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), proposalTimeout)
			res, err := l.Propose(ctx, RegisterBroker(metadata.RegisterBrokerRequest{
				ID: 77, Incarnation: incarnation(77, int(seed%200)), Listeners: listener(7777),
			}))
			cancel()
			if err == nil {
				final = res.Index
			}
		}
	}()
	c.runUntil("a final commit", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	c.runUntil("all voters to converge", func() bool {
		var first *Status
		for _, id := range c.ids {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			st, err := c.live(id).Status(ctx)
			cancel()
			if err != nil || st.Applied < final {
				return false
			}
			if first == nil {
				first = &st
			} else if st.Applied != first.Applied || st.StateHash != first.StateHash {
				return false
			}
		}
		hash, applied = first.StateHash, first.Applied
		return true
	})
	return hash, applied
}

func schedules() int {
	if s := os.Getenv("STRATA_CONTROLLER_SCHEDULES"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 10
}

func TestClusterRandomSchedules(t *testing.T) {
	for _, voters := range []int{3, 5} {
		for seed := uint64(1); seed <= uint64(schedules()); seed++ {
			t.Run(fmt.Sprintf("voters=%d/seed=%d", voters, seed), func(t *testing.T) {
				runSchedule(t, voters, seed)
			})
		}
	}
}

// faultSteps is how long each schedule injects faults.
const faultSteps = 300

func runSchedule(t *testing.T, voters int, seed uint64) {
	c := newSimCluster(t, voters, seed, 0)
	defer c.stopAll()
	rng := rand.New(rand.NewPCG(seed, uint64(voters)))
	c.net.setFaults(5, 5, 3)
	stop := make(chan struct{})
	stopCtx, cancelClients := context.WithCancel(context.Background())
	var clients sync.WaitGroup
	var committed atomic.Int64
	for cl := range 2 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			runClient(stopCtx, c, rand.New(rand.NewPCG(seed, uint64(cl+10))), stop, &committed)
		}()
	}
	restartAt := map[uint64]int{}
	healAt := map[uint64]int{}
	down, crashes, isolations := 0, 0, 0
	tk := time.NewTicker(stepEvery)
	for step := 0; step < faultSteps; step++ {
		<-tk.C
		for id, at := range restartAt {
			if at == step {
				c.start(id)
				delete(restartAt, id)
				down--
			}
		}
		for id, at := range healAt {
			if at == step {
				c.net.isolate(id, c.ids, false)
				delete(healAt, id)
				down--
			}
		}
		id := c.ids[rng.IntN(voters)]
		_, crashed := restartAt[id]
		_, isolated := healAt[id]
		busy := crashed || isolated || down >= (voters-1)/2+1
		switch r := rng.IntN(1000); {
		case r < 12 && !busy:
			c.crash(id, rng.IntN(2) == 0, rng.Uint64())
			restartAt[id] = step + 10 + rng.IntN(60)
			down++
			crashes++
		case r < 24 && !busy:
			c.net.isolate(id, c.ids, true)
			healAt[id] = step + 10 + rng.IntN(60)
			down++
			isolations++
		}
		c.step()
	}
	tk.Stop()
	close(stop)
	cancelClients()
	clients.Wait()
	hash, applied := c.converge(seed)
	c.stopAll()
	c.hist.check(t, hash, applied)
	if committed.Load() == 0 {
		t.Fatal("no client command committed")
	}
	t.Logf("%d client commands committed, %d entries with records, %d crashes, %d isolations, %d snapshots installed",
		committed.Load(), len(c.hist.global), crashes, isolations, c.hist.installs)
}

// runClient proposes random commands to whichever voter leads, building
// them from the leader's (possibly stale) Image.
func runClient(stopCtx context.Context, c *simCluster, rng *rand.Rand, stop <-chan struct{}, committed *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		l := c.leader()
		if l == nil {
			select {
			case <-c.nextStep():
			case <-stop:
				return
			}
			continue
		}
		cmd := randomCommand(rng, l.Image())
		ctx, cancel := context.WithTimeout(stopCtx, proposalTimeout)
		_, err := l.Propose(ctx, cmd)
		cancel()
		if err == nil {
			committed.Add(1)
		}
		var rej *metadata.Rejection
		if err != nil && !errors.As(err, &rej) {
			// Not leader, outcome unknown, stopped: let time pass.
			select {
			case <-c.nextStep():
			case <-stop:
				return
			}
		}
	}
}

func randomCommand(rng *rand.Rand, im *metadata.Image) Command {
	brokers := im.Brokers()
	topics := im.Topics()
	switch r := rng.IntN(100); {
	case r < 12 || len(brokers) < 3:
		id := int32(1 + rng.IntN(5))
		return RegisterBroker(metadata.RegisterBrokerRequest{ID: id, Incarnation: incarnation(id, rng.IntN(3)), Listeners: listener(9000 + uint16(id))})
	case r < 40:
		b := brokers[rng.IntN(len(brokers))]
		return BrokerHeartbeat(metadata.HeartbeatRequest{ID: b.ID, Epoch: b.Epoch, AppliedOffset: im.Offset()})
	case r < 55:
		i := rng.IntN(40)
		cfg := map[string]string{
			metadata.ConfigPartitions:        strconv.Itoa(1 + rng.IntN(3)),
			metadata.ConfigReplicationFactor: strconv.Itoa(1 + rng.IntN(3)),
		}
		if rng.IntN(4) == 0 {
			cfg[metadata.ConfigUncleanLeaderElection] = "true"
		}
		return CreateTopic(metadata.CreateTopicRequest{Name: fmt.Sprintf("t%d", i), ID: topicID(rng.IntN(1 << 20)), Configs: cfg, StartIndex: rng.Uint32()})
	case r < 62 && len(topics) > 0:
		return DeleteTopic(topics[rng.IntN(len(topics))].Name)
	case r < 80 && len(topics) > 0:
		t := topics[rng.IntN(len(topics))]
		p := t.Partitions[rng.IntN(len(t.Partitions))]
		b, _ := im.Broker(p.Leader)
		isr := []int32{p.Leader}
		for _, r := range p.Replicas {
			if r != p.Leader && rng.IntN(2) == 0 {
				isr = append(isr, r)
			}
		}
		return AlterPartition(metadata.AlterPartitionRequest{
			BrokerID: p.Leader, BrokerEpoch: b.Epoch, TopicID: t.ID, Partition: p.Partition,
			LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: isr,
		})
	case r < 88 && len(topics) > 0:
		t := topics[rng.IntN(len(topics))]
		return ElectLeader(t.Name, int32(rng.IntN(len(t.Partitions))))
	case r < 93:
		b := brokers[rng.IntN(len(brokers))]
		return FenceBroker(b.ID)
	case r < 97:
		b := brokers[rng.IntN(len(brokers))]
		return UnfenceBroker(b.ID)
	default:
		b := brokers[rng.IntN(len(brokers))]
		return ControlledShutdown(b.ID, b.Epoch)
	}
}

// history collects what every voter applied, keyed by Raft index, and
// checks on arrival that no two voters applied different records at one
// index.
type history struct {
	mu       sync.Mutex
	global   map[uint64][]byte
	errs     []string
	installs int // snapshots installed from a leader
}

func newHistory() *history { return &history{global: make(map[uint64][]byte)} }

func (h *history) fail(format string, args ...any) {
	h.mu.Lock()
	h.errs = append(h.errs, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *history) record(voter uint64, ch Change) {
	if ch.Snapshot {
		h.mu.Lock()
		h.installs++
		h.mu.Unlock()
		return
	}
	b := metadata.AppendBatch(nil, ch.Records)
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.global[ch.Index]; ok {
		if !bytes.Equal(prev, b) {
			h.errs = append(h.errs, fmt.Sprintf("voter %d applied different records at index %d", voter, ch.Index))
		}
		return
	}
	h.global[ch.Index] = b
}

// check replays every entry applied up to index applied, in index order,
// into a fresh state, checks leader epochs and elections on the way, and
// compares the result with the hash every voter had at that index.
func (h *history) check(t *testing.T, hash [32]byte, applied uint64) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.errs {
		t.Error(e)
	}
	// The voters may apply more after they converged (an entry in flight
	// then commits without a tick), and the history holds that too: the
	// hash is of the state at index applied, so the replay stops there.
	idx := make([]uint64, 0, len(h.global))
	for i := range h.global {
		if i <= applied {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	st := metadata.NewState()
	ec := newElectionChecker()
	for _, i := range idx {
		recs, err := metadata.DecodeBatch(h.global[i])
		if err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
		for _, r := range recs {
			if err := ec.check(r); err != nil {
				t.Errorf("index %d: %v", i, err)
			}
		}
		if err := st.ApplyAll(recs); err != nil {
			t.Fatalf("replaying index %d: %v", i, err)
		}
	}
	if st.Hash() != hash {
		t.Fatal("replaying the applied history does not give the state the voters converged on")
	}
}

// electionChecker follows partitions through their records and checks
// that no leader epoch ever has two leaders and that a new leader comes
// from the ISR unless its topic allows unclean election.
type electionChecker struct {
	unclean map[metadata.TopicID]bool
	parts   map[partKey]partView
	epochs  map[epochKey]int32
}

type partKey struct {
	topic metadata.TopicID
	part  int32
}

type epochKey struct {
	partKey
	epoch int32
}

type partView struct {
	leader int32
	isr    []int32
	elr    []int32
}

func newElectionChecker() *electionChecker {
	return &electionChecker{unclean: map[metadata.TopicID]bool{}, parts: map[partKey]partView{}, epochs: map[epochKey]int32{}}
}

func (ec *electionChecker) leaderAt(k partKey, epoch, leader int32) error {
	ek := epochKey{k, epoch}
	if prev, ok := ec.epochs[ek]; ok && prev != leader {
		return fmt.Errorf("partition %v/%d has leaders %d and %d in leader epoch %d", k.topic, k.part, prev, leader, epoch)
	}
	ec.epochs[ek] = leader
	return nil
}

func (ec *electionChecker) check(rec metadata.Record) error {
	switch r := rec.(type) {
	case metadata.TopicRecord:
		ec.unclean[r.ID] = r.Configs[metadata.ConfigUncleanLeaderElection] == "true"
	case metadata.PartitionRecord:
		k := partKey{r.TopicID, r.Partition}
		if r.Leader != metadata.NoLeader && !slices.Contains(r.ISR, r.Leader) {
			return fmt.Errorf("new partition %v/%d led by %d outside its ISR %v", r.TopicID, r.Partition, r.Leader, r.ISR)
		}
		ec.parts[k] = partView{r.Leader, r.ISR, r.ELR}
		return ec.leaderAt(k, r.LeaderEpoch, r.Leader)
	case metadata.PartitionChangeRecord:
		k := partKey{r.TopicID, r.Partition}
		prev := ec.parts[k]
		// A clean election picks from the ISR or, with no live ISR member,
		// the ELR (KIP-966), and a leader from the ELR is the ISR alone.
		if r.Leader != prev.leader && r.Leader != metadata.NoLeader && slices.Contains(prev.elr, r.Leader) &&
			!slices.Contains(prev.isr, r.Leader) && !slices.Equal(r.ISR, []int32{r.Leader}) {
			return fmt.Errorf("leader %d of %v/%d elected from the ELR got ISR %v, want itself alone", r.Leader, r.TopicID, r.Partition, r.ISR)
		}
		if r.Leader != prev.leader && r.Leader != metadata.NoLeader && !slices.Contains(prev.isr, r.Leader) &&
			!slices.Contains(prev.elr, r.Leader) {
			if !ec.unclean[r.TopicID] {
				return fmt.Errorf("partition %v/%d elected %d outside its ISR %v and ELR %v", r.TopicID, r.Partition, r.Leader, prev.isr, prev.elr)
			}
			if !slices.Equal(r.ISR, []int32{r.Leader}) {
				return fmt.Errorf("unclean leader %d of %v/%d got ISR %v, want itself alone", r.Leader, r.TopicID, r.Partition, r.ISR)
			}
		}
		ec.parts[k] = partView{r.Leader, r.ISR, r.ELR}
		return ec.leaderAt(k, r.LeaderEpoch, r.Leader)
	case metadata.RemoveTopicRecord:
		delete(ec.unclean, r.ID)
	}
	return nil
}
