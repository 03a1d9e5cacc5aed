package server

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-db/strata/schema/fb"
)

// Request metrics are kept per shard and summed at scrape: every shard
// counts and times every request it serves, and a histogram shared by the
// shards would put one cache line of atomics under every core's requests.
// A shard's counters are written by its own thread only; the scrape reads
// them with atomic loads, so a scrape sees each counter whole (a histogram's
// buckets, count and sum are read one by one and may be a request apart).

// Latency buckets: latencyBucketFirstNs doubling latencyBucketCount times
// (25 µs to 3.3 s), plus the +Inf bucket.
const (
	latencyBucketFirstNs = 25_000
	latencyBucketCount   = 18
)

// latencyBoundsNs are the buckets' upper bounds; latencyBoundsSeconds the
// same in the unit Prometheus exposes.
var latencyBoundsNs, latencyBoundsSeconds = func() ([latencyBucketCount]int64, [latencyBucketCount]float64) {
	var ns [latencyBucketCount]int64
	var s [latencyBucketCount]float64
	b := int64(latencyBucketFirstNs)
	for i := range ns {
		ns[i], s[i] = b, float64(b)/1e9
		b *= 2
	}
	return ns, s
}()

// latencyHistogram is one shard's histogram of durations. Buckets are not
// cumulative here; the scrape accumulates them.
type latencyHistogram struct {
	buckets  [latencyBucketCount + 1]atomic.Uint64 // the last is +Inf
	count    atomic.Uint64
	sumNanos atomic.Uint64
}

func (h *latencyHistogram) observe(d time.Duration) {
	ns := max(d.Nanoseconds(), 0)
	i := 0
	for i < latencyBucketCount && ns > latencyBoundsNs[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sumNanos.Add(uint64(ns))
}

// apiLabels names the slots of the per-API series: every API the broker
// serves, and "unknown" for requests whose envelope could not be read (an
// invalid or oversized request) or names an API the broker does not serve.
const apiUnknownLabel = "unknown"

// apiSlotUnknown is the slot after the served APIs'.
var apiSlotUnknown = len(supportedAPIs)

// apiSlotOf maps an API key to its slot.
func apiSlotOf(k fb.ApiKey) int {
	for i, s := range supportedAPIs {
		if s == k {
			return i
		}
	}
	return apiSlotUnknown
}

// cacheLinePad keeps two shards' metrics off one cache line.
type cacheLinePad [64]byte

// requestMetrics are one shard's request series.
type requestMetrics struct {
	_ cacheLinePad
	// requests counts every request received, by API slot, whatever its
	// outcome.
	requests []atomic.Uint64
	// latency is the time from a request's arrival to its answer being
	// queued, by API slot; for Fetch it leaves out the long-poll wait.
	latency []latencyHistogram
	// fetchWait is the time fetches spent parked waiting for data.
	fetchWait latencyHistogram
	_         cacheLinePad
}

func newRequestMetrics() *requestMetrics {
	n := len(supportedAPIs) + 1
	return &requestMetrics{requests: make([]atomic.Uint64, n), latency: make([]latencyHistogram, n)}
}

// received counts one request of the API.
func (m *requestMetrics) received(api fb.ApiKey) { m.requests[apiSlotOf(api)].Add(1) }

// receivedUnknown counts a request whose envelope was never read.
func (m *requestMetrics) receivedUnknown() { m.requests[apiSlotUnknown].Add(1) }

// answered records the time a request took, from its arrival.
func (m *requestMetrics) answered(api fb.ApiKey, start time.Time) {
	m.latency[apiSlotOf(api)].observe(time.Since(start))
}

// answeredAfterWait records the time a request took apart from the time
// it waited (a long-polling fetch), and the wait on its own.
func (m *requestMetrics) answeredAfterWait(api fb.ApiKey, start time.Time, waited time.Duration) {
	m.latency[apiSlotOf(api)].observe(time.Since(start) - waited)
	m.fetchWait.observe(waited)
}

// answeredUnknown records the time an unreadable request took.
func (m *requestMetrics) answeredUnknown(start time.Time) {
	m.latency[apiSlotUnknown].observe(time.Since(start))
}

// requestCollector sums the shards' request metrics at scrape.
type requestCollector struct {
	shards    func() []*requestMetrics
	requests  *prometheus.Desc
	latency   *prometheus.Desc
	fetchWait *prometheus.Desc
}

func newRequestCollector(shards func() []*requestMetrics) *requestCollector {
	return &requestCollector{
		shards:   shards,
		requests: prometheus.NewDesc("strata_requests_total", "Requests received, by API (unknown: an envelope that could not be read, or an API the broker does not serve).", []string{"api"}, nil),
		latency: prometheus.NewDesc("strata_request_seconds",
			"Time from a request's arrival to its answer being queued, by API; for Fetch without the long-poll wait (strata_fetch_wait_seconds).", []string{"api"}, nil),
		fetchWait: prometheus.NewDesc("strata_fetch_wait_seconds", "Time fetches spent parked waiting for data or their deadline.", nil, nil),
	}
}

func (c *requestCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.latency
	ch <- c.fetchWait
}

func (c *requestCollector) Collect(ch chan<- prometheus.Metric) {
	shards := c.shards()
	for slot := range len(supportedAPIs) + 1 {
		label := apiUnknownLabel
		if slot < len(supportedAPIs) {
			label = supportedAPIs[slot].String()
		}
		var total uint64
		hists := make([]*latencyHistogram, 0, len(shards))
		for _, m := range shards {
			total += m.requests[slot].Load()
			hists = append(hists, &m.latency[slot])
		}
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(total), label)
		ch <- sumHistograms(c.latency, hists, label)
	}
	waits := make([]*latencyHistogram, 0, len(shards))
	for _, m := range shards {
		waits = append(waits, &m.fetchWait)
	}
	ch <- sumHistograms(c.fetchWait, waits)
}

// sumHistograms adds the shards' histograms into one Prometheus histogram.
func sumHistograms(desc *prometheus.Desc, hists []*latencyHistogram, labels ...string) prometheus.Metric {
	var counts [latencyBucketCount + 1]uint64
	var count, sumNanos uint64
	for _, h := range hists {
		for i := range counts {
			counts[i] += h.buckets[i].Load()
		}
		count += h.count.Load()
		sumNanos += h.sumNanos.Load()
	}
	cumulative := make(map[float64]uint64, latencyBucketCount)
	var running uint64
	for i := range latencyBucketCount {
		running += counts[i]
		cumulative[latencyBoundsSeconds[i]] = running
	}
	// The count is read after the buckets, so it is at least their sum; a
	// request observed in between shows in the count and the next scrape's
	// buckets.
	count = max(count, running+counts[latencyBucketCount])
	return prometheus.MustNewConstHistogram(desc, count, float64(sumNanos)/1e9, cumulative, labels...)
}
