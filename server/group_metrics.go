package server

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/server/group"
)

// The consumer groups' metrics (docs/consumer-groups.md, "Metrics"),
// exported by the broker that coordinates each group. A scrape asks every
// shard, by message, for its coordinators' Stats (a copy, bounded), then
// finds the high watermark of each partition a group committed on: from
// this broker's own replica where it leads the partition (the atomics the
// owning shard publishes), else by ListOffsets to the leader through an
// in-process client, bounded in partitions and time. Nothing of it runs on
// a shard but the copy.

// Bounds of one scrape.
const (
	// groupMetricsOffsetsMax bounds the committed offsets one scrape
	// exports, split evenly between the shards; the groups past it are
	// left out whole (strata_group_metrics_offsets_omitted).
	groupMetricsOffsetsMax = 100_000
	// groupMetricsShardWaitMs bounds the wait for the shards' copies; a
	// shard that does not answer in time leaves its groups out.
	groupMetricsShardWaitMs = 1000
	// groupLagRemotePartitionsMax bounds the partitions led elsewhere whose
	// high watermarks one scrape asks for; past it their lag is not
	// exported (strata_group_lag_unknown_partitions).
	groupLagRemotePartitionsMax = 10_000
	// groupLagListTimeoutMs bounds the ListOffsets calls of one scrape.
	groupLagListTimeoutMs = 2000
	// groupLagListConcurrency is how many topics are asked at once.
	groupLagListConcurrency = 8
)

// groupCollector is the groups' metrics. Its lock makes scrapes run one at
// a time (they share the high-watermark history).
type groupCollector struct {
	b    *Broker
	mu   sync.Mutex
	hist map[partitionKey]*hwHistory

	committed, lagRecords, lagSeconds        *prometheus.Desc
	members, epoch, rebalance, rebalanceOpen *prometheus.Desc
	omitted, unknown                         *prometheus.Desc
}

func newGroupCollector(b *Broker) *groupCollector {
	tp := []string{"group", "topic", "partition"}
	g := []string{"group"}
	return &groupCollector{
		b:    b,
		hist: map[partitionKey]*hwHistory{},
		committed: prometheus.NewDesc("strata_group_committed_offset",
			"The group's committed offset (the next record it will read), by group, topic and partition; on the group's coordinator.", tp, nil),
		lagRecords: prometheus.NewDesc("strata_group_lag_records",
			"The partition's high watermark minus the group's committed offset (0 when not past it).", tp, nil),
		lagSeconds: prometheus.NewDesc("strata_group_lag_seconds",
			"How long ago the first record the group has not committed became readable, estimated from the high watermarks the scrapes saw (a lower bound until the history reaches back to it).", tp, nil),
		members: prometheus.NewDesc("strata_group_members", "The group's members.", g, nil),
		epoch:   prometheus.NewDesc("strata_group_epoch", "The group epoch.", g, nil),
		rebalance: prometheus.NewDesc("strata_group_rebalance_duration_seconds",
			"Rebalances that ended since this broker became the group's coordinator, by length: from the group epoch moving to every member holding its target at it.", g, nil),
		rebalanceOpen: prometheus.NewDesc("strata_group_rebalance_in_progress_seconds",
			"How long the group's running rebalance has run, 0 when none runs.", g, nil),
		omitted: prometheus.NewDesc("strata_group_metrics_offsets_omitted",
			"Committed offsets the last scrape left out, past its bound.", nil, nil),
		unknown: prometheus.NewDesc("strata_group_lag_unknown_partitions",
			"Partitions with committed offsets whose high watermark the last scrape could not learn (no lag exported for them).", nil, nil),
	}
}

func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.committed, c.lagRecords, c.lagSeconds, c.members, c.epoch,
		c.rebalance, c.rebalanceOpen, c.omitted, c.unknown} {
		ch <- d
	}
}

// shardGroupStats is one shard's answer.
type shardGroupStats struct {
	groups  []group.GroupStats
	omitted int
}

// gather asks every shard for its coordinators' stats and waits for the
// answers within groupMetricsShardWaitMs.
func (c *groupCollector) gather() ([]group.GroupStats, int) {
	if c.b.srv == nil {
		return nil, 0
	}
	shards := c.b.srv.Shards()
	if len(shards) == 0 {
		return nil, 0
	}
	perShard := groupMetricsOffsetsMax / len(shards)
	answers := make(chan shardGroupStats, len(shards))
	posted := 0
	for i, sh := range shards {
		bs := c.b.shards[i]
		err := sh.Post(func(*Shard) {
			var a shardGroupStats
			left := perShard
			for _, idx := range slices.Sorted(maps.Keys(bs.groups)) {
				h := bs.groups[idx]
				if h.c == nil || h.dropped {
					continue
				}
				st, om := h.c.Stats(left)
				for _, s := range st {
					left -= len(s.Offsets)
				}
				a.groups = append(a.groups, st...)
				a.omitted += om
			}
			answers <- a
		})
		if err != nil {
			c.b.log.Warn("group metrics: a shard's inbox refused the request; its groups are left out of this scrape", "shard", i, "err", err)
			continue
		}
		posted++
	}
	var all []group.GroupStats
	omitted := 0
	timeout := time.NewTimer(groupMetricsShardWaitMs * time.Millisecond)
	defer timeout.Stop()
	for range posted {
		select {
		case a := <-answers:
			all = append(all, a.groups...)
			omitted += a.omitted
		case <-timeout.C:
			c.b.log.Warn("group metrics: a shard did not answer in time; its groups are left out of this scrape")
			return all, omitted
		}
	}
	return all, omitted
}

