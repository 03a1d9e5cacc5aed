package replica

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The seeded simulation. Each seed builds a cluster of 2 to 4 replicas
// and runs simSteps random steps: messages delivered in random order,
// lost and duplicated; images delivered late; produce requests with
// acks=all and acks=1; syncs; time; crashes that drop each log's unsynced
// suffix; the controller fencing crashed replicas; restarts. After every
// step it checks the invariants (checkInvariants). Then it heals the
// cluster (everyone up, nothing lost) and checks that the replicas
// converge. A failing seed prints itself and the command line that
// replays it, with a trace.
const (
	simSeedsDefault = 300
	simSteps        = 400
	simHealRounds   = 3000
	simTickMs       = 100
	simTraceLines   = 60
)

func TestSimulation(t *testing.T) {
	seeds := []uint64{}
	if s := os.Getenv("STRATA_REPLICA_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STRATA_REPLICA_SEED=%q: %v", s, err)
		}
		seeds = append(seeds, seed)
	} else {
		n := simSeedsDefault
		if s := os.Getenv("STRATA_REPLICA_SEEDS"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				t.Fatalf("STRATA_REPLICA_SEEDS=%q: want a positive count", s)
			}
			n = v
		}
		for i := range n {
			seeds = append(seeds, uint64(i+1))
		}
	}
	var total simStats
	for _, seed := range seeds {
		st, err := runSeed(seed, len(seeds) == 1)
		if err != nil {
			t.Fatalf("seed %d: %v\nreplay: STRATA_REPLICA_SEED=%d go test -count=1 -v -run 'TestSimulation$' ./replica/", seed, err, seed)
		}
		total.add(st)
	}
	t.Logf("%d seeds: %d acks=all batches acknowledged, %d produce answers in all (%d NOT_ENOUGH_REPLICAS, %d NOT_ENOUGH_REPLICAS_AFTER_APPEND, %d NOT_LEADER), %d elections (%d from the ELR), %d ISR changes, %d crashes, %d truncations, %d trims, %d resets",
		len(seeds), total.acked, sum(total.answers[:]), total.answers[ErrNotEnoughReplicas], total.answers[ErrNotEnoughReplicasAfterAppend],
		total.answers[ErrNotLeaderOrFollower], total.elections, total.elrElections, total.isrChanges, total.crashes, total.truncations, total.trims, total.resets)
	if len(seeds) >= simSeedsDefault && (total.acked == 0 || total.truncations == 0 || total.elrElections == 0 || total.resets == 0 ||
		total.answers[ErrNotEnoughReplicasAfterAppend] == 0) {
		t.Fatalf("the simulation no longer exercises acks, truncation, ELR elections and shrinking ISRs: %+v", total)
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// simFailure carries a failed check out of the run.
type simFailure struct{ err error }

// TestSimulationReplaysExactly runs a few seeds twice and checks that
// every event of the two runs is the same: what a failing seed prints is
// what its replay does.
func TestSimulationReplaysExactly(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		var a, b []string
		if _, err := runSeedRecorded(seed, false, &a); err != nil {
			t.Fatal(err)
		}
		if _, err := runSeedRecorded(seed, false, &b); err != nil {
			t.Fatal(err)
		}
		if len(a) < 10 {
			t.Fatalf("seed %d: only %d events recorded", seed, len(a))
		}
		if !slices.Equal(a, b) {
			t.Fatalf("seed %d: two runs differ (%d and %d events)", seed, len(a), len(b))
		}
	}
}

func runSeed(seed uint64, verbose bool) (simStats, error) { return runSeedRecorded(seed, verbose, nil) }

func runSeedRecorded(seed uint64, verbose bool, record *[]string) (stats simStats, err error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var trace []string
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if verbose {
			fmt.Println(line)
		}
		if record != nil {
			*record = append(*record, line)
		}
		trace = append(trace, line)
		if len(trace) > 4*simTraceLines {
			trace = slices.Clone(trace[len(trace)-simTraceLines:])
		}
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(simFailure)
			if !ok {
				f = simFailure{fmt.Errorf("panic: %v", r)}
			}
			if len(trace) > simTraceLines {
				trace = trace[len(trace)-simTraceLines:]
			}
			err = fmt.Errorf("%w\nlast events:\n  %s", f.err, strings.Join(trace, "\n  "))
		}
	}()
	var c *cluster
	defer func() {
		if c != nil {
			stats = c.stats
		}
	}()
	n := 2 + rng.IntN(3)
	minInsync := 1 + rng.IntN(n)
	cfg := Config{LagTimeMaxMs: 1000 + rng.Int64N(3000), FetchesInFlightMax: 1 + rng.IntN(4),
		FetchWindowOffsets: 1 + rng.Int64N(8), FetchMaxWaitMs: 500, FetchTimeoutMs: 2000,
		FetchBackoffMs: 200, AlterPartitionTimeoutMs: 2000}
	// One seed in four runs a flush policy other than sync: acks and the
	// high watermark count what is written, not what is durable. A crash
	// may then lose acknowledged records (that is the policy's bargain,
	// and what KIP-966's unclean-shutdown rule is for), so those seeds
	// crash nothing and check ISR members' log ends instead of their
	// durable ends.
	cfg.AckUnsynced = rng.IntN(4) == 0
	c = newCluster(n, minInsync, cfg)
	c.trace = logf
	if rng.IntN(2) == 0 {
		c.maxBatches = 1 + rng.IntN(3)
	}
	logf("seed %d: %d replicas, min.insync=%d, %+v, answer cut at %d batches", seed, n, minInsync, cfg, c.maxBatches)
	lossPct, dupPct := rng.IntN(20), rng.IntN(10)
	// crash, fence the crashed, fence a running one, unfence, restart
	c.rareWeights = [5]int{1 + rng.IntN(30), 1 + rng.IntN(30), rng.IntN(30), 1 + rng.IntN(30), 1 + rng.IntN(30)}
	for step := range simSteps {
		c.randomStep(rng, lossPct, dupPct)
		c.checkInvariants(fmt.Sprintf("step %d", step))
	}
	c.heal(rng)
	c.stats.acked = len(c.acked)
	return c.stats, nil
}

