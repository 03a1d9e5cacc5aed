package server

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
)

// groupMetricsPartitions is the partition count of the lag tests' topic.
const groupMetricsPartitions = 3

// produceEach writes n(p) records to each partition p of topic.
func produceEach(t *testing.T, cl *client.Client, topic string, n func(p int32) int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), groupTestWait)
	defer cancel()
	pr, err := client.NewProducer(cl, client.ProducerConfig{ManualPartitions: true})
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(groupMetricsPartitions) {
		for i := range n(p) {
			if err := pr.Send(ctx, &client.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("r%d-%d", p, i))}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pr.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// metricsMember polls a group member on a goroutine of its own; commitAt
// records read, it commits (synchronously) once.
type metricsMember struct {
	gc        *client.GroupConsumer
	cancel    context.CancelFunc
	done      chan struct{}
	committed chan error
	mu        sync.Mutex
	read      int
}

func startMetricsMember(t *testing.T, addr, group, topic string, commitAt int) *metricsMember {
	t.Helper()
	cl, err := client.Dial(context.Background(), client.Config{Brokers: []string{addr}, RetryBackoffMs: 20, RetryBackoffMaxMs: 200})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	gc, err := client.NewGroupConsumer(cl, client.GroupConfig{GroupID: group, Topics: []string{topic},
		Reset: client.ResetEarliest, DisableAutoCommit: true, MaxWaitMs: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &metricsMember{gc: gc, cancel: cancel, done: make(chan struct{}), committed: make(chan error, 1)}
	go func() {
		defer close(m.done)
		sent := false
		for ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			recs, err := gc.Poll(pctx)
			pcancel()
			if err != nil && ctx.Err() == nil && pctx.Err() == nil {
				t.Logf("poll: %v", err)
			}
			m.mu.Lock()
			m.read += len(recs)
			n := m.read
			m.mu.Unlock()
			if !sent && commitAt > 0 && n >= commitAt {
				sent = true
				m.committed <- gc.Commit(ctx)
			}
		}
		cctx, ccancel := context.WithTimeout(context.Background(), groupTestWait)
		defer ccancel()
		gc.Close(cctx)
	}()
	return m
}

func (m *metricsMember) stop() {
	m.cancel()
	<-m.done
}

// waitGroupScrape scrapes n until cond holds.
func waitGroupScrape(t *testing.T, n *clusterNode, what string, cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(groupTestWait)
	for {
		m, ok := scrapeMetrics(n)
		if ok && cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			var lines []string
			for k, v := range m {
				if strings.HasPrefix(k, "strata_group") || strings.Contains(k, "high_watermark") {
					lines = append(lines, fmt.Sprintf("%s %v", k, v))
				}
			}
			slices.Sort(lines)
			t.Fatalf("%s: not within %v; last scrape:\n%s", what, groupTestWait, strings.Join(lines, "\n"))
		}
		time.Sleep(groupTestPoll)
	}
}

// groupSeries is the value of a per-partition group series.
func groupSeries(m map[string]float64, name, group, topic string, p int32) (float64, bool) {
	return series(m, name, "group", group, "topic", topic, "partition", strconv.Itoa(int(p)))
}

// checkAgainstAdmin holds the scrape to what the admin's lag call says:
// per partition the committed offset, the log end (the high watermark,
// which ListOffsets answers) and the lag.
func checkAgainstAdmin(t *testing.T, m map[string]float64, offs []client.GroupOffset, group string) {
	t.Helper()
	if len(offs) != groupMetricsPartitions {
		t.Fatalf("admin offsets %+v", offs)
	}
	for _, o := range offs {
		c, ok1 := groupSeries(m, "strata_group_committed_offset", group, o.Topic, o.Partition)
		l, ok2 := groupSeries(m, "strata_group_lag_records", group, o.Topic, o.Partition)
		hw, ok3 := series(m, "strata_partition_high_watermark", "topic", o.Topic, "partition", strconv.Itoa(int(o.Partition)))
		if !ok1 || !ok2 || int64(c) != o.Committed || int64(l) != o.Lag || (ok3 && int64(hw) != o.LogEnd) {
			t.Fatalf("%s/%d: metrics committed %v (%v) lag %v (%v) high watermark %v (%v); admin %+v",
				o.Topic, o.Partition, c, ok1, l, ok2, hw, ok3, o)
		}
	}
}

// TestGroupMetricsLagAndRebalances: on a real broker, a member reads and
// commits every record, more are written, and the coordinator's metrics
// give per partition the committed offset and the lag in records that the
// admin's lag call (committed offsets and log ends) gives, and a lag in
// seconds no longer than the scrapes have watched; a second member makes a
// second rebalance, counted once it has ended.
func TestGroupMetricsLagAndRebalances(t *testing.T) {
	b := startGroupBroker(t, t.TempDir())
	defer b.Stop()
	adm, err := StartAdmin("127.0.0.1:0", b.Registry())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	node := &clusterNode{admin: adm.Addr()}
	addr := b.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), groupTestWait)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)
	const topic, grp = "lagged", "watched"
	if err := admin.CreateTopics(ctx, client.TopicSpec{Name: topic, Partitions: groupMetricsPartitions}); err != nil {
		t.Fatal(err)
	}
	first := func(p int32) int { return 5 * int(p+1) }
	produceEach(t, cl, topic, first)

	m1 := startMetricsMember(t, addr, grp, topic, 5+10+15)
	defer m1.stop()
	select {
	case err := <-m1.committed:
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the member did not read every record")
	}
	watchedSince := time.Now()
	waitGroupScrape(t, node, "caught up, one rebalance ended", func(m map[string]float64) bool {
		for p := range int32(groupMetricsPartitions) {
			c, _ := groupSeries(m, "strata_group_committed_offset", grp, topic, p)
			l, ok := groupSeries(m, "strata_group_lag_records", grp, topic, p)
			s, _ := groupSeries(m, "strata_group_lag_seconds", grp, topic, p)
			if int(c) != first(p) || !ok || l != 0 || s != 0 {
				return false
			}
		}
		n, _ := series(m, "strata_group_rebalance_duration_seconds_count", "group", grp)
		open, _ := series(m, "strata_group_rebalance_in_progress_seconds", "group", grp)
		members, _ := series(m, "strata_group_members", "group", grp)
		return n >= 1 && open == 0 && members == 1
	})

	produceEach(t, cl, topic, func(int32) int { return 4 })
	m := waitGroupScrape(t, node, "four records behind on each partition", func(m map[string]float64) bool {
		for p := range int32(groupMetricsPartitions) {
			if l, _ := groupSeries(m, "strata_group_lag_records", grp, topic, p); l != 4 {
				return false
			}
		}
		return true
	})
	watched := time.Since(watchedSince).Seconds()
	desc, err := admin.DescribeGroup(ctx, grp)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := admin.GroupOffsets(ctx, grp, desc)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstAdmin(t, m, offs, grp)
	for p := range int32(groupMetricsPartitions) {
		s, ok := groupSeries(m, "strata_group_lag_seconds", grp, topic, p)
		if !ok || s < 0 || s > watched {
			t.Fatalf("partition %d: lag %v s (%v), the scrapes watched %v s", p, s, ok, watched)
		}
	}
	if n, _ := series(m, "strata_group_rebalance_duration_seconds_count", "group", grp); n < 1 {
		t.Fatalf("rebalances %v", n)
	}
	before, _ := series(m, "strata_group_rebalance_duration_seconds_count", "group", grp)

	m2 := startMetricsMember(t, addr, grp, topic, 0)
	defer m2.stop()
	waitGroupScrape(t, node, "a second member, its rebalance ended", func(m map[string]float64) bool {
		n, _ := series(m, "strata_group_rebalance_duration_seconds_count", "group", grp)
		open, _ := series(m, "strata_group_rebalance_in_progress_seconds", "group", grp)
		members, _ := series(m, "strata_group_members", "group", grp)
		return n >= before+1 && open == 0 && members == 2
	})
	desc, err = admin.DescribeGroup(ctx, grp)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, mem := range desc.Members {
		if len(mem.Assignment) == 0 || len(mem.PendingRevocation) > 0 {
			t.Fatalf("the group at rest by its metrics, not by describe: %+v", desc)
		}
		held += len(mem.Assignment)
	}
	if held != groupMetricsPartitions || desc.GroupEpoch != desc.AssignmentEpoch {
		t.Fatalf("describe %+v", desc)
	}
}
