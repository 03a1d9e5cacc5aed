package metadata

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Topic config keys. A topic's config map holds only these keys, each with
// a value in normal form (integers without leading zeros or signs other than
// "-", booleans as "true"/"false"), so that two nodes that applied the same
// records hold byte-identical maps.
const (
	ConfigPartitions            = "partitions"
	ConfigReplicationFactor     = "replication.factor"
	ConfigSegmentBytes          = "segment.bytes"
	ConfigSegmentMs             = "segment.ms"
	ConfigRetentionMs           = "retention.ms"
	ConfigRetentionBytes        = "retention.bytes"
	ConfigFlushPolicy           = "flush.policy"
	ConfigMaxMessageBytes       = "max.message.bytes"
	ConfigUncleanLeaderElection = "unclean.leader.election.enable"
	ConfigMinInsyncReplicas     = "min.insync.replicas"
	// Compaction (segment/compact.go), with Kafka's names and defaults.
	ConfigCleanupPolicy          = "cleanup.policy"
	ConfigMinCleanableDirtyRatio = "min.cleanable.dirty.ratio"
	ConfigMinCompactionLagMs     = "min.compaction.lag.ms"
	ConfigMaxCompactionLagMs     = "max.compaction.lag.ms"
	ConfigDeleteRetentionMs      = "delete.retention.ms"
	// ConfigCompressionType is the codec a topic's batches must carry:
	// producer (any), uncompressed or lz4. The broker never recompresses,
	// so a named codec refuses batches in another (docs/storage.md).
	ConfigCompressionType = "compression.type"
)

// compression.type values, with Kafka's names.
const (
	CompressionProducer     = "producer"
	CompressionUncompressed = "uncompressed"
	CompressionLZ4          = "lz4"
)

// cleanup.policy values: delete (retention only, the default), compact
// (compaction only: retention.ms and retention.bytes do not apply), or
// both. The normal form of both is "compact,delete".
const (
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
)

// Bounds on config values.
const (
	// minSegmentBytes is one page: a smaller segment could not hold the
	// preallocated header and a frame.
	minSegmentBytes = 4096
	// maxSegmentBytes keeps segment offsets within 32 bits.
	maxSegmentBytes = 1 << 30
	// maxMessageBytesLimit is the largest batch a topic may accept.
	maxMessageBytesLimit = 1 << 30
	// maxFlushIntervalMs bounds "interval:<ms>" at one hour.
	maxFlushIntervalMs = 3600 * 1000
	// unlimited is the value of retention.ms and retention.bytes that turns
	// that retention off.
	unlimited = -1
)

// Flush policies (see DESIGN.md "Storage"): fdatasync before acknowledging
// acks=all writes (the default), every interval, or never.
const (
	FlushSync             = "sync"
	FlushNever            = "never"
	flushIntervalPrefix   = "interval:"
	maxConfigEntries      = numConfigKeys
	numConfigKeys         = 16
	configIntegerMaxDigit = 20
)

// configSpec says how one key's value is checked and normalised.
type configSpec struct {
	normalize func(string) (string, error)
}

var configSpecs = map[string]configSpec{
	ConfigPartitions:             {intRange(1, maxPartitionsPerTopic)},
	ConfigReplicationFactor:      {intRange(1, maxReplicationFactor)},
	ConfigSegmentBytes:           {intRange(minSegmentBytes, maxSegmentBytes)},
	ConfigSegmentMs:              {intRange(1, 1<<62)},
	ConfigRetentionMs:            {intRange(unlimited, 1<<62)},
	ConfigRetentionBytes:         {intRange(unlimited, 1<<62)},
	ConfigFlushPolicy:            {flushPolicy},
	ConfigMaxMessageBytes:        {intRange(1, maxMessageBytesLimit)},
	ConfigUncleanLeaderElection:  {boolean},
	ConfigMinInsyncReplicas:      {intRange(1, maxReplicationFactor)},
	ConfigCleanupPolicy:          {cleanupPolicy},
	ConfigMinCleanableDirtyRatio: {ratio},
	ConfigMinCompactionLagMs:     {intRange(0, 1<<62)},
	ConfigMaxCompactionLagMs:     {intRange(1, math.MaxInt64)},
	ConfigDeleteRetentionMs:      {intRange(0, 1<<62)},
	ConfigCompressionType:        {compressionType},
}

