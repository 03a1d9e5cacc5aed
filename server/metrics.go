package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-db/strata/schema/fb"
)

// brokerMetrics are the broker's Prometheus metrics. Hot paths hold
// resolved children (a counter per partition, a histogram per API), so
// recording is an atomic add, never a label lookup.
type brokerMetrics struct {
	reg            *prometheus.Registry
	requestSeconds *prometheus.HistogramVec
	bytesIn        *prometheus.CounterVec
	recordsIn      *prometheus.CounterVec
	bytesOut       *prometheus.CounterVec
	logEnd         *prometheus.GaugeVec
	perAPI         map[fb.ApiKey]prometheus.Observer
}

func newBrokerMetrics(b *Broker) *brokerMetrics {
	m := &brokerMetrics{reg: prometheus.NewRegistry(), perAPI: map[fb.ApiKey]prometheus.Observer{}}
	m.requestSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "strata_request_seconds", Help: "Time from a request's arrival to its answer being queued, by API.",
		Buckets: prometheus.ExponentialBuckets(25e-6, 2, 18),
	}, []string{"api"})
	m.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_partition_bytes_in_total", Help: "Frame bytes appended, by topic and partition."}, []string{"topic", "partition"})
	m.recordsIn = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_partition_records_in_total", Help: "Records appended, by topic and partition."}, []string{"topic", "partition"})
	m.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_partition_bytes_out_total", Help: "Frame bytes sent to fetchers, by topic and partition."}, []string{"topic", "partition"})
	m.logEnd = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_partition_log_end_offset", Help: "The next offset to be written, by topic and partition."}, []string{"topic", "partition"})
	m.reg.MustRegister(m.requestSeconds, m.bytesIn, m.recordsIn, m.bytesOut, m.logEnd,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	for _, k := range supportedAPIs {
		m.perAPI[k] = m.requestSeconds.WithLabelValues(k.String())
	}
	shardCounter := func(name, help string, read func(*ShardStats) float64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 {
			var sum float64
			for _, sh := range b.srv.Shards() {
				sum += read(sh.Stats())
			}
			return sum
		}))
	}
	shardCounter("strata_connections_accepted_total", "Connections accepted.", func(s *ShardStats) float64 { return float64(s.Accepted.Load()) })
	shardCounter("strata_connections_closed_total", "Connections closed.", func(s *ShardStats) float64 { return float64(s.Closed.Load()) })
	shardCounter("strata_requests_total", "Requests received.", func(s *ShardStats) float64 { return float64(s.Requests.Load()) })
	shardCounter("strata_network_bytes_in_total", "Bytes received from clients.", func(s *ShardStats) float64 { return float64(s.BytesIn.Load()) })
	shardCounter("strata_network_bytes_out_total", "Bytes sent to clients (spliced bytes included).", func(s *ShardStats) float64 { return float64(s.BytesOut.Load()) })
	shardCounter("strata_ring_submissions_total", "SQEs submitted to the shards' rings.", func(s *ShardStats) float64 { return float64(s.Submissions.Load()) })
	shardCounter("strata_ring_completions_total", "CQEs reaped from the shards' rings.", func(s *ShardStats) float64 { return float64(s.Completions.Load()) })
	shardCounter("strata_fetch_spliced_answers_total", "Fetch answers whose frames were spliced from segment files to the socket.",
		func(s *ShardStats) float64 { return float64(s.SplicedAnswers.Load()) })
	shardCounter("strata_fetch_splice_chains_stopped_total", "Fetch answer splice chains that moved less than asked (a short socket send) and were finished by single sends.",
		func(s *ShardStats) float64 { return float64(s.SpliceChainsStopped.Load()) })
	shardCounter("strata_fetch_splice_seconds_total", "Time from a fetch answer's envelope going out to its last frame byte leaving, summed.",
		func(s *ShardStats) float64 { return float64(s.SpliceNanos.Load()) / 1e9 })
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_connections_open", Help: "Open client connections."}, func() float64 {
		var sum int64
		for _, sh := range b.srv.Shards() {
			sum += sh.Stats().Open.Load()
		}
		return float64(sum)
	}))
	shardCounter("strata_request_budget_closed_connections_total", "Connections closed because the bytes they had sent while waiting for request budget passed the bound.",
		func(s *ShardStats) float64 { return float64(s.RequestBudgetClosed.Load()) })
	shardCounter("strata_request_budget_passed_total", "Large requests granted budget ahead of connections waiting for it, from what the budget had left.",
		func(s *ShardStats) float64 { return float64(s.RequestBudgetPassed.Load()) })
	shardGauge := func(name, help string, read func(*ShardStats) int64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			var sum int64
			for _, sh := range b.srv.Shards() {
				sum += read(sh.Stats())
			}
			return float64(sum)
		}))
	}
	shardGauge("strata_request_budget_used_bytes", "Bytes of the request budget reserved by large requests.",
		func(s *ShardStats) int64 { return s.RequestBudgetUsedBytes.Load() })
	shardGauge("strata_request_budget_waiting_connections", "Connections waiting for request budget, their receive stopped.",
		func(s *ShardStats) int64 { return s.RequestBudgetWaiting.Load() })
	return m
}

// partitionMetrics are one partition's resolved metric children.
type partitionMetrics struct {
	bytesIn, recordsIn, bytesOut prometheus.Counter
	logEnd                       prometheus.Gauge
}

func (m *brokerMetrics) forPartition(topic string, index int32) partitionMetrics {
	p := strconv.Itoa(int(index))
	return partitionMetrics{
		bytesIn: m.bytesIn.WithLabelValues(topic, p), recordsIn: m.recordsIn.WithLabelValues(topic, p),
		bytesOut: m.bytesOut.WithLabelValues(topic, p), logEnd: m.logEnd.WithLabelValues(topic, p),
	}
}

// dropPartition removes a deleted partition's series.
func (m *brokerMetrics) dropPartition(topic string, index int32) {
	p := strconv.Itoa(int(index))
	m.bytesIn.DeleteLabelValues(topic, p)
	m.recordsIn.DeleteLabelValues(topic, p)
	m.bytesOut.DeleteLabelValues(topic, p)
	m.logEnd.DeleteLabelValues(topic, p)
}

// observeRequest records how long a request took to be answered.
func (m *brokerMetrics) observeRequest(api fb.ApiKey, start time.Time) {
	if o := m.perAPI[api]; o != nil {
		o.Observe(time.Since(start).Seconds())
	}
}
