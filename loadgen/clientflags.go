package main

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema/fb"
)

// Names of the flags the client workloads (produce, consume, e2e, suite)
// share.
const (
	flagBrokers     = "brokers"
	flagTopic       = "topic"
	flagPartitions  = "partitions"
	flagProducers   = "producers"
	flagConsumers   = "consumers"
	flagAcks        = "acks"
	flagLinger      = "linger"
	flagCompression = "compression"
	flagRate        = "rate"
	flagFlushPolicy = "flush-policy"
	flagProcs       = "procs"
	flagReplication = "replication-factor"
	flagMinInsync   = "min-insync-replicas"

	compressionNone = "none"
	compressionLZ4  = "lz4"

	// flushPolicyConfig is the topic config that sets the flush policy.
	flushPolicyConfig = "flush.policy"
	// minInsyncConfig is the topic config that sets how many in-sync
	// replicas an acks=all produce needs.
	minInsyncConfig = "min.insync.replicas"
	// brokerDefaultFlushPolicy is what a topic created without
	// flush.policy gets: fdatasync before acknowledging.
	brokerDefaultFlushPolicy = "sync"
)

// Defaults of the client workloads.
const (
	// defaultProducerBatchBytes and defaultLinger match the client
	// library's own defaults, so a run without flags measures what an
	// application gets without tuning.
	defaultProducerBatchBytes = 64 << 10
	defaultLinger             = 5 * time.Millisecond
	// maxProducerBatchBytes bounds --batch-bytes of a producer: a batch is
	// one frame, and the broker's envelope limit is far above this.
	maxProducerBatchBytes = 16 << 20
	// defaultPartitions is the partition count of a topic loadgen creates;
	// the 2014 Kafka benchmark this suite follows used six.
	defaultPartitions = 6
	// maxPartitions matches the broker's per-topic limit.
	maxPartitions = 10_000
	// maxClients bounds --producers and --consumers: each is a goroutine
	// with its own connection.
	maxClients = 1024
	// maxProcs bounds --procs.
	maxProcs = 4096
	// maxReplicationFactor bounds --replication-factor and
	// --min-insync-replicas: the wire field is an int16, and no cluster
	// loadgen drives has more brokers than this.
	maxReplicationFactor = 64
	// adminTimeout bounds a topic creation or deletion.
	adminTimeout = 30 * time.Second
	// drainTimeout bounds the wait for outstanding acknowledgements or
	// records after the sending stopped.
	drainTimeout = 30 * time.Second
)

// clientFlags are the flags of the workloads that run against a broker.
// Each command registers the subset it uses.
type clientFlags struct {
	brokers     []string
	topic       string
	partitions  int32
	producers   int
	consumers   int
	acks        string
	batchBytes  byteSize
	linger      time.Duration
	compression string
	// values is --values: what the records hold (values.go).
	values      string
	rate        float64
	flushPolicy string
	// replicationFactor and minInsync are the replication of a topic
	// loadgen creates (0: the broker's default).
	replicationFactor int
	minInsync         int
	// procs is --procs: the Go threads running Go code (GOMAXPROCS) while
	// the client works; 0 leaves Go's default, one per CPU.
	procs int
}

// Which flags a command takes.
const (
	withProducer = 1 << iota
	withConsumer
	withRate
)