// compressionType accepts producer, uncompressed or lz4; gzip, snappy and
// zstd, which Kafka knows, are refused by name: Strata's frames carry no
// such codec.
func compressionType(v string) (string, error) {
	switch v {
	case CompressionProducer, CompressionUncompressed, CompressionLZ4:
		return v, nil
	case "gzip", "snappy", "zstd":
		return "", fmt.Errorf("%q is not a codec Strata's frames carry; use %s, %s or %s", v, CompressionProducer, CompressionUncompressed, CompressionLZ4)
	}
	return "", fmt.Errorf("%q is not %s, %s or %s", v, CompressionProducer, CompressionUncompressed, CompressionLZ4)
}

// cleanupPolicy accepts delete, compact, or both in either order.
func cleanupPolicy(v string) (string, error) {
	switch v {
	case CleanupDelete, CleanupCompact:
		return v, nil
	case CleanupCompactDelete, "delete,compact":
		return CleanupCompactDelete, nil
	}
	return "", fmt.Errorf("%q is not %s, %s or %s", v, CleanupDelete, CleanupCompact, CleanupCompactDelete)
}

// ratioDigitsMax bounds a ratio's text, so that its normal form is short.
const ratioDigitsMax = 20

// ratio accepts a decimal fraction in [0, 1]; its normal form is the
// shortest decimal that reads back as the same float64.
func ratio(v string) (string, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || len(v) > ratioDigitsMax || strings.ContainsAny(v, "eEnNiIxXpP_") {
		return "", fmt.Errorf("%q is not a decimal fraction", v)
	}
	if f < 0 || f > 1 {
		return "", fmt.Errorf("%v is outside [0, 1]", f)
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}

func intRange(lo, hi int64) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || len(v) > configIntegerMaxDigit {
			return "", fmt.Errorf("%q is not an integer", v)
		}
		if n < lo || n > hi {
			return "", fmt.Errorf("%d is outside [%d, %d]", n, lo, hi)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

func boolean(v string) (string, error) {
	switch strings.ToLower(v) {
	case "true":
		return "true", nil
	case "false":
		return "false", nil
	}
	return "", fmt.Errorf("%q is not true or false", v)
}

func flushPolicy(v string) (string, error) {
	switch v {
	case FlushSync, FlushNever:
		return v, nil
	}
	if ms, ok := strings.CutPrefix(v, flushIntervalPrefix); ok {
		n, err := intRange(1, maxFlushIntervalMs)(ms)
		if err != nil {
			return "", fmt.Errorf("flush interval: %v", err)
		}
		return flushIntervalPrefix + n, nil
	}
	return "", fmt.Errorf("%q is not %s, %s or %s<ms>", v, FlushSync, FlushNever, flushIntervalPrefix)
}

// normalizeConfig checks one key and value and returns the value's normal
// form.
func normalizeConfig(key, value string) (string, error) {
	spec, ok := configSpecs[key]
	if !ok {
		return "", fmt.Errorf("unknown config key %q", key)
	}
	if len(value) > maxConfigValueLen {
		return "", fmt.Errorf("%s: value longer than %d bytes", key, maxConfigValueLen)
	}
	n, err := spec.normalize(value)
	if err != nil {
		return "", fmt.Errorf("%s: %v", key, err)
	}
	return n, nil
}

// checkNormalConfigs checks a config map from a record: every key known,
// every value already in normal form, partitions and replication.factor
// present.
func checkNormalConfigs(configs map[string]string) error {
	for k, v := range configs {
		n, err := normalizeConfig(k, v)
		if err != nil {
			return err
		}
		if n != v {
			return fmt.Errorf("%s: %q is not in normal form", k, v)
		}
	}
	for _, k := range []string{ConfigPartitions, ConfigReplicationFactor} {
		if _, ok := configs[k]; !ok {
			return fmt.Errorf("missing %s", k)
		}
	}
	return nil
}

// configInt reads a normalised integer config, or def when absent.
func configInt(configs map[string]string, key string, def int64) int64 {
	v, ok := configs[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return def
	}
	return n
}
