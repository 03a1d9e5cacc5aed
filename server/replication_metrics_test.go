package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/schema/fb"
)

// metricsScrapeTimeout bounds one scrape of a node's admin listener.
const metricsScrapeTimeout = 5 * time.Second

// scrapeMetrics reads node n's /metrics in the Prometheus text format,
// series line -> value, the line being the name and its labels as
// written (`name{a="x",b="y"}`). ok is false when the node does not
// answer.
func scrapeMetrics(n *clusterNode) (map[string]float64, bool) {
	cl := http.Client{Timeout: metricsScrapeTimeout}
	resp, err := cl.Get("http://" + n.admin + "/metrics")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, false
	}
	out := map[string]float64{}
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, s.Err() == nil
}

// series is the value of family name for the labels given as
// name, value pairs, which must be all of the series' labels; ok is false
// when there is no such series.
func series(m map[string]float64, name string, labels ...string) (float64, bool) {
	for k, v := range m {
		open := strings.IndexByte(k, '{')
		if open < 0 {
			if k == name && len(labels) == 0 {
				return v, true
			}
			continue
		}
		if k[:open] != name {
			continue
		}
		pairs := strings.Split(strings.TrimSuffix(k[open+1:], "}"), ",")
		if len(pairs) != len(labels)/2 {
			continue
		}
		all := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.Contains(pairs, fmt.Sprintf("%s=%q", labels[i], labels[i+1])) {
				all = false
			}
		}
		if all {
			return v, true
		}
	}
	return 0, false
}

// waitScrape scrapes node n until cond holds of a scrape.
func (c *testCluster) waitScrape(n *clusterNode, what string, cond func(map[string]float64) bool) map[string]float64 {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		m, ok := scrapeMetrics(n)
		if ok && cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			var lines []string
			for k, v := range m {
				if strings.Contains(k, "replica") || strings.Contains(k, "isr") || strings.Contains(k, "leader") ||
					strings.Contains(k, "outbound") || strings.Contains(k, "high_watermark") {
					lines = append(lines, fmt.Sprintf("%s %v", k, v))
				}
			}
			slices.Sort(lines)
			c.t.Fatalf("node %d: %s not seen within %v; last scrape:\n%s", n.id, what, clusterWait, strings.Join(lines, "\n"))
		}
		time.Sleep(clusterPoll)
	}
}

// TestReplicationMetricsShowAFollowerDown runs three brokers with their
// metrics listeners and a topic of replication factor 3. The leader's
// metrics show the partition fully replicated, the followers' lag and the
// high watermark of what was produced, and the followers' outbound
// connections carry the fetches; once a follower is killed the leader
// shows the partition under-replicated with an ISR of 2 and one shrink,
// and the metadata names the dead follower offline; once it is back, the
// ISR is 3 again after one expand.
func TestReplicationMetricsShowAFollowerDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	c := newTestClusterAdmin(t, 3, true)
	const topic = "observed"
	c.createTopicWith(c.nodes[1], topic, 1, 3)
	md := c.waitMetadata(c.nodes[1], "a leader and a full ISR", func(md *fb.MetadataResponseT) bool {
		tm := topicOf(md, topic)
		return tm != nil && len(tm.Partitions) == 1 && tm.Partitions[0].LeaderId > 0 && len(tm.Partitions[0].Isr) == 3
	})
	leader := c.nodes[topicOf(md, topic).Partitions[0].LeaderId]
	var followers []*clusterNode
	for _, id := range topicOf(md, topic).Partitions[0].Replicas {
		if id != leader.id {
			followers = append(followers, c.nodes[id])
		}
	}
	lp := []string{"partition", "0", "topic", topic}
	const batches = 3
	for i := range batches {
		// Once each, so the counts below are exact: bounded by clusterWait,
		// not by the raw call's short deadline, which a loaded machine can pass.
		env, _, err := rawCallWithin(leader.clientAddr(), produceMsg(fb.AcksAll, topic, 0, replBatch(t, 0, i*replRecordsPerBatch)), clusterWait)
		if err != nil {
			t.Fatal(err)
		}
		if code := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0].ErrorCode; code != fb.ErrorCodeNone {
			t.Fatalf("produce %d: %v", i, code)
		}
	}
	const produced = batches * replRecordsPerBatch
	followerLabels := func(f *clusterNode) []string {
		return []string{"follower", fmt.Sprint(f.id), "partition", "0", "topic", topic}
	}
	c.waitScrape(leader, "the partition led, fully replicated, caught up", func(m map[string]float64) bool {
		lead, _ := series(m, "strata_partition_leader", lp...)
		under, okUnder := series(m, "strata_partition_under_replicated", lp...)
		isr, _ := series(m, "strata_partition_isr_size", lp...)
		hw, _ := series(m, "strata_partition_high_watermark", lp...)
		for _, f := range followers {
			if lag, ok := series(m, "strata_partition_follower_lag_records", followerLabels(f)...); !ok || lag != 0 {
				return false
			}
			if _, ok := series(m, "strata_partition_follower_lag_ms", followerLabels(f)...); !ok {
				return false
			}
		}
		return lead == 1 && okUnder && under == 0 && isr == 3 && hw == produced
	})
	// The followers fetch over connections they dialed to the leader.
	for _, f := range followers {
		c.waitScrape(f, "a follower's outbound fetch connection", func(m map[string]float64) bool {
			open, _ := series(m, "strata_outbound_connections_open")
			in, _ := series(m, "strata_outbound_bytes_in_total")
			hw, _ := series(m, "strata_partition_high_watermark", lp...)
			lead, _ := series(m, "strata_partition_leader", lp...)
			return open >= 1 && in > 0 && hw == produced && lead == 0
		})
	}

	down := followers[0]
	down.kill()
	c.waitScrape(leader, "the partition under-replicated after a follower died", func(m map[string]float64) bool {
		under, _ := series(m, "strata_partition_under_replicated", lp...)
		isr, _ := series(m, "strata_partition_isr_size", lp...)
		shrinks, _ := series(m, "strata_isr_shrinks_total", lp...)
		return under == 1 && isr == 2 && shrinks == 1
	})
	c.waitMetadata(leader, "the dead follower offline", func(md *fb.MetadataResponseT) bool {
		p := topicOf(md, topic).Partitions[0]
		return slices.Equal(p.OfflineReplicas, []int32{down.id}) && len(p.Isr) == 2 && !slices.Contains(p.Isr, down.id)
	})

	c.start(down)
	c.waitReady(down)
	c.waitScrape(leader, "the partition fully replicated again", func(m map[string]float64) bool {
		under, _ := series(m, "strata_partition_under_replicated", lp...)
		isr, _ := series(m, "strata_partition_isr_size", lp...)
		expands, _ := series(m, "strata_isr_expands_total", lp...)
		return under == 0 && isr == 3 && expands == 1
	})
	c.waitMetadata(leader, "no replica offline", func(md *fb.MetadataResponseT) bool {
		p := topicOf(md, topic).Partitions[0]
		return len(p.OfflineReplicas) == 0 && len(p.Isr) == 3
	})
}