func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	groups, omitted := c.gather()
	now := time.Now().UnixMilli()
	want := map[partitionKey]bool{}
	for _, g := range groups {
		for _, o := range g.Offsets {
			want[partitionKey{o.Topic, o.Partition}] = true
		}
	}
	hws := c.highWatermarks(want)
	for k, hw := range hws {
		h := c.hist[k]
		if h == nil {
			h = &hwHistory{}
			c.hist[k] = h
		}
		h.observe(hw, now)
	}
	for k, h := range c.hist {
		if now-h.seenMs > groupLagHistoryIdleMs {
			delete(c.hist, k)
		}
	}
	bounds := make([]float64, len(group.RebalanceBucketsMs))
	for i, ms := range group.RebalanceBucketsMs {
		bounds[i] = float64(ms) / 1000
	}
	for _, g := range groups {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(g.Members), g.ID)
		ch <- prometheus.MustNewConstMetric(c.epoch, prometheus.GaugeValue, float64(g.Epoch), g.ID)
		cum := map[float64]uint64{}
		var n uint64
		for i, b := range bounds {
			n += g.RebalanceBuckets[i]
			cum[b] = n
		}
		ch <- prometheus.MustNewConstHistogram(c.rebalance, g.Rebalances, float64(g.RebalanceTotalMs)/1000, cum, g.ID)
		open := 0.0
		if g.Rebalancing {
			open = float64(max(now-g.RebalanceSinceMs, 0)) / 1000
		}
		ch <- prometheus.MustNewConstMetric(c.rebalanceOpen, prometheus.GaugeValue, open, g.ID)
		for _, o := range g.Offsets {
			p := strconv.Itoa(int(o.Partition))
			ch <- prometheus.MustNewConstMetric(c.committed, prometheus.GaugeValue, float64(o.Offset), g.ID, o.Topic, p)
			k := partitionKey{o.Topic, o.Partition}
			hw, ok := hws[k]
			if !ok {
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.lagRecords, prometheus.GaugeValue, float64(max(hw-o.Offset, 0)), g.ID, o.Topic, p)
			ms, _ := c.hist[k].lagMs(o.Offset, now)
			ch <- prometheus.MustNewConstMetric(c.lagSeconds, prometheus.GaugeValue, float64(ms)/1000, g.ID, o.Topic, p)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.omitted, prometheus.GaugeValue, float64(omitted))
	ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.GaugeValue, float64(len(want)-len(hws)))
}

// highWatermarks finds the high watermark of each wanted partition: this
// broker's where it leads, the leader's (ListOffsets, latest) elsewhere.
// Partitions it cannot learn in time are missing from the answer.
func (c *groupCollector) highWatermarks(want map[partitionKey]bool) map[partitionKey]int64 {
	out := make(map[partitionKey]int64, len(want))
	remote := map[string][]int32{}
	nRemote := 0
	pc := c.b.metrics.partitions
	pc.mu.Lock()
	for k := range want {
		if pm := pc.series[k]; pm != nil && pm.replication.leading.Load() {
			out[k] = pm.replication.highWatermark.Load()
			continue
		}
		if nRemote < groupLagRemotePartitionsMax {
			remote[k.topic] = append(remote[k.topic], k.index)
			nRemote++
		}
	}
	pc.mu.Unlock()
	if nRemote == 0 {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupLagListTimeoutMs*time.Millisecond)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{c.b.srv.Addr().String()}, ClientID: "strata-group-metrics",
		DialTimeoutMs: groupLagListTimeoutMs, RetryTimeoutMs: groupLagListTimeoutMs, ResponseTimeoutMs: groupLagListTimeoutMs})
	if err != nil {
		c.b.log.Warn("group metrics: no client for the high watermarks of partitions led elsewhere", "err", err)
		return out
	}
	defer cl.Close()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, groupLagListConcurrency)
	for topic, parts := range remote {
		if topic == schema.OffsetsTopic {
			continue
		}
		slices.Sort(parts)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ends, err := cl.ListOffsets(ctx, topic, parts, client.OffsetLatest)
			if err != nil {
				c.b.log.Debug("group metrics: high watermarks not learnt", "topic", topic, "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for p, hw := range ends {
				out[partitionKey{topic, p}] = hw
			}
		}()
	}
	wg.Wait()
	return out
}
