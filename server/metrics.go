package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// brokerMetrics are the broker's Prometheus metrics. Nothing a request
// touches is shared between shards: request counts and latencies are per
// shard (requestMetrics), partition counters have one writer or one slot per
// shard (partitionMetrics), and the scrape sums them.
type brokerMetrics struct {
	reg        *prometheus.Registry
	perShard   []*requestMetrics // by shard id
	partitions *partitionCollector
}

func newBrokerMetrics(b *Broker) *brokerMetrics {
	m := &brokerMetrics{reg: prometheus.NewRegistry(), partitions: newPartitionCollector(len(b.shards))}
	for range b.shards {
		m.perShard = append(m.perShard, newRequestMetrics())
	}
	m.partitions.topicSize = func(topic string) int {
		if im := b.image.Load(); im != nil {
			if t, ok := im.TopicByName(topic); ok {
				return len(t.Partitions)
			}
		}
		return 0
	}
	m.reg.MustRegister(newRequestCollector(func() []*requestMetrics { return m.perShard }), m.partitions, newGroupCollector(b),
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
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
	shardGauge("strata_outbound_connections_open", "Open connections this broker dialed to other brokers (follower fetches).",
		func(s *ShardStats) int64 { return s.OutboundOpen.Load() })
	shardCounter("strata_outbound_connections_dialed_total", "Connections dialed to other brokers.",
		func(s *ShardStats) float64 { return float64(s.OutboundDialed.Load()) })
	shardCounter("strata_outbound_connections_closed_total", "Connections to other brokers closed, by either side or on an error.",
		func(s *ShardStats) float64 { return float64(s.OutboundClosed.Load()) })
	shardCounter("strata_outbound_bytes_in_total", "Bytes received on connections to other brokers (fetched frames included).",
		func(s *ShardStats) float64 { return float64(s.OutboundBytesIn.Load()) })
	shardCounter("strata_outbound_bytes_out_total", "Bytes sent on connections to other brokers.",
		func(s *ShardStats) float64 { return float64(s.OutboundBytesOut.Load()) })
	shardCounter("strata_outbound_receives_total", "Receives that brought bytes in on connections to other brokers.",
		func(s *ShardStats) float64 { return float64(s.OutboundRecvs.Load()) })
	shardGauge("strata_request_budget_used_bytes", "Bytes of the request budget reserved by large requests.",
		func(s *ShardStats) int64 { return s.RequestBudgetUsedBytes.Load() })
	shardGauge("strata_request_budget_waiting_connections", "Connections waiting for request budget, their receive stopped.",
		func(s *ShardStats) int64 { return s.RequestBudgetWaiting.Load() })
	return m
}

// forShard is the request metrics of one shard, written by its thread only.
func (m *brokerMetrics) forShard(id int) *requestMetrics { return m.perShard[id] }