func (f *clientFlags) register(fs *pflag.FlagSet, which int, defaultTopic string) {
	f.batchBytes = defaultProducerBatchBytes
	fs.StringSliceVar(&f.brokers, flagBrokers, []string{client.DefaultBroker},
		"seed brokers, HOST:PORT, comma-separated")
	fs.StringVar(&f.topic, flagTopic, defaultTopic, "topic to use; created when it does not exist")
	if f.partitions == 0 {
		f.partitions = defaultPartitions
	}
	fs.Int32Var(&f.partitions, flagPartitions, f.partitions, "partitions of the topic when loadgen creates it")
	fs.StringVar(&f.flushPolicy, flagFlushPolicy, "",
		"flush.policy of the topic when loadgen creates it: sync, never or interval:<ms> (empty: the broker's default, sync)")
	fs.IntVar(&f.replicationFactor, flagReplication, 0,
		"replicas of each partition of the topic when loadgen creates it (0: the broker's default)")
	fs.IntVar(&f.minInsync, flagMinInsync, 0,
		"min.insync.replicas of the topic when loadgen creates it: the in-sync replicas an acks=all produce needs (0: the broker's default)")
	fs.IntVar(&f.procs, flagProcs, 0,
		"CPUs the client's Go code may run on at once (GOMAXPROCS; 0: all); on a machine shared with the broker, fewer leave it room")
	if which&withProducer != 0 {
		fs.IntVar(&f.producers, flagProducers, 1, "producers, each with its own connection")
		if f.acks == "" {
			f.acks = "all"
		}
		fs.StringVar(&f.acks, flagAcks, f.acks, "acks of the producers: all (-1), 1 (leader) or 0 (none)")
		fs.Var(&f.batchBytes, flagBatchBytes,
			fmt.Sprintf("producer batch size in bytes (1..%s)", formatByteSize(maxProducerBatchBytes)))
		fs.DurationVar(&f.linger, flagLinger, defaultLinger, "how long a batch that is not full waits for more records (0: send at once)")
		fs.StringVar(&f.compression, flagCompression, compressionNone, "batch compression: none or lz4")
		fs.StringVar(&f.values, flagValues, valuesFill,
			"record values: fill (one value repeated, which lz4 shrinks to nothing) or json (JSON-like events, each its own)")
	}
	if which&withConsumer != 0 {
		fs.IntVar(&f.consumers, flagConsumers, 1, "consumers, each with its own connection and a share of the partitions")
	}
	if which&withRate != 0 {
		fs.Float64Var(&f.rate, flagRate, f.rate, "records per second across all producers (0: as fast as they go)")
	}
}

func (f *clientFlags) validate(which int) error {
	if len(f.brokers) == 0 {
		return fmt.Errorf("--%s must name at least one broker", flagBrokers)
	}
	if f.topic == "" {
		return fmt.Errorf("--%s must not be empty", flagTopic)
	}
	if f.partitions < 1 || f.partitions > maxPartitions {
		return fmt.Errorf("--%s must be between 1 and %d, got %d", flagPartitions, maxPartitions, f.partitions)
	}
	if err := checkFlushPolicy(f.flushPolicy); err != nil {
		return err
	}
	if f.replicationFactor < 0 || f.replicationFactor > maxReplicationFactor {
		return fmt.Errorf("--%s must be between 0 and %d, got %d", flagReplication, maxReplicationFactor, f.replicationFactor)
	}
	if f.minInsync < 0 || f.minInsync > maxReplicationFactor {
		return fmt.Errorf("--%s must be between 0 and %d, got %d", flagMinInsync, maxReplicationFactor, f.minInsync)
	}
	if f.replicationFactor > 0 && f.minInsync > f.replicationFactor {
		return fmt.Errorf("--%s %d is more than --%s %d: no produce with acks=all could succeed",
			flagMinInsync, f.minInsync, flagReplication, f.replicationFactor)
	}
	if f.procs < 0 || f.procs > maxProcs {
		return fmt.Errorf("--%s must be between 0 and %d, got %d", flagProcs, maxProcs, f.procs)
	}
	if which&withProducer != 0 {
		if f.producers < 1 || f.producers > maxClients {
			return fmt.Errorf("--%s must be between 1 and %d, got %d", flagProducers, maxClients, f.producers)
		}
		if _, err := parseAcks(f.acks); err != nil {
			return err
		}
		if f.batchBytes < 1 || f.batchBytes > maxProducerBatchBytes {
			return fmt.Errorf("--%s must be between 1 and %s, got %d",
				flagBatchBytes, formatByteSize(maxProducerBatchBytes), f.batchBytes)
		}
		if f.linger < 0 {
			return fmt.Errorf("--%s must not be negative, got %s", flagLinger, f.linger)
		}
		if _, err := parseCompression(f.compression); err != nil {
			return err
		}
		if err := checkValues(f.values); err != nil {
			return err
		}
	}
	if which&withConsumer != 0 && (f.consumers < 1 || f.consumers > maxClients) {
		return fmt.Errorf("--%s must be between 1 and %d, got %d", flagConsumers, maxClients, f.consumers)
	}
	if which&withRate != 0 && (f.rate < 0 || math.IsNaN(f.rate) || math.IsInf(f.rate, 0)) {
		return fmt.Errorf("--%s must be a finite number >= 0, got %v", flagRate, f.rate)
	}
	return nil
}