func (c *cluster) fail(format string, args ...any) {
	panic(simFailure{fmt.Errorf(format, args...)})
}

func (c *cluster) randomStep(rng *rand.Rand, lossPct, dupPct int) {
	r := c.replicas[rng.IntN(len(c.replicas))]
	// k picks the step, in thousandths.
	switch k := rng.IntN(1000); {
	case k < 450 && len(c.net) > 0:
		i := rng.IntN(len(c.net))
		dup := dupPct
		if c.net[i].to == controllerID {
			// Retries and held-back copies of an ISR change are where
			// the compare-and-set earns its keep: duplicate them more.
			dup = 10 + 3*dupPct
		}
		switch roll := rng.IntN(100); {
		case roll < lossPct:
			c.trace("lose %s", c.net[i])
			c.net = slices.Delete(c.net, i, i+1)
		case roll < lossPct+dup:
			c.deliver(i, true)
		default:
			c.deliver(i, false)
		}
	case k < 550:
		c.deliverImage(r)
	case k < 670:
		to := c.ctrl.leader
		if to == NoLeader || rng.IntN(5) == 0 {
			to = r.id
		}
		acks := AcksAll
		if rng.IntN(3) == 0 {
			acks = AcksOne
		}
		var timeoutMs int64
		if rng.IntN(4) == 0 {
			timeoutMs = simTickMs * (1 + rng.Int64N(20))
		}
		c.produceWithTimeout(to, acks, 1+rng.Int64N(3), timeoutMs)
	case k < 800:
		c.sync(r)
	case k < 904:
		c.tick(simTickMs)
	case k < 910:
		// A leader trims its log (DeleteRecords, retention) up to its
		// high watermark: a follower behind it then starts again.
		if r.up && r.p.Status().HighWatermark > r.start {
			to := r.start + 1 + rng.Int64N(r.p.Status().HighWatermark-r.start)
			if to < int64(len(r.log)) {
				// The log start the machine is told is a batch's base
				// (the broker tells it the frame holding the start).
				to = r.log[to].Base
			}
			c.trim(r, to)
		}
	default:
		// The rare steps, with weights drawn per seed: some seeds crash a
		// lot, others fence and return running replicas a lot.
		w := rng.IntN(sum(c.rareWeights[:]))
		switch {
		case w < c.rareWeights[0]:
			if !c.cfg.AckUnsynced {
				c.crash(r)
			}
		case w < sum(c.rareWeights[:2]):
			for _, x := range c.replicas {
				if !x.up {
					c.fence(x.id)
				}
			}
		case w < sum(c.rareWeights[:3]):
			// A running replica's session lapses: if it led, it goes on
			// as a zombie leader until its image arrives.
			c.fence(r.id)
		case w < sum(c.rareWeights[:4]):
			c.unfence(r.id)
		default:
			c.restart(r)
		}
	}
}

