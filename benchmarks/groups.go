package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-db/strata/client"
)

// The consumer-group section (--groups): three brokers (the replication
// section's cluster), `__consumer_offsets` of one partition, so that one
// coordinator serves everything, with three replicas and
// min.insync.replicas 2 (every coordinator write is acks=all to them).
//
//	(a) scale-out and scale-in: a steady producer writes groupsPartitions
//	    partitions; groupsBase consumers share them, groupsBase more join
//	    (every member now wants half as many), then those leave. For every
//	    member that stays, the longest gap in its processing of each
//	    partition it keeps, against the longest gap of the same partition
//	    in a steady window of the same length just before; and for every
//	    partition that moves, the pause between its last record processed
//	    by the old owner and its first by the new one.
//	(b) the offset-commit rate of that one coordinator: N committers, each
//	    on its own connection, each sending a synchronous OffsetCommit (one
//	    partition) as soon as the last was answered.
const (
	groupsTopic       = "groups-bench"
	groupsPartitions  = 12
	groupsBase        = 3
	groupsRecordBytes = 100
	// groupsProduceEveryMs is the producer's pace: one record to each
	// partition this often (steady, so a gap in processing is a pause
	// of the consumer, not of the producer).
	groupsProduceEveryMs = 10
	// groupsSettleTimeout bounds the wait for a group to settle.
	groupsSettleTimeout = 3 * time.Minute
	// groupsSteadyWindow is how long the group runs at rest before a
	// change, whose processing gaps are the baseline.
	groupsSteadyWindow       = 10 * time.Second
	groupsQuickSteadyWindow  = 2 * time.Second
	groupsCommitSeconds      = 5
	groupsQuickCommitSeconds = 1
	defaultGroupsRounds      = 3
	quickGroupsRounds        = 1
)

// groupsCommitters are the committer counts of (b).
var groupsCommitters = []int{1, 8, 32}

// groupsResult is the section's figures.
type groupsResult struct {
	// LoadBefore and LoadAfter are `uptime` at the start and the end:
	// the machine is shared, and the figures hold for its load.
	LoadBefore string           `json:"load_before"`
	LoadAfter  string           `json:"load_after"`
	Setup      string           `json:"setup"`
	Rounds     []groupsRound    `json:"rounds"`
	Scale      groupsScaleStats `json:"scale"`
	Commits    []commitRun      `json:"commits"`
}

// groupsRound is one scale-out and scale-in.
type groupsRound struct {
	Out groupsChange `json:"scale_out"`
	In  groupsChange `json:"scale_in"`
}

// groupsChange is one change of the group's membership.
type groupsChange struct {
	From, To int `json:"-"`
	// SettleMs is from the change until every member held its share.
	SettleMs float64 `json:"settle_ms"`
	// Kept are the staying members' partitions that did not move: the
	// longest processing gap during the change, and in the steady window
	// before it; PauseMs is the first minus the second, at least 0.
	Kept []keptGap `json:"kept"`
	// MovedPauseMs is each moved partition's pause: last record processed
	// by its old owner to the first by its new one.
	MovedPauseMs []float64 `json:"moved_pause_ms"`
}

type keptGap struct {
	Member      string  `json:"member"`
	Partition   int32   `json:"partition"`
	GapMs       float64 `json:"gap_ms"`
	SteadyGapMs float64 `json:"steady_gap_ms"`
	PauseMs     float64 `json:"pause_ms"`
}

// groupsScaleStats are the medians over every round.
type groupsScaleStats struct {
	KeptPauseMedianMs  float64 `json:"kept_pause_median_ms"`
	KeptPauseMaxMs     float64 `json:"kept_pause_max_ms"`
	KeptGapMedianMs    float64 `json:"kept_gap_median_ms"`
	SteadyGapMedianMs  float64 `json:"steady_gap_median_ms"`
	MovedPauseMedianMs float64 `json:"moved_pause_median_ms"`
	MovedPauseMaxMs    float64 `json:"moved_pause_max_ms"`
	OutSettleMedianMs  float64 `json:"scale_out_settle_median_ms"`
	InSettleMedianMs   float64 `json:"scale_in_settle_median_ms"`
}