func checkFlushPolicy(p string) error {
	switch {
	case p == "", p == "sync", p == "never", strings.HasPrefix(p, "interval:"):
		return nil
	}
	return fmt.Errorf("--%s must be sync, never or interval:<ms>, got %q", flagFlushPolicy, p)
}

func parseAcks(s string) (client.Acks, error) {
	switch s {
	case "all", "-1":
		return client.AcksAll, nil
	case "1", "leader":
		return client.AcksLeader, nil
	case "0", "none":
		return client.AcksNone, nil
	}
	return 0, fmt.Errorf("--%s must be all (-1), 1 (leader) or 0 (none), got %q", flagAcks, s)
}

func parseCompression(s string) (uint16, error) {
	switch s {
	case compressionNone:
		return client.CompressionNone, nil
	case compressionLZ4:
		return client.CompressionLZ4, nil
	}
	return 0, fmt.Errorf("--%s must be %s or %s, got %q", flagCompression, compressionNone, compressionLZ4, s)
}

// producerConfig turns the flags into the client library's producer
// settings. A linger of 0 is "send at once", which the library spells as a
// negative LingerMs; other lingers round up to whole milliseconds.
func (f *clientFlags) producerConfig() client.ProducerConfig {
	acks, _ := parseAcks(f.acks)
	comp, _ := parseCompression(f.compression)
	lingerMs := -1
	if f.linger > 0 {
		lingerMs = int((f.linger + time.Millisecond - 1) / time.Millisecond)
	}
	return client.ProducerConfig{
		Acks:        acks,
		BatchBytes:  int(f.batchBytes),
		LingerMs:    lingerMs,
		Compression: comp,
	}
}

func (f *clientFlags) clientConfig() client.Config {
	return client.Config{Brokers: f.brokers, ClientID: "loadgen"}
}

// flushPolicyLabel names the flush policy a topic was created with.
func flushPolicyLabel(p string) string {
	if p == "" {
		return brokerDefaultFlushPolicy
	}
	return p
}

// orBrokerDefault renders a topic setting loadgen passes, 0 being the
// broker's default.
func orBrokerDefault(n int) string {
	if n == 0 {
		return "broker default"
	}
	return strconv.Itoa(n)
}

// topicState is what ensureTopic found or made.
type topicState struct {
	partitions []int32
	created    bool
}

// ensureTopic creates f's topic with the partitions, flush policy and
// replication of f when it does not exist, and returns its partition ids
// either way.
func ensureTopic(ctx context.Context, cl *client.Client, f *clientFlags) (topicState, error) {
	actx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	topic := f.topic
	spec := client.TopicSpec{Name: topic, Partitions: f.partitions, ReplicationFactor: int16(f.replicationFactor),
		Configs: map[string]string{}}
	if f.flushPolicy != "" {
		spec.Configs[flushPolicyConfig] = f.flushPolicy
	}
	if f.minInsync > 0 {
		spec.Configs[minInsyncConfig] = strconv.Itoa(f.minInsync)
	}
	var st topicState
	err := client.NewAdmin(cl).CreateTopics(actx, spec)
	switch {
	case err == nil:
		st.created = true
	case client.ErrorCode(err) == fb.ErrorCodeTopicAlreadyExists:
	default:
		return st, fmt.Errorf("create topic %s: %w", topic, err)
	}
	parts, err := cl.Partitions(actx, topic)
	if err != nil {
		return st, fmt.Errorf("topic %s: %w", topic, err)
	}
	if len(parts) == 0 {
		return st, fmt.Errorf("topic %s has no partitions", topic)
	}
	st.partitions = parts
	return st, nil
}

// deleteTopic removes a topic loadgen made for one run.
func deleteTopic(ctx context.Context, cl *client.Client, topic string) error {
	actx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	return client.NewAdmin(cl).DeleteTopics(actx, topic)
}

