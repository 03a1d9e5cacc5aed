package server

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// partitionMetrics are one partition's series. Appends are counted by the
// partition's owning shard, its only writer; fetch answers are counted by
// the shard that sends them, each shard in a slot of its own, so shards
// serving one hot partition never share a cache line. The scrape sums the
// slots.
type partitionMetrics struct {
	topic     string
	partition string
	bytesIn   atomic.Uint64
	recordsIn atomic.Uint64
	logEnd    atomic.Int64
	bytesOut  []paddedCounter // by answering shard
	// replication is written by the owner alone (replica_metrics.go).
	replication replicationMetrics
	// opens counts the partitions holding these series: a partition
	// opened again while its old instance still closes shares them.
	opens int
}

// paddedCounter is a counter alone on its cache line.
type paddedCounter struct {
	n atomic.Uint64
	_ [56]byte
}

// appended counts frames the owner appended.
func (pm *partitionMetrics) appended(bytes, records uint64, logEnd int64) {
	pm.bytesIn.Add(bytes)
	pm.recordsIn.Add(records)
	pm.logEnd.Store(logEnd)
}

// sent counts frame bytes a fetch answer from shard carried.
func (pm *partitionMetrics) sent(shard int, bytes int64) { pm.bytesOut[shard].n.Add(uint64(bytes)) }

type partitionKey struct {
	topic string
	index int32
}

// partitionCollector holds every open partition's series. Its lock is
// taken when a partition opens or goes and at scrape, never per request.
type partitionCollector struct {
	shardCount int
	mu         sync.Mutex
	series     map[partitionKey]*partitionMetrics

	bytesIn, recordsIn, bytesOut, logEnd *prometheus.Desc
	replication                          replicationDescs
}

func newPartitionCollector(shardCount int) *partitionCollector {
	labels := []string{"topic", "partition"}
	return &partitionCollector{
		shardCount:  shardCount,
		series:      map[partitionKey]*partitionMetrics{},
		bytesIn:     prometheus.NewDesc("strata_partition_bytes_in_total", "Frame bytes appended, by topic and partition.", labels, nil),
		recordsIn:   prometheus.NewDesc("strata_partition_records_in_total", "Records appended, by topic and partition.", labels, nil),
		bytesOut:    prometheus.NewDesc("strata_partition_bytes_out_total", "Frame bytes sent to fetchers, by topic and partition.", labels, nil),
		logEnd:      prometheus.NewDesc("strata_partition_log_end_offset", "The next offset to be written, by topic and partition.", labels, nil),
		replication: newReplicationDescs(),
	}
}

// forPartition returns the partition's series, made on first use; a
// partition opened again (after a leadership move) keeps counting where it
// left off, as a counter must.
func (c *partitionCollector) forPartition(topic string, index int32) *partitionMetrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := partitionKey{topic, index}
	pm := c.series[k]
	if pm == nil {
		pm = &partitionMetrics{topic: topic, partition: strconv.Itoa(int(index)), bytesOut: make([]paddedCounter, c.shardCount)}
		c.series[k] = pm
	}
	pm.opens++
	return pm
}

// drop gives up a closed partition's hold on its series; they go when no
// open partition holds them.
func (c *partitionCollector) drop(topic string, index int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := partitionKey{topic, index}
	pm := c.series[k]
	if pm == nil {
		panic("server: invariant: a partition's series dropped more often than made")
	}
	if pm.opens--; pm.opens == 0 {
		delete(c.series, k)
	}
}

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytesIn
	ch <- c.recordsIn
	ch <- c.bytesOut
	ch <- c.logEnd
	c.replication.describe(ch)
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pm := range c.series {
		var out uint64
		for i := range pm.bytesOut {
			out += pm.bytesOut[i].n.Load()
		}
		ch <- prometheus.MustNewConstMetric(c.bytesIn, prometheus.CounterValue, float64(pm.bytesIn.Load()), pm.topic, pm.partition)
		ch <- prometheus.MustNewConstMetric(c.recordsIn, prometheus.CounterValue, float64(pm.recordsIn.Load()), pm.topic, pm.partition)
		ch <- prometheus.MustNewConstMetric(c.bytesOut, prometheus.CounterValue, float64(out), pm.topic, pm.partition)
		ch <- prometheus.MustNewConstMetric(c.logEnd, prometheus.GaugeValue, float64(pm.logEnd.Load()), pm.topic, pm.partition)
		c.replication.collect(ch, pm)
	}
}
