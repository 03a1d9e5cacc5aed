package server

import (
	"math"
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
	// The produce rates over the hot partition window, as float64 bits,
	// while the owner's replica leads (rateKnown); the owner publishes
	// them on its tick (partition_rate.go).
	rateKnown     atomic.Bool
	bytesInRate   atomic.Uint64
	recordsInRate atomic.Uint64
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

// publishRates stores the partition's produce rates; known is false where
// this broker does not lead it.
func (pm *partitionMetrics) publishRates(r PartitionRate, known bool) {
	pm.bytesInRate.Store(math.Float64bits(r.BytesPerSec))
	pm.recordsInRate.Store(math.Float64bits(r.RecordsPerSec))
	pm.rateKnown.Store(known)
}

// rates reads what publishRates stored.
func (pm *partitionMetrics) rates() (r PartitionRate, known bool) {
	if !pm.rateKnown.Load() {
		return PartitionRate{}, false
	}
	return PartitionRate{math.Float64frombits(pm.bytesInRate.Load()), math.Float64frombits(pm.recordsInRate.Load())}, true
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
	bytesInRate, recordsInRate, hot      *prometheus.Desc
	replication                          replicationDescs
	// topicSize is a topic's partition count in the broker's metadata
	// image, 0 when it does not know the topic.
	topicSize func(topic string) int
}

func newPartitionCollector(shardCount int) *partitionCollector {
	labels := []string{"topic", "partition"}
	c := &partitionCollector{
		shardCount:  shardCount,
		series:      map[partitionKey]*partitionMetrics{},
		bytesIn:     prometheus.NewDesc("strata_partition_bytes_in_total", "Frame bytes appended, by topic and partition.", labels, nil),
		recordsIn:   prometheus.NewDesc("strata_partition_records_in_total", "Records appended, by topic and partition.", labels, nil),
		bytesOut:    prometheus.NewDesc("strata_partition_bytes_out_total", "Frame bytes sent to fetchers, by topic and partition.", labels, nil),
		logEnd:      prometheus.NewDesc("strata_partition_log_end_offset", "The next offset to be written, by topic and partition.", labels, nil),
		replication: newReplicationDescs(),
	}
	c.bytesInRate = prometheus.NewDesc("strata_partition_bytes_in_rate",
		"Frame bytes produced per second over the hot partition window, by topic and partition, where this broker leads the partition.", labels, nil)
	c.recordsInRate = prometheus.NewDesc("strata_partition_records_in_rate",
		"Records produced per second over the hot partition window, by topic and partition, where this broker leads the partition.", labels, nil)
	c.hot = prometheus.NewDesc("strata_partition_hot",
		"1 where the partition's produce rate is more than 4 times the mean of its topic's other partitions, and at least 64 KiB/s "+
			"or 1000 records/s; else 0. Only for topics this broker leads every partition of.", labels, nil)
	return c
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
	ch <- c.bytesInRate
	ch <- c.recordsInRate
	ch <- c.hot
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
	c.collectRates(ch)
}

// collectRates sends the produce rates of the partitions this broker
// leads and, for each topic it leads every partition of, which are hot
// (HotPartitions). The mean is the whole topic's: where other brokers lead
// some of its partitions, this one cannot judge it and sends no flag
// (docs/operations.md, "Hot partitions", has the Prometheus rule that
// judges over the whole cluster).
func (c *partitionCollector) collectRates(ch chan<- prometheus.Metric) {
	type led struct {
		pm *partitionMetrics
		r  PartitionRate
	}
	byTopic := map[string][]led{}
	for _, pm := range c.series {
		if r, ok := pm.rates(); ok {
			byTopic[pm.topic] = append(byTopic[pm.topic], led{pm, r})
		}
	}
	var rates []PartitionRate
	for _, ps := range byTopic {
		rates = rates[:0]
		for _, l := range ps {
			rates = append(rates, l.r)
		}
		hot := HotPartitions(rates)
		whole := c.topicSize != nil && c.topicSize(ps[0].pm.topic) == len(ps)
		for i, l := range ps {
			ch <- prometheus.MustNewConstMetric(c.bytesInRate, prometheus.GaugeValue, l.r.BytesPerSec, l.pm.topic, l.pm.partition)
			ch <- prometheus.MustNewConstMetric(c.recordsInRate, prometheus.GaugeValue, l.r.RecordsPerSec, l.pm.topic, l.pm.partition)
			if !whole {
				continue
			}
			flag := 0.0
			if hot[i] > 0 {
				flag = 1
			}
			ch <- prometheus.MustNewConstMetric(c.hot, prometheus.GaugeValue, flag, l.pm.topic, l.pm.partition)
		}
	}
}