// clientDetails are the client workloads' own fields in the JSON report.
type clientDetails struct {
	Brokers           []string `json:"brokers"`
	Topic             string   `json:"topic"`
	Partitions        int      `json:"partitions"`
	TopicCreated      bool     `json:"topic_created"`
	FlushPolicy       string   `json:"flush_policy"`
	ReplicationFactor int      `json:"replication_factor,omitempty"`
	MinInsync         int      `json:"min_insync_replicas,omitempty"`
	ClientProcs       int      `json:"client_procs"`
	Producers         int      `json:"producers,omitempty"`
	Consumers         int      `json:"consumers,omitempty"`
	Acks              string   `json:"acks,omitempty"`
	LingerMs          float64  `json:"linger_ms,omitempty"`
	Compression       string   `json:"compression,omitempty"`
	Values            string   `json:"values,omitempty"`
	RateRecordsPerSec float64  `json:"rate_records_per_sec,omitempty"`
	// Produced is what the producers had acknowledged (e2e, and consume
	// with --fill).
	Produced int64 `json:"produced,omitempty"`
	// ProduceP50Ms and ProduceP99Ms are send-to-acknowledgement latencies
	// of the producers of an e2e run.
	ProduceP50Ms float64 `json:"produce_p50_ms,omitempty"`
	ProduceP99Ms float64 `json:"produce_p99_ms,omitempty"`
}

// newClientReport fills what every client workload reports alike.
func newClientReport(workload, title string, f *clientFlags, which int, st topicState, recordSizeBytes int64, started time.Time) *report {
	d := &clientDetails{
		Brokers:      f.brokers,
		Topic:        f.topic,
		Partitions:   len(st.partitions),
		TopicCreated: st.created,
		FlushPolicy:  flushPolicyLabel(f.flushPolicy),
		ClientProcs:  runtime.GOMAXPROCS(0),
		// What loadgen asked for when it created the topic; 0: the
		// broker's default, or a topic that existed.
		ReplicationFactor: f.replicationFactor,
		MinInsync:         f.minInsync,
	}
	if !st.created {
		d.FlushPolicy = "existing topic's"
	}
	r := &report{
		Workload:      workload,
		Mode:          workload,
		StartedAt:     started.UTC().Format(time.RFC3339),
		clientDetails: d,
		machineFacts:  collectMachineFacts(),
		title:         title,
	}
	if which&withProducer != 0 {
		d.Producers = f.producers
		d.Acks = f.acks
		d.LingerMs = float64(f.linger) / float64(time.Millisecond)
		d.Compression = f.compression
		d.Values = f.values
		r.BatchBytes = int64(f.batchBytes)
	}
	if which&withConsumer != 0 {
		d.Consumers = f.consumers
	}
	if which&withRate != 0 {
		d.RateRecordsPerSec = f.rate
	}
	r.rows = append(r.rows,
		summaryRow{"topic", fmt.Sprintf("%s, %d partitions, flush policy %s, replication factor %s, min.insync.replicas %s (created: %v)",
			f.topic, len(st.partitions), d.FlushPolicy, orBrokerDefault(f.replicationFactor), orBrokerDefault(f.minInsync), st.created)},
		summaryRow{"brokers", strings.Join(f.brokers, ",")},
		summaryRow{"client procs", fmt.Sprintf("%d (GOMAXPROCS)", d.ClientProcs)})
	if which&withProducer != 0 {
		r.rows = append(r.rows, summaryRow{"producers", fmt.Sprintf("%d, acks %s, batch %d B, linger %s, compression %s, values %s",
			f.producers, f.acks, f.batchBytes, f.linger, f.compression, f.values)})
	}
	if which&withConsumer != 0 {
		r.rows = append(r.rows, summaryRow{"consumers", fmt.Sprint(f.consumers)})
	}
	if which&withRate != 0 {
		rate := "unthrottled"
		if f.rate > 0 {
			rate = fmt.Sprintf("%.0f records/s (%.1f MB/s)", f.rate, f.rate*float64(recordSizeBytes)/bytesPerMB)
		}
		r.rows = append(r.rows, summaryRow{"target rate", rate})
	}
	return r
}

// useProcs sets GOMAXPROCS to --procs, if given, and returns what to call
// to set it back.
func (f *clientFlags) useProcs() (restore func()) {
	if f.procs == 0 {
		return func() {}
	}
	prev := runtime.GOMAXPROCS(f.procs)
	return func() { runtime.GOMAXPROCS(prev) }
}
