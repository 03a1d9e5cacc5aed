package server

import (
	"fmt"
	"math"
	"time"
)

// Hot partitions (docs/operations.md, "Hot partitions"). Each partition's
// owning shard counts the produce traffic it appends as the partition's
// leader (a follower's replicated appends are not traffic sent to it) in a
// sliding window of buckets: the rate is the window's bytes and records
// over the time it covers. A partition is hot when its rate is far above
// the mean of its topic's other partitions (HotPartitions); the mean needs every
// partition's rate, which only a reader of every leader has: `strata topic
// describe` reads them from each leader's DescribeLogDirs, and a Prometheus
// rule from every broker's series. A broker alone flags, in
// strata_partition_hot, the partitions that are hot among those of their
// topic that it leads.

const (
	// HotPartitionWindowDefault is the span a partition's produce rate is
	// taken over when BrokerConfig.HotPartitionWindow is 0.
	HotPartitionWindowDefault = time.Minute
	// HotPartitionWindowMin is the shortest window accepted: below it a
	// bucket would be shorter than the shard's tick, which publishes the
	// rates, and a rate would follow single requests.
	HotPartitionWindowMin = time.Second
	// rateBuckets is how many buckets a window holds: the window slides by
	// one bucket (10 s of the default window), so the oldest traffic
	// leaves it in steps of a sixth of it.
	rateBuckets = 6
	// HotFactor is how many times the mean rate of its topic's other
	// partitions a partition's rate must pass to be hot.
	HotFactor = 4
	// HotBytesFloorPerSec and HotRecordsFloorPerSec are the rates a hot
	// partition must also reach, in bytes or in records: a topic that
	// barely moves (one record a minute, all on one partition) is skewed
	// but is no load, and is not flagged.
	HotBytesFloorPerSec   = 64 << 10
	HotRecordsFloorPerSec = 1000
	// ratePublishIntervalMs is how often the owning shard publishes a
	// partition's rates to its metrics for the scrape to read.
	ratePublishIntervalMs = 1000
)

// hotPartitionWindow checks a configured window: 0 means the default.
func hotPartitionWindow(d time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return HotPartitionWindowDefault, nil
	case d < HotPartitionWindowMin:
		return 0, fmt.Errorf("server: hot partition window %v is below the minimum %v", d, HotPartitionWindowMin)
	}
	return d, nil
}

// rateWindow is one partition's produce traffic over the last window, in
// rateBuckets buckets of bucketMs each. It is sans-IO: the caller gives
// the time. Its owning shard is its only user.
type rateWindow struct {
	bucketMs int64
	// epoch is the leader epoch the window counts for, and sinceMs when
	// it began to: a replica that becomes leader starts from nothing, and
	// its rate is taken over the time it has led while that is shorter
	// than the window.
	epoch   int32
	sinceMs int64
	started bool
	buckets [rateBuckets]rateBucket
}

// rateBucket is one bucket's traffic; n is its number (its start over
// bucketMs), which tells a bucket of this turn of the ring from one of an
// older turn.
type rateBucket struct {
	n       int64
	bytes   uint64
	records uint64
}

func newRateWindow(window time.Duration) rateWindow {
	return rateWindow{bucketMs: max(window.Milliseconds()/rateBuckets, 1)}
}

// startEpoch starts counting afresh for leader epoch epoch unless the
// window already counts for it.
func (w *rateWindow) startEpoch(epoch int32, nowMs int64) {
	if w.started && w.epoch == epoch {
		return
	}
	w.started, w.epoch, w.sinceMs = true, epoch, nowMs
	w.buckets = [rateBuckets]rateBucket{}
}

func (w *rateWindow) bucket(nowMs int64) int64 {
	n := nowMs / w.bucketMs
	if nowMs < 0 && nowMs%w.bucketMs != 0 {
		n-- // floor, not truncation
	}
	return n
}

// add counts traffic appended at nowMs.
func (w *rateWindow) add(nowMs int64, bytes, records uint64) {
	n := w.bucket(nowMs)
	b := &w.buckets[((n%rateBuckets)+rateBuckets)%rateBuckets]
	if b.n != n {
		*b = rateBucket{n: n}
	}
	b.bytes += bytes
	b.records += records
}

