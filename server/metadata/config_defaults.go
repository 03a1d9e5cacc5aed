package metadata

import (
	"slices"
	"strconv"
)

// Topic config defaults: what a topic that sets nothing for a key gets,
// in normal form. They are the broker's behaviour, not stored values (a
// topic's map holds only what was set), so DescribeConfigs shows them
// with is_default and docs/configuration.md lists them.
var configDefaults = map[string]string{
	ConfigPartitions:             strconv.Itoa(defaultPartitions),
	ConfigReplicationFactor:      strconv.Itoa(defaultReplicationFactor),
	ConfigSegmentBytes:           strconv.Itoa(defaultSegmentBytes),
	ConfigSegmentMs:              strconv.Itoa(defaultSegmentMs),
	ConfigRetentionMs:            strconv.Itoa(defaultRetentionMs),
	ConfigRetentionBytes:         strconv.Itoa(unlimited),
	ConfigFlushPolicy:            FlushSync,
	ConfigMaxMessageBytes:        strconv.Itoa(DefaultMaxMessageBytes),
	ConfigUncleanLeaderElection:  "false",
	ConfigMinInsyncReplicas:      strconv.Itoa(defaultMinInsyncReplicas),
	ConfigCleanupPolicy:          CleanupDelete,
	ConfigMinCleanableDirtyRatio: "0.5",
	ConfigMinCompactionLagMs:     "0",
	ConfigMaxCompactionLagMs:     strconv.FormatInt(1<<63-1, 10),
	ConfigDeleteRetentionMs:      strconv.Itoa(defaultDeleteRetentionMs),
	ConfigCompressionType:        CompressionProducer,
}

// Defaults that match the partition log's (segment.Config) and the
// cleaner's (segment.CompactionConfig), and Kafka's.
const (
	defaultSegmentBytes      = 1 << 30
	defaultSegmentMs         = 7 * 24 * 3600 * 1000
	defaultRetentionMs       = 7 * 24 * 3600 * 1000
	defaultDeleteRetentionMs = 24 * 3600 * 1000
	// DefaultMaxMessageBytes is Kafka's message.max.bytes default.
	DefaultMaxMessageBytes = 1048588
)

// readOnlyConfigs are the keys IncrementalAlterConfigs refuses: the
// partition count grows through CreatePartitions only, and a replication
// factor change is a reassignment of every partition's replicas, which
// Strata does not do.
var readOnlyConfigs = map[string]string{
	ConfigPartitions:        "the partition count grows with CreatePartitions (strata topic add-partitions), never by a config",
	ConfigReplicationFactor: "the replication factor is fixed when the topic is created",
}

// TopicConfigKeys lists every topic config key in ascending order.
func TopicConfigKeys() []string {
	keys := make([]string, 0, len(configSpecs))
	for k := range configSpecs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TopicConfigDefault is key's default value in normal form; ok is false
// for an unknown key.
func TopicConfigDefault(key string) (value string, ok bool) {
	value, ok = configDefaults[key]
	return value, ok
}

// TopicConfigReadOnly reports whether IncrementalAlterConfigs refuses to
// change key.
func TopicConfigReadOnly(key string) bool {
	_, ok := readOnlyConfigs[key]
	return ok
}
