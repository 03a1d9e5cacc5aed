package server

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-db/strata/schema/fb"
)

// gathered is one scrape of a broker's registry.
type gathered map[string]*dto.MetricFamily

func gather(t *testing.T, b *Broker) gathered {
	t.Helper()
	fams, err := b.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	g := gathered{}
	for _, f := range fams {
		g[f.GetName()] = f
	}
	return g
}

// metric is the series of family name whose labels include every pair of
// labels (name, value, name, value, ...), or nil.
func (g gathered) metric(name string, labels ...string) *dto.Metric {
	f := g[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

func (g gathered) requests(api string) uint64 {
	if m := g.metric("strata_requests_total", "api", api); m != nil {
		return uint64(m.GetCounter().GetValue())
	}
	return 0
}

func (g gathered) latencyCount(api string) uint64 {
	if m := g.metric("strata_request_seconds", "api", api); m != nil {
		return m.GetHistogram().GetSampleCount()
	}
	return 0
}

// waitMetrics scrapes until ok holds of a scrape: a shard records an
// answer's latency on its own thread, at about the time the answer leaves.
func waitMetrics(t *testing.T, b *Broker, what string, ok func(gathered) bool) gathered {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := gather(t, b)
		if ok(g) {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRequestMetricsCountEveryAPI sends requests of every API, over
// connections spread across two shards, and an unreadable request: each is
// counted under its API, and each answered one is timed.
func TestRequestMetricsCountEveryAPI(t *testing.T) {
	b := startBroker(t, t.TempDir(), 2)
	defer b.Stop()
	want := map[string]uint64{}
	var clients []*testClient
	for range 4 {
		clients = append(clients, newTestClient(t, b.Addr().String()))
	}
	if code := clients[0].createTopic("counted", 2); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	want["CreateTopics"]++
	for i, c := range clients {
		c.call(&fb.MessageT{Type: fb.MessageApiVersionsRequest, Value: &fb.ApiVersionsRequestT{}})
		c.call(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{}})
		env, _ := c.call(produceMsg(fb.AcksAll, "counted", int32(i%2), batch(t, i*10, 10, 1000)))
		if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("produce: %v", r.ErrorCode)
		}
		c.call(fetchMsg("counted", int32(i%2), 0, 0, 0))
		c.call(&fb.MessageT{Type: fb.MessageListOffsetsRequest, Value: &fb.ListOffsetsRequestT{Topics: []*fb.ListOffsetsTopicT{
			{Name: "counted", Partitions: []*fb.ListOffsetsPartitionT{{Partition: 0, CurrentLeaderEpoch: -1, Timestamp: -1}}}}}})
		for _, api := range []string{"ApiVersions", "Metadata", "Produce", "Fetch", "ListOffsets"} {
			want[api]++
		}
	}
	// An envelope that cannot be read is counted, answered and closed.
	bad := newTestClient(t, b.Addr().String())
	garbage := make([]byte, 4+64)
	binary.LittleEndian.PutUint32(garbage, 64)
	for i := 4; i < len(garbage); i++ {
		garbage[i] = 0xa5
	}
	if _, err := bad.conn.Write(garbage); err != nil {
		t.Fatal(err)
	}
	env, _ := bad.recv()
	if env.ErrorCode != fb.ErrorCodeInvalidRequest {
		t.Fatalf("garbage answered with %v", env.ErrorCode)
	}
	want["unknown"]++

	g := waitMetrics(t, b, "every answer timed", func(g gathered) bool {
		for api, n := range want {
			if g.latencyCount(api) != n {
				return false
			}
		}
		return true
	})
	for api, n := range want {
		if got := g.requests(api); got != n {
			t.Errorf("strata_requests_total{api=%q} = %d, want %d", api, got, n)
		}
	}
	for _, api := range []string{"DeleteTopics", "DescribeQuorum"} {
		if m := g.metric("strata_requests_total", "api", api); m == nil || m.GetCounter().GetValue() != 0 {
			t.Errorf("strata_requests_total{api=%q}: %v, want a zero series", api, m)
		}
	}
	// Partition 0 took client 0's batch and then client 2's; client 0's
	// fetch read the first, client 2's both.
	first, second := len(batch(t, 0, 10, 1000)), len(batch(t, 20, 10, 1000))
	out := g.metric("strata_partition_bytes_out_total", "topic", "counted", "partition", "0")
	in := g.metric("strata_partition_bytes_in_total", "topic", "counted", "partition", "0")
	if in.GetCounter().GetValue() != float64(first+second) || out.GetCounter().GetValue() != float64(2*first+second) {
		t.Errorf("partition 0: bytes in %v, bytes out %v; want %d and %d", in, out, first+second, 2*first+second)
	}
}

// TestFetchLatencyLeavesOutLongPollWait parks a fetch on an empty partition
// until its wait runs out: the wait is counted in strata_fetch_wait_seconds
// and left out of the fetch's strata_request_seconds.
func TestFetchLatencyLeavesOutLongPollWait(t *testing.T) {
	b := startBroker(t, t.TempDir(), 1)
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("quiet", 1); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	const waitMs = 1500
	env, _ := c.call(fetchMsg("quiet", 0, 0, waitMs, 1))
	if fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; fr.ErrorCode != fb.ErrorCodeNone || fr.FramesBytes != 0 {
		t.Fatalf("fetch of an empty partition: %v, %d bytes", fr.ErrorCode, fr.FramesBytes)
	}
	g := waitMetrics(t, b, "the fetch timed", func(g gathered) bool { return g.latencyCount("Fetch") == 1 })
	wait := g.metric("strata_fetch_wait_seconds").GetHistogram()
	serve := g.metric("strata_request_seconds", "api", "Fetch").GetHistogram()
	if wait.GetSampleCount() != 1 {
		t.Fatalf("strata_fetch_wait_seconds count %d, want 1", wait.GetSampleCount())
	}
	// The fetch parked right after its first round and left at its
	// deadline, so nearly all of waitMs was spent parked.
	if wait.GetSampleSum() < waitMs/1000.0*2/3 {
		t.Errorf("fetch waited %.3f s parked, want most of %d ms", wait.GetSampleSum(), waitMs)
	}
	if serve.GetSampleSum() >= wait.GetSampleSum() {
		t.Errorf("fetch latency %.3f s includes its %.3f s wait", serve.GetSampleSum(), wait.GetSampleSum())
	}
}

// TestLatencyHistogramBuckets checks bucket edges and the sum across
// shards, against the bounds the scrape names.
func TestLatencyHistogramBuckets(t *testing.T) {
	var a, b latencyHistogram
	a.observe(latencyBucketFirstNs)     // on the first bound: bucket 0
	a.observe(latencyBucketFirstNs + 1) // just past it: bucket 1
	b.observe(-time.Second)             // a clock step back counts as 0
	b.observe(time.Hour)                // past every bound: +Inf
	if a.buckets[0].Load() != 1 || a.buckets[1].Load() != 1 || b.buckets[0].Load() != 1 || b.buckets[latencyBucketCount].Load() != 1 {
		t.Fatalf("buckets a %v b %v", a.buckets[:2], b.buckets[:])
	}
	c := newRequestCollector(nil)
	var m dto.Metric
	if err := sumHistograms(c.fetchWait, []*latencyHistogram{&a, &b}).Write(&m); err != nil {
		t.Fatal(err)
	}
	h := m.GetHistogram()
	if h.GetSampleCount() != 4 {
		t.Fatalf("count %d, want 4", h.GetSampleCount())
	}
	if want := (2*latencyBucketFirstNs + 1 + float64(time.Hour)) / 1e9; h.GetSampleSum() != want {
		t.Fatalf("sum %v, want %v", h.GetSampleSum(), want)
	}
	bk := h.GetBucket()
	if len(bk) != latencyBucketCount || bk[0].GetUpperBound() != 25e-6 || bk[0].GetCumulativeCount() != 2 ||
		bk[1].GetCumulativeCount() != 3 || bk[latencyBucketCount-1].GetCumulativeCount() != 3 {
		t.Fatalf("buckets %v", bk)
	}
}

// TestPartitionSeriesOutliveAReopen opens a partition's series twice (a
// partition opened again while its old instance closes) and drops one:
// the series stay, and go with the last drop.
func TestPartitionSeriesOutliveAReopen(t *testing.T) {
	c := newPartitionCollector(2)
	old := c.forPartition("t", 0)
	old.appended(100, 1, 1)
	old.sent(1, 40)
	reopened := c.forPartition("t", 0)
	if reopened != old {
		t.Fatal("a reopened partition got new series")
	}
	c.drop("t", 0)
	if c.series[partitionKey{"t", 0}] == nil {
		t.Fatal("series dropped while a partition still holds them")
	}
	reopened.sent(0, 2)
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var values []float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		values = append(values, d.GetCounter().GetValue()+d.GetGauge().GetValue())
	}
	// The four traffic series come first; the replication series of a
	// partition without a machine (leader and under-replicated 0, high
	// watermark, shrinks, expands) follow.
	if len(values) != 9 || values[0] != 100 || values[1] != 1 || values[2] != 42 || values[3] != 1 {
		t.Fatalf("series %v, want in 100, records 1, out 42, end 1", values)
	}
	c.drop("t", 0)
	if len(c.series) != 0 {
		t.Fatal("series left after the last drop")
	}
}