// runGroups runs the section on a cluster of its own.
func runGroups(ctx context.Context, cfg *config, strata string) (*groupsResult, error) {
	res := &groupsResult{LoadBefore: uptime(ctx)}
	dir := filepath.Join(cfg.work, "groups")
	c, err := startCluster(ctx, strata, dir, defaultTimeouts, clusterLogLevel, "--offsets-topic-partitions", "1")
	if err != nil {
		return nil, err
	}
	defer c.close()
	res.Setup = fmt.Sprintf("%d brokers of %d shard on this machine; __consumer_offsets: 1 partition, %d replicas, min.insync.replicas 2; "+
		"topic %s: %d partitions, 1 replica; producer: one %d B record to each partition every %d ms (acks=1); "+
		"consumers and committers in the benchmark's process, each with its own client; the coordinator's default heartbeat interval (5 s)",
		clusterBrokers, clusterShards, clusterBrokers, groupsTopic, groupsPartitions, groupsRecordBytes, groupsProduceEveryMs)
	if err := c.createTopic(ctx, client.TopicSpec{Name: groupsTopic, Partitions: groupsPartitions, ReplicationFactor: 1}); err != nil {
		return nil, err
	}
	rounds := defaultGroupsRounds
	if cfg.quick {
		rounds = quickGroupsRounds
	}
	steady := groupsSteadyWindow
	if cfg.quick {
		steady = groupsQuickSteadyWindow
	}
	if res.Rounds, err = runScaleRounds(ctx, c, rounds, steady); err != nil {
		return nil, err
	}
	res.Scale = summarizeScale(res.Rounds)
	seconds := groupsCommitSeconds
	if cfg.quick {
		seconds = groupsQuickCommitSeconds
	}
	for _, n := range groupsCommitters {
		run, err := runCommitRate(ctx, c, n, rounds, time.Duration(seconds)*time.Second)
		if err != nil {
			return nil, err
		}
		logf("groups: %d committers: median %.0f commits/s, p50 %.2f ms, p99 %.2f ms", n, run.MedianPerSec, run.P50Ms, run.P99Ms)
		res.Commits = append(res.Commits, *run)
	}
	res.LoadAfter = uptime(ctx)
	return res, nil
}

// uptime is the machine's `uptime` line, its load averages.
func uptime(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "uptime").Output()
	if err != nil {
		return unknown
	}
	return strings.TrimSpace(string(out))
}

// steadyProducer writes one record to each partition every
// groupsProduceEveryMs until stopped.
func steadyProducer(ctx context.Context, cl *client.Client) (stop func() error, err error) {
	pr, err := client.NewProducer(cl, client.ProducerConfig{ManualPartitions: true, Acks: client.AcksLeader, LingerMs: 1})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(groupsProduceEveryMs * time.Millisecond)
		defer tick.Stop()
		value := make([]byte, groupsRecordBytes)
		for {
			select {
			case <-pctx.Done():
				cctx, ccancel := context.WithTimeout(context.Background(), clusterWaitTimeout)
				defer ccancel()
				done <- pr.Close(cctx)
				return
			case <-tick.C:
			}
			for p := range int32(groupsPartitions) {
				if err := pr.Send(pctx, &client.Record{Topic: groupsTopic, Partition: p, Value: value}, nil); err != nil && pctx.Err() == nil {
					done <- err
					return
				}
			}
		}
	}()
	return func() error { cancel(); return <-done }, nil
}

