package server

import (
	"fmt"
	"maps"
	"strconv"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/metadata"
)

// Topic configs at run time. A partition keeps the configs it runs with;
// when the image brings a topic's new ones (a TopicConfig record, from
// IncrementalAlterConfigs), applyImage hands them to reconfigure, on the
// partition's shard, before stepping its replica machine:
//
//   - segment.bytes and segment.ms: the active segment rolls by the new
//     bounds at its next append; closed segments keep their size.
//   - retention.ms, retention.bytes and cleanup.policy (which turns
//     retention off for compact alone): a retention check runs at the
//     shard's next tick rather than at the next interval.
//   - cleanup.policy and the compaction settings: the cleaner reads them
//     from the image at each look (compaction.go).
//   - flush.policy: the log and the replica machine switch at once
//     (ringlog.Log.Reconfigure, replica.Partition.SetAckUnsynced).
//   - max.message.bytes and compression.type: the next produce is checked
//     by the new values.
//   - min.insync.replicas and unclean.leader.election.enable: the replica
//     machine hears the first from every image (replicaImage); the
//     controller applies the second in its elections.
//
// partitions grows through CreatePartitions, and replication.factor never
// changes; the controller refuses both as configs.

// partitionLimits are the settings a produce is checked by.
type partitionLimits struct {
	maxMessageBytes int
	// compression is the codec every frame must carry, or -1 for any
	// (compression.type producer).
	compression int
	// compacted: cleanup.policy holds compact, so every produced record
	// needs a key (api_produce.go).
	compacted bool
}

// limitsOf reads a topic's produce limits; cfg is its log config.
func limitsOf(configs map[string]string, cfg segment.Config) partitionLimits {
	l := partitionLimits{maxMessageBytes: defaultMaxMessageBytes, compression: -1}
	if v, ok := configs[metadata.ConfigMaxMessageBytes]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			l.maxMessageBytes = min(n, schema.MaxFrameBytes)
		}
	}
	if cfg.SegmentBytes > 0 {
		// A frame must fit a segment: the log would refuse it after the
		// replica machine had placed it.
		l.maxMessageBytes = min(l.maxMessageBytes, int(cfg.SegmentBytes))
	}
	switch configs[metadata.ConfigCompressionType] {
	case metadata.CompressionUncompressed:
		l.compression = schema.CompressionNone
	case metadata.CompressionLZ4:
		l.compression = schema.CompressionLZ4
	}
	_, l.compacted, _ = compactionConfig(configs)
	return l
}

// compressionName names a frame codec as compression.type does.
func compressionName(codec uint16) string {
	switch codec {
	case schema.CompressionNone:
		return metadata.CompressionUncompressed
	case schema.CompressionLZ4:
		return metadata.CompressionLZ4
	}
	return fmt.Sprintf("codec %d", codec)
}

// reconfigure applies a topic's new configs to one open partition. The
// controller checked them, so a log that refuses them is a bug; it is
// logged and the partition keeps the settings it had.
func (bs *brokerShard) reconfigure(p *partition, t metadata.TopicInfo) {
	if maps.Equal(p.configs, t.Configs) {
		return
	}
	cfg, err := logConfig(t.Configs, bs.b.cfg.SegmentAllocateStepBytes)
	if err == nil {
		err = p.log.Reconfigure(cfg)
	}
	if err != nil {
		bs.b.log.Warn("topic configs not applied", "topic", p.topic, "partition", p.index, "err", err)
		bs.checkStorage(p)
		return
	}
	p.configs = t.Configs
	p.limits = limitsOf(t.Configs, cfg)
	if everyAck := cfg.Flush == segment.FlushEveryAck; everyAck != p.everyAck {
		p.everyAck = everyAck
		if p.rep != nil {
			p.rep.m.SetAckUnsynced(!everyAck)
			p.runReady()
		}
	}
	// Retention by the new bounds at the next tick, not the next interval.
	p.retentionDue = true
	bs.b.log.Debug("topic configs applied", "topic", p.topic, "partition", p.index)
}

// The segment allocation step is broker-wide: how far each partition's
// active segment files grow at a time (fallocate; segment/core_grow.go).
// It is no topic config: a topic's segment.bytes only caps it.
const (
	// SegmentAllocateStepBytesDefault is segment.Config's default step
	// (Redpanda's segment_fallocation_step).
	SegmentAllocateStepBytesDefault = 32 << 20
	// SegmentAllocateStepBytesMin is one page: a smaller step still
	// allocates whole file system blocks, and only costs more fallocates.
	SegmentAllocateStepBytesMin = 4096
	// SegmentAllocateStepBytesMax is the largest segment.bytes (and its
	// default): a larger step could never be taken.
	SegmentAllocateStepBytesMax = 1 << 30
)

// segmentAllocateStep checks a configured allocation step: 0 means the
// default.
func segmentAllocateStep(n int64) (int64, error) {
	switch {
	case n == 0:
		return SegmentAllocateStepBytesDefault, nil
	case n < SegmentAllocateStepBytesMin || n > SegmentAllocateStepBytesMax:
		return 0, fmt.Errorf("server: segment allocate step %d bytes not in [%d, %d]",
			n, SegmentAllocateStepBytesMin, SegmentAllocateStepBytesMax)
	}
	return n, nil
}