// checkInvariants checks, after every step:
//   - each replica's high watermark never decreases while it runs, and
//     stays within its log; its log end is the driver's;
//   - replicas agree byte for byte below their high watermarks: each
//     running replica's log below its high watermark is a prefix of one
//     committed log (the longest such prefix seen);
//   - every ISR and ELR member at the controller holds the committed log
//     durably: the high watermark never passed an ISR member's durable
//     end, and a leader elected from either has every committed record;
//   - every acknowledged acks=all batch is in the committed log, and in
//     the log of every replica when it becomes leader of a later epoch
//     than the one it was acknowledged in.
func (c *cluster) checkInvariants(where string) {
	for _, r := range c.replicas {
		if !r.up {
			continue
		}
		st := r.p.Status()
		switch {
		case st.HighWatermark < r.lastHW:
			c.fail("%s: replica %d high watermark went from %d to %d", where, r.id, r.lastHW, st.HighWatermark)
		case st.LogEnd != int64(len(r.log)):
			c.fail("%s: replica %d machine log end %d, driver's %d", where, r.id, st.LogEnd, len(r.log))
		case st.DurableEnd > r.durable:
			c.fail("%s: replica %d machine durable end %d past the driver's %d", where, r.id, st.DurableEnd, r.durable)
		}
		r.lastHW = st.HighWatermark
		c.commit(where, r, st.HighWatermark)
	}
	committed := c.committed()
	for _, id := range append(slices.Clone(c.ctrl.isr), c.ctrl.elr...) {
		r := c.replica(id)
		stable := r.durable
		if c.cfg.AckUnsynced {
			stable = int64(len(r.log))
		}
		if stable < int64(len(committed)) || !slices.Equal(r.log[r.start:len(committed)], committed[r.start:]) {
			c.fail("%s: controller ISR %v ELR %v: replica %d (durable %d) lacks the committed log below %d\n  committed %s\n  replica   %s",
				where, c.ctrl.isr, c.ctrl.elr, id, r.durable, len(committed), formatLog(committed), formatLog(r.log))
		}
	}
	for _, a := range c.acked {
		id := int64(a.ID)
		if a.Base+(-c.sizes[id]) > int64(len(committed)) || committed[a.Base].Batch != id {
			c.fail("%s: acknowledged acks=all batch #%d at %d is not committed: %s", where, id, a.Base, formatLog(committed))
		}
	}
	for _, r := range c.replicas {
		if !r.up {
			continue
		}
		st := r.p.Status()
		role := st.Role
		if role == RoleLeader && r.role != RoleLeader {
			for _, a := range c.acked {
				if a.epoch >= st.LeaderEpoch {
					// Acknowledged by a leader of this epoch or a later
					// one: a replica that learns late that it led an
					// earlier epoch (a zombie) cannot have it.
					continue
				}
				if a.Base < r.start {
					continue // trimmed: legitimately gone
				}
				if a.Base >= int64(len(r.log)) || r.log[a.Base].Batch != int64(a.ID) {
					c.fail("%s: new leader %d lacks acknowledged batch #%d at %d: %s", where, r.id, a.ID, a.Base, formatLog(r.log))
				}
			}
		}
		r.role = role
	}
}

// committedLog is the longest log prefix any replica's high watermark has
// covered; commit extends it and checks a replica against it.
func (c *cluster) commit(where string, r *simReplica, hw int64) {
	mine := r.log[:hw]
	n := min(len(mine), len(c.committedLog))
	// Below its log start a replica holds nothing to compare; every log
	// start is at or below a high watermark, so the committed log
	// reaches it.
	lo := min(r.start, int64(n))
	if r.start > int64(len(c.committedLog)) {
		c.fail("%s: replica %d log start %d past the committed log's end %d", where, r.id, r.start, len(c.committedLog))
	}
	if !slices.Equal(mine[lo:n], c.committedLog[lo:n]) {
		c.fail("%s: replica %d disagrees below its high watermark %d\n  committed %s\n  replica   %s",
			where, r.id, hw, formatLog(c.committedLog), formatLog(r.log))
	}
	if len(mine) > len(c.committedLog) {
		c.committedLog = append(c.committedLog, mine[len(c.committedLog):]...)
	}
}

func (c *cluster) committed() []simRec { return c.committedLog }

// heal restarts every replica and returns every one to service, stops losing messages and runs until the
// replicas converge: one leader, every log equal to the leader's, every
// high watermark at the log end and every replica in the ISR. A run that
// does not converge is a liveness bug.
func (c *cluster) heal(rng *rand.Rand) {
	c.trace("heal")
	for _, r := range c.replicas {
		c.restart(r)
		c.unfence(r.id)
	}
	c.produce(max(c.ctrl.leader, 1), AcksAll, 1)
	for round := range simHealRounds {
		for _, r := range c.replicas {
			for len(r.images) > 0 {
				c.deliverImage(r)
			}
		}
		for len(c.net) > 0 {
			c.deliver(rng.IntN(len(c.net)), false)
		}
		for _, r := range c.replicas {
			c.sync(r)
		}
		c.tick(simTickMs)
		c.checkInvariants(fmt.Sprintf("heal round %d", round))
		if c.converged() {
			return
		}
	}
	var b strings.Builder
	for _, r := range c.replicas {
		st := r.p.Status()
		fmt.Fprintf(&b, "\n  replica %d %s epoch=%d isr=%v hw=%d durable=%d %s", r.id, st.Role, st.LeaderEpoch, st.ISR, st.HighWatermark, st.DurableEnd, formatLog(r.log))
	}
	c.fail("no convergence after healing: controller leader=%d isr=%v%s", c.ctrl.leader, c.ctrl.isr, b.String())
}

func (c *cluster) converged() bool {
	if c.ctrl.leader == NoLeader || len(c.ctrl.isr) != len(c.replicas) {
		return false
	}
	lead := c.replica(c.ctrl.leader)
	for _, r := range c.replicas {
		st := r.p.Status()
		from := max(r.start, lead.start)
		if len(r.log) != len(lead.log) || !slices.Equal(r.log[from:], lead.log[from:]) || st.HighWatermark != int64(len(r.log)) || st.LeaderEpoch != c.ctrl.leaderEpoch {
			return false
		}
	}
	return true
}