func summarizeScale(rounds []groupsRound) groupsScaleStats {
	var pauses, gaps, steady, moved, out, in []float64
	for _, r := range rounds {
		for _, ch := range []groupsChange{r.Out, r.In} {
			for _, k := range ch.Kept {
				pauses = append(pauses, k.PauseMs)
				gaps = append(gaps, k.GapMs)
				steady = append(steady, k.SteadyGapMs)
			}
			moved = append(moved, ch.MovedPauseMs...)
		}
		out = append(out, r.Out.SettleMs)
		in = append(in, r.In.SettleMs)
	}
	return groupsScaleStats{
		KeptPauseMedianMs: median(pauses), KeptPauseMaxMs: slices.Max(append(pauses, 0)),
		KeptGapMedianMs: median(gaps), SteadyGapMedianMs: median(steady),
		MovedPauseMedianMs: median(moved), MovedPauseMaxMs: slices.Max(append(moved, 0)),
		OutSettleMedianMs: median(out), InSettleMedianMs: median(in),
	}
}

// markdown writes the section.
func (g *groupsResult) markdown(w func(string, ...any)) {
	w("## Consumer groups\n\n%s.\n\nLoad: before `%s`; after `%s`. The machine is shared: the figures hold for that load.\n\n",
		g.Setup, g.LoadBefore, g.LoadAfter)
	s := g.Scale
	w("### Scale-out %d -> %d -> %d consumers, %d partitions (%d rounds)\n\n", groupsBase, 2*groupsBase, groupsBase, groupsPartitions, len(g.Rounds))
	w("| figure | median | max |\n| --- | ---: | ---: |\n")
	w("| pause of a kept partition (longest gap during the change minus the longest in the steady window before) | %.0f ms | %.0f ms |\n",
		s.KeptPauseMedianMs, s.KeptPauseMaxMs)
	w("| longest gap of a kept partition during the change | %.0f ms | |\n", s.KeptGapMedianMs)
	w("| longest gap of the same partition, steady window | %.0f ms | |\n", s.SteadyGapMedianMs)
	w("| pause of a moved partition (old owner's last record to new owner's first) | %.0f ms | %.0f ms |\n",
		s.MovedPauseMedianMs, s.MovedPauseMaxMs)
	w("| scale-out settled (every member holding its share) | %.0f ms | |\n", s.OutSettleMedianMs)
	w("| scale-in settled | %.0f ms | |\n\n", s.InSettleMedianMs)
	w("### Offset commits to one coordinator (sync, acks=all to 3 replicas)\n\n")
	w("| committers | commits/s (median of %d) | p50 ms | p99 ms |\n| ---: | ---: | ---: | ---: |\n", len(g.Rounds))
	for _, r := range g.Commits {
		w("| %d | %.0f | %.2f | %.2f |\n", r.Committers, r.MedianPerSec, r.P50Ms, r.P99Ms)
	}
	w("\n")
}

// scaleMember is one consumer of (a) and what it processed.
type scaleMember struct {
	name   string
	cl     *client.Client
	gc     *client.GroupConsumer
	cancel context.CancelFunc
	done   chan error

	mu sync.Mutex
	// seen is, per partition, the times Polls returned its records.
	seen map[int32][]time.Time
	// held is what the member holds, and since when.
	held map[int32]time.Time
	// let is, per partition, when the member last let it go.
	let map[int32]time.Time
}

func (m *scaleMember) holds() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

// gaps is the longest gap between consecutive processings of p in
// [from, to] (a gap counts when it overlaps the window).
func (m *scaleMember) longestGap(p int32, from, to time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	ts := m.seen[p]
	var longest time.Duration
	for i := 1; i < len(ts); i++ {
		if ts[i].Before(from) || ts[i-1].After(to) {
			continue
		}
		longest = max(longest, ts[i].Sub(ts[i-1]))
	}
	return longest
}

// lastBefore and firstAfter are m's processings of p around t.
func (m *scaleMember) lastBefore(p int32, t time.Time) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ts := m.seen[p]
	for i := len(ts) - 1; i >= 0; i-- {
		if !ts[i].After(t) {
			return ts[i], true
		}
	}
	return time.Time{}, false
}

func (m *scaleMember) firstAfter(p int32, t time.Time) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ts := range m.seen[p] {
		if ts.After(t) {
			return ts, true
		}
	}
	return time.Time{}, false
}