// rates is the traffic per second over the window ending at nowMs: the
// buckets of the last rateBuckets numbers (the current one partly
// passed), over the time they cover, or over the time since the window
// started when that is shorter; never over less than one bucket, so that
// the first request after a start does not read as a burst.
func (w *rateWindow) rates(nowMs int64) (bytesPerSec, recordsPerSec float64) {
	cur := w.bucket(nowMs)
	var bytes, records uint64
	for i := range w.buckets {
		if b := &w.buckets[i]; b.n > cur-rateBuckets && b.n <= cur {
			bytes += b.bytes
			records += b.records
		}
	}
	if bytes == 0 && records == 0 {
		return 0, 0
	}
	start := (cur - rateBuckets + 1) * w.bucketMs
	if w.started {
		start = max(start, w.sinceMs)
	}
	spanMs := max(nowMs-start, w.bucketMs)
	return float64(bytes) * 1000 / float64(spanMs), float64(records) * 1000 / float64(spanMs)
}

// PartitionRate is one partition's produce traffic per second.
type PartitionRate struct {
	BytesPerSec   float64
	RecordsPerSec float64
}

// HotPartitions judges the partitions of one topic whose rates are known:
// hot[i] is partition i's rate as a multiple of the mean rate of the
// topic's *other* partitions, in bytes or in records, where that multiple
// passes HotFactor and the rate reaches its floor (HotBytesFloorPerSec,
// HotRecordsFloorPerSec); 0 where the partition is not hot. Where the
// others carry nothing the multiple is +Inf: the partition has all of the
// topic's traffic. Where both measures make it hot, the larger multiple is
// given. The others' mean, not the whole topic's, is the yardstick so that
// a topic of few partitions can have a hot one: all traffic on one of 3
// partitions is only 3 times the topic's mean, however large it is.
func HotPartitions(rates []PartitionRate) []float64 {
	hot := make([]float64, len(rates))
	if len(rates) < 2 {
		return hot
	}
	var bytes, records float64
	for _, r := range rates {
		bytes += r.BytesPerSec
		records += r.RecordsPerSec
	}
	others := float64(len(rates) - 1)
	factor := func(rate, total, floor float64) float64 {
		if rate < floor || math.IsNaN(rate) {
			return 0
		}
		mean := (total - rate) / others
		if mean <= 0 {
			return math.Inf(1)
		}
		if f := rate / mean; f > HotFactor {
			return f
		}
		return 0
	}
	for i, r := range rates {
		hot[i] = max(factor(r.BytesPerSec, bytes, HotBytesFloorPerSec), factor(r.RecordsPerSec, records, HotRecordsFloorPerSec))
	}
	return hot
}

// countIn counts a produce part the partition appended, while it leads.
func (p *partition) countIn(bytes, records uint64) {
	if !p.leads() {
		return
	}
	now := nowMs()
	p.inRate.startEpoch(p.rep.m.LeaderEpoch(), now)
	p.inRate.add(now, bytes, records)
}

// inRates is the partition's produce rate over the window ending at nowMs;
// ok is false where this replica does not lead it (or its log is offline),
// which has no produce rate to say.
func (p *partition) inRates(nowMs int64) (r PartitionRate, ok bool) {
	if !p.leads() || p.offline() {
		return PartitionRate{}, false
	}
	p.inRate.startEpoch(p.rep.m.LeaderEpoch(), nowMs)
	r.BytesPerSec, r.RecordsPerSec = p.inRate.rates(nowMs)
	return r, true
}

// publishRates hands the rates to the partition's metrics on the shard's
// first tick of each ratePublishIntervalMs of the clock: every partition
// publishes at about the same time, on every shard, so a scrape compares
// rates of one moment (a rate rising under new traffic, published a
// second apart, would read as a skew). The tick also notices a replica
// become leader, so its window starts then and not at its first produce.
func (p *partition) publishRates(nowMs int64) {
	if p.ratePublishMs != 0 && nowMs/ratePublishIntervalMs == p.ratePublishMs/ratePublishIntervalMs {
		return
	}
	p.ratePublishMs = nowMs
	r, ok := p.inRates(nowMs)
	p.metrics.publishRates(r, ok)
}
