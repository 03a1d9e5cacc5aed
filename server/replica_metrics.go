package server

import (
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-db/strata/replica"
)

// replicationMetrics are one hosted partition's replication series. The
// shard that owns the partition is their only writer: it publishes what
// its replica machine says after each Ready (afterReady: role, ISR, high
// watermark, ISR changes) and on each tick (afterTick: the followers' lag),
// through atomics that the scrape reads from its own goroutine. Nothing on
// the data path takes a lock or allocates for them.
type replicationMetrics struct {
	leading         atomic.Bool
	underReplicated atomic.Bool
	isrSize         atomic.Int32
	highWatermark   atomic.Int64
	// isrShrinks and isrExpands count the ISR changes this broker saw
	// take effect while it led the partition, within one leader epoch:
	// its own accepted AlterPartition requests, and the controller's
	// removal of a fenced replica.
	isrShrinks atomic.Uint64
	isrExpands atomic.Uint64
	// lags is the followers' lag while this broker leads, nil otherwise.
	// The follower set in it never changes; a new set is a new value.
	lags atomic.Pointer[followerLags]

	// The owner's alone: what the last publication saw, and the slice the
	// machine's follower view is read into on each tick.
	seen     bool
	seenLead bool
	seenLE   int32
	seenPE   int32
	seenISR  []int32
	progress []replica.FollowerProgress
}

// followerLags is the lag of each follower of a leading partition, in
// records and in milliseconds, by follower, ids in replica order.
type followerLags struct {
	ids     []int32
	labels  []string
	records []atomic.Int64
	ms      []atomic.Int64
}

// afterReady publishes the machine's state after its effects were carried
// out. Only the high watermark moves on most calls; the rest is read again
// when the leader or partition epoch moved, as it does with every change
// of role, replicas or ISR.
func (rm *replicationMetrics) afterReady(m *replica.Partition) {
	rm.highWatermark.Store(m.HighWatermark())
	le, pe := m.LeaderEpoch(), m.PartitionEpoch()
	if rm.seen && le == rm.seenLE && pe == rm.seenPE {
		return
	}
	st := m.Status()
	lead := st.Role == replica.RoleLeader
	if lead && rm.seen && rm.seenLead && le == rm.seenLE {
		if slices.ContainsFunc(rm.seenISR, func(id int32) bool { return !slices.Contains(st.ISR, id) }) {
			rm.isrShrinks.Add(1)
		}
		if slices.ContainsFunc(st.ISR, func(id int32) bool { return !slices.Contains(rm.seenISR, id) }) {
			rm.isrExpands.Add(1)
		}
	}
	rm.seen, rm.seenLead, rm.seenLE, rm.seenPE, rm.seenISR = true, lead, le, pe, st.ISR
	rm.leading.Store(lead)
	rm.isrSize.Store(int32(len(st.ISR)))
	rm.underReplicated.Store(lead && len(st.ISR) < m.ReplicaCount())
	if !lead {
		rm.lags.Store(nil)
	}
}

// afterTick publishes the followers' lag of a leading partition: the
// leader's log end minus each follower's last known log end, and the time
// since each last held the whole log.
func (rm *replicationMetrics) afterTick(m *replica.Partition) {
	if m.Role() != replica.RoleLeader {
		return
	}
	rm.progress = m.AppendFollowers(rm.progress[:0])
	fl := rm.lags.Load()
	if fl == nil || !sameFollowers(fl.ids, rm.progress) {
		fl = &followerLags{records: make([]atomic.Int64, len(rm.progress)), ms: make([]atomic.Int64, len(rm.progress))}
		for _, f := range rm.progress {
			fl.ids = append(fl.ids, f.ID)
			fl.labels = append(fl.labels, strconv.Itoa(int(f.ID)))
		}
		defer rm.lags.Store(fl) // once its values are in
	}
	for i, f := range rm.progress {
		fl.records[i].Store(f.LagRecords)
		fl.ms[i].Store(f.LagMs)
	}
}

