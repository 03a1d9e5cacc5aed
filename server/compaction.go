package server

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/segment/ringlog"
	"github.com/strata-db/strata/server/metadata"
)

// Compaction in the broker (cleanup.policy=compact or compact,delete; the
// cleaner itself is segment/compact.go). Each shard cleans the compacted
// partitions it owns, one round at a time per shard (Kafka's one cleaner
// thread: the key map's memory, segment.CompactionConfig.OffsetMapBytes,
// is then bounded per shard, a share of --log-cleaner-dedupe-buffer-size,
// and its I/O a share of --log-cleaner-io-max-bytes-per-second): on its tick it plans a round for the next
// partition due (on the shard: it reads the log's segments), builds it on a
// goroutine of its own (it reads closed segments and writes the cleaned
// files through descriptors of its own, while the shard goes on serving),
// and, on a later tick that finds the build done, swaps it in on the
// shard. A round reads only below the partition's high watermark. A
// partition is looked at again cleanerBackoffMax after a look that found
// no round due (Kafka's log.cleaner.backoff.ms), or sooner with a shorter
// retention check interval. Replaced segments' data files stay open while
// fetch answers hold them (segment_holds.go), as for retention.
//
// cleanup.policy=compact alone turns retention.ms and retention.bytes off
// (applyCleanupPolicy); compact,delete applies both.
//
// Records without a key would be kept by the cleaner for ever; a produce
// to a compacted topic refuses them as Kafka does (keylessRecord,
// api_produce.go).

// cleanerBackoffMaxMs is Kafka's log.cleaner.backoff.ms default.
const cleanerBackoffMaxMs = 15_000

// The cleaner's broker settings (BrokerConfig). Both are for the whole
// broker and split equally among its shards, each of which runs one round
// at a time: Kafka splits log.cleaner.dedupe.buffer.size and
// log.cleaner.io.max.bytes.per.second among its cleaner threads the same
// way.
const (
	// LogCleanerDedupeBufferBytesDefault is the memory of the cleaners'
	// key maps (Kafka's log.cleaner.dedupe.buffer.size), 24 bytes a key
	// and full at 90%. Smaller than Kafka's 128 MiB: a shard allocates
	// its share for each round, and a broker has a shard per core.
	LogCleanerDedupeBufferBytesDefault = 32 << 20
	// LogCleanerDedupeBufferBytesPerShardMin is the least share a shard
	// may get (about 39,000 keys a round).
	LogCleanerDedupeBufferBytesPerShardMin = 1 << 20
	// LogCleanerIOMaxBytesPerSecondDefault: no throttle (Kafka's default
	// is unlimited too).
	LogCleanerIOMaxBytesPerSecondDefault = 0
)

// cleanerShares checks the cleaner settings and returns each shard's
// share: 0 means the default; a throttle of 0 is none.
func cleanerShares(dedupeBytes, ioBytesPerSecond int64, shards int) (mapBytes, ioRate int64, err error) {
	if dedupeBytes == 0 {
		dedupeBytes = LogCleanerDedupeBufferBytesDefault
	}
	if dedupeBytes < LogCleanerDedupeBufferBytesPerShardMin*int64(shards) {
		return 0, 0, fmt.Errorf("server: log cleaner dedupe buffer of %d bytes is below %d bytes for each of %d shards",
			dedupeBytes, LogCleanerDedupeBufferBytesPerShardMin, shards)
	}
	if ioBytesPerSecond < 0 {
		return 0, 0, fmt.Errorf("server: log cleaner I/O throttle %d bytes/s is negative", ioBytesPerSecond)
	}
	mapBytes = dedupeBytes / int64(shards)
	if ioBytesPerSecond > 0 {
		ioRate = max(1, ioBytesPerSecond/int64(shards))
	}
	return mapBytes, ioRate, nil
}

// shardCompaction is a shard's cleaner: the round in flight and when each
// compacted partition is due for a look.
type shardCompaction struct {
	job   *segment.CompactionJob
	jobOf *partition
	built chan error // Build's result; buffered, so the goroutine never waits
	done  bool       // built was received
	err   error
	due   map[*partition]int64 // wall clock ms of the next look
}

// applyCleanupPolicy switches retention off for a compact-only topic.
func applyCleanupPolicy(configs map[string]string, cfg *segment.Config) {
	if configs[metadata.ConfigCleanupPolicy] == metadata.CleanupCompact {
		cfg.RetentionMs, cfg.RetentionBytes = segment.Unlimited, segment.Unlimited
	}
}