func sameFollowers(ids []int32, fs []replica.FollowerProgress) bool {
	if len(ids) != len(fs) {
		return false
	}
	for i, f := range fs {
		if ids[i] != f.ID {
			return false
		}
	}
	return true
}

// replicationDescs are the replication series' descriptions, collected
// with the partition series (partitionCollector).
type replicationDescs struct {
	leader, underReplicated, isrSize, highWatermark, isrShrinks, isrExpands *prometheus.Desc
	lagRecords, lagMs                                                       *prometheus.Desc
}

func newReplicationDescs() replicationDescs {
	labels := []string{"topic", "partition"}
	followerLabels := []string{"topic", "partition", "follower"}
	return replicationDescs{
		leader: prometheus.NewDesc("strata_partition_leader",
			"1 where this broker leads the partition, 0 where it follows or has no role.", labels, nil),
		underReplicated: prometheus.NewDesc("strata_partition_under_replicated",
			"1 where this broker leads the partition and its ISR is smaller than its replica set, else 0.", labels, nil),
		isrSize: prometheus.NewDesc("strata_partition_isr_size",
			"The in-sync replicas of a partition this broker leads.", labels, nil),
		highWatermark: prometheus.NewDesc("strata_partition_high_watermark",
			"The replica's high watermark: offsets below it are committed.", labels, nil),
		isrShrinks: prometheus.NewDesc("strata_isr_shrinks_total",
			"ISR changes that removed replicas, taking effect while this broker led the partition.", labels, nil),
		isrExpands: prometheus.NewDesc("strata_isr_expands_total",
			"ISR changes that added replicas, taking effect while this broker led the partition.", labels, nil),
		lagRecords: prometheus.NewDesc("strata_partition_follower_lag_records",
			"On the leader: its log end minus the follower's last known log end (the whole log before the follower's first fetch).",
			followerLabels, nil),
		lagMs: prometheus.NewDesc("strata_partition_follower_lag_ms",
			"On the leader: milliseconds since the follower last held the leader's whole log, 0 while it does.", followerLabels, nil),
	}
}

func (d *replicationDescs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{d.leader, d.underReplicated, d.isrSize, d.highWatermark, d.isrShrinks,
		d.isrExpands, d.lagRecords, d.lagMs} {
		ch <- desc
	}
}

// collect sends one partition's replication series.
func (d *replicationDescs) collect(ch chan<- prometheus.Metric, pm *partitionMetrics) {
	rm := &pm.replication
	lead := rm.leading.Load()
	ch <- prometheus.MustNewConstMetric(d.leader, prometheus.GaugeValue, boolValue(lead), pm.topic, pm.partition)
	ch <- prometheus.MustNewConstMetric(d.underReplicated, prometheus.GaugeValue, boolValue(rm.underReplicated.Load()),
		pm.topic, pm.partition)
	if lead {
		ch <- prometheus.MustNewConstMetric(d.isrSize, prometheus.GaugeValue, float64(rm.isrSize.Load()), pm.topic, pm.partition)
	}
	ch <- prometheus.MustNewConstMetric(d.highWatermark, prometheus.GaugeValue, float64(rm.highWatermark.Load()), pm.topic, pm.partition)
	ch <- prometheus.MustNewConstMetric(d.isrShrinks, prometheus.CounterValue, float64(rm.isrShrinks.Load()), pm.topic, pm.partition)
	ch <- prometheus.MustNewConstMetric(d.isrExpands, prometheus.CounterValue, float64(rm.isrExpands.Load()), pm.topic, pm.partition)
	if fl := rm.lags.Load(); fl != nil {
		for i, label := range fl.labels {
			ch <- prometheus.MustNewConstMetric(d.lagRecords, prometheus.GaugeValue, float64(fl.records[i].Load()),
				pm.topic, pm.partition, label)
			ch <- prometheus.MustNewConstMetric(d.lagMs, prometheus.GaugeValue, float64(fl.ms[i].Load()),
				pm.topic, pm.partition, label)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