// compactionConfig reads a topic's cleaner settings; ok is false when the
// topic is not compacted.
func compactionConfig(configs map[string]string) (cfg segment.CompactionConfig, ok bool, err error) {
	switch configs[metadata.ConfigCleanupPolicy] {
	case metadata.CleanupCompact, metadata.CleanupCompactDelete:
	default:
		return cfg, false, nil
	}
	if v, has := configs[metadata.ConfigMinCleanableDirtyRatio]; has {
		if cfg.MinCleanableDirtyRatio, err = strconv.ParseFloat(v, 64); err != nil {
			return cfg, false, err
		}
		if cfg.MinCleanableDirtyRatio == 0 {
			// The cleaner reads 0 as its default; a ratio of 0 means
			// any dirty byte makes a round due.
			cfg.MinCleanableDirtyRatio = minCleanableRatioAny
		}
	}
	for key, dst := range map[string]*int64{
		metadata.ConfigMinCompactionLagMs: &cfg.MinCompactionLagMs,
		metadata.ConfigMaxCompactionLagMs: &cfg.MaxCompactionLagMs,
		metadata.ConfigDeleteRetentionMs:  &cfg.DeleteRetentionMs,
	} {
		if v, has := configs[key]; has {
			if *dst, err = strconv.ParseInt(v, 10, 64); err != nil {
				return cfg, false, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	if v, has := configs[metadata.ConfigDeleteRetentionMs]; has && v == "0" {
		// As for the ratio: 0 would read as the default.
		cfg.DeleteRetentionMs = deleteRetentionNone
	}
	return cfg, true, nil
}

const (
	// minCleanableRatioAny is the smallest ratio above 0: any dirty
	// byte is enough.
	minCleanableRatioAny = 1e-300
	// deleteRetentionNone keeps a tombstone not a millisecond past its
	// segment's first cleaning.
	deleteRetentionNone = 1
)

// compactPartitions runs the shard's cleaner for one tick: it finishes the
// round whose build is done, or plans the next one due.
func (bs *brokerShard) compactPartitions(now int64) {
	if bs.compaction == nil {
		bs.compaction = &shardCompaction{built: make(chan error, 1), due: map[*partition]int64{}}
	}
	sc := bs.compaction
	if sc.job != nil {
		bs.finishCompaction(sc)
		return
	}
	for p := range sc.due {
		if p.closing || bs.slots[p.slot] != p {
			delete(sc.due, p)
		}
	}
	if bs.image == nil {
		return
	}
	backoff := min(int64(cleanerBackoffMaxMs), bs.b.cfg.LogRetentionCheckInterval.Milliseconds())
	for _, p := range bs.slots {
		if p == nil || p.closing || p.offline() {
			continue
		}
		if next, seen := sc.due[p]; seen && now < next {
			continue
		}
		t, ok := bs.image.TopicByName(p.topic)
		if !ok {
			continue
		}
		cfg, compacted, err := compactionConfig(t.Configs)
		if !compacted || err != nil {
			continue
		}
		cfg.OffsetMapBytes, cfg.IOBytesPerSecond = bs.b.cleanerMapBytes, bs.b.cleanerIORate
		sc.due[p] = now + backoff
		job, err := p.log.PlanCompaction(cfg, now, p.highWatermark())
		if err != nil {
			bs.b.log.Warn("compaction plan", "topic", p.topic, "partition", p.index, "err", err)
			bs.checkStorage(p)
			continue
		}
		if job == nil {
			continue
		}
		sc.job, sc.jobOf, sc.done, sc.err = job, p, false, nil
		go func(built chan<- error) { built <- job.Build() }(sc.built)
		return
	}
}

// finishCompaction swaps in the round in flight once its build is done. A
// log that refuses for now (a roll's syncs are in flight) is tried again
// on the next tick.
func (bs *brokerShard) finishCompaction(sc *shardCompaction) {
	if !sc.done {
		select {
		case sc.err = <-sc.built:
			sc.done = true
		default:
			return
		}
	}
	p, job := sc.jobOf, sc.job
	if p.closing || bs.slots[p.slot] != p || sc.err != nil {
		if sc.err != nil && !p.closing {
			bs.b.log.Warn("compaction build", "topic", p.topic, "partition", p.index, "err", sc.err)
		}
		p.log.AbortCompaction(job)
		sc.job, sc.jobOf = nil, nil
		return
	}
	res, err := p.log.FinishCompaction(job)
	if errors.Is(err, ringlog.ErrBusy) {
		return
	}
	sc.job, sc.jobOf = nil, nil
	switch {
	case errors.Is(err, segment.ErrCompactionStale):
		// Retention or a truncation ran meanwhile: the next look plans
		// again.
		delete(sc.due, p)
	case err != nil:
		bs.b.log.Warn("compaction swap", "topic", p.topic, "partition", p.index, "err", err)
		bs.checkStorage(p)
	default:
		bs.b.log.Debug("compacted", "topic", p.topic, "partition", p.index,
			"cleanedUpTo", res.CleanedUpTo, "segmentsRewritten", res.SegmentsRewritten,
			"segmentsRemoved", res.SegmentsRemoved, "recordsRemoved", res.RecordsRemoved,
			"bytesBefore", res.BytesBefore, "bytesAfter", res.BytesAfter,
			"bytesRead", res.BytesRead, "bytesWritten", res.BytesWritten, "throttledFor", res.ThrottledFor)
		if res.CleanedUpTo < p.highWatermark() {
			// The map filled before the dirty section ended: go on at
			// the next tick.
			delete(sc.due, p)
		}
	}
}
