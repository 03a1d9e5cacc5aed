package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"

	"github.com/strata-db/strata/server"
	"github.com/strata-db/strata/server/controller/transport"
	"github.com/strata-db/strata/server/group"
)

// serveConfig is everything `strata serve` can be told, from flags or a
// TOML file (--config); a flag given on the command line wins over the file.
type serveConfig struct {
	DataDir  string `toml:"data_dir"`
	Listen   string `toml:"listen"`
	Admin    string `toml:"admin"`
	Cores    int    `toml:"cores"`
	NodeID   int32  `toml:"node_id"`
	Pin      bool   `toml:"pin"`
	LogLevel string `toml:"log_level"`
	// ControllerVoters is the quorum, "id@host:port,..." (empty: a
	// 1-voter controller inside this broker).
	ControllerVoters string `toml:"controller_voters"`
	// Roles is "broker,controller" (the default) or "controller".
	Roles             string        `toml:"roles"`
	Rack              string        `toml:"rack"`
	HeartbeatInterval time.Duration `toml:"heartbeat_interval"`
	SessionTimeout    time.Duration `toml:"session_timeout"`
	// BrokerConnectionLossGrace is how long the controller leader waits
	// for a broker whose session connection closed to reconnect before
	// fencing it (negative: only the session timeout fences).
	BrokerConnectionLossGrace time.Duration `toml:"broker_connection_loss_grace"`
	// ClusterSecretFile holds the secret every voter of the quorum proves
	// it knows; ClusterInsecure runs a quorum without one, by choice.
	ClusterSecretFile string `toml:"cluster_secret_file"`
	ClusterInsecure   bool   `toml:"cluster_insecure"`
	// RequestBudgetBytes bounds the memory of large requests across all
	// shards (Kafka's queued.max.request.bytes).
	RequestBudgetBytes int64 `toml:"request_budget_bytes"`
	// LogRetentionCheckInterval is how often each shard applies topic
	// retention (Kafka's log.retention.check.interval.ms).
	LogRetentionCheckInterval time.Duration `toml:"log_retention_check_interval"`
	// LogDirMinFreeBytes and LogDirMinFreeRatio are the room kept free in
	// the data folder's file system: below the smaller, producers are
	// refused as for a full disk (negative: that bound off).
	LogDirMinFreeBytes int64   `toml:"log_dir_min_free_bytes"`
	LogDirMinFreeRatio float64 `toml:"log_dir_min_free_ratio"`
	// LogCleanerDedupeBufferSize and LogCleanerIOMaxBytesPerSecond are the
	// compaction cleaners' key-map memory and I/O throttle, split among
	// the shards (Kafka's log.cleaner.dedupe.buffer.size and
	// log.cleaner.io.max.bytes.per.second).
	LogCleanerDedupeBufferSize    int64 `toml:"log_cleaner_dedupe_buffer_size"`
	LogCleanerIOMaxBytesPerSecond int64 `toml:"log_cleaner_io_max_bytes_per_second"`
	// LogSegmentAllocateStepBytes is how far each partition's active
	// segment files grow at a time (fallocate), for every topic; a topic
	// whose segment.bytes is smaller allocates each segment whole.
	LogSegmentAllocateStepBytes int64 `toml:"log_segment_allocate_step_bytes"`
	// ReplicaLagTimeMax is how long a follower may stay behind the leader's
	// log end before it leaves the ISR (Kafka's replica.lag.time.max.ms).
	ReplicaLagTimeMax time.Duration `toml:"replica_lag_time_max"`
	// HotPartitionWindow is the span each partition's produce rate is
	// taken over, for flagging hot partitions.
	HotPartitionWindow time.Duration `toml:"hot_partition_window"`
	// OffsetsTopicPartitions and OffsetsTopicReplicationFactor shape the
	// __consumer_offsets topic, created on the first group lookup (Kafka's
	// offsets.topic.num.partitions and offsets.topic.replication.factor).
	OffsetsTopicPartitions        int32 `toml:"offsets_topic_partitions"`
	OffsetsTopicReplicationFactor int16 `toml:"offsets_topic_replication_factor"`
	// GroupSessionTimeout and GroupHeartbeatInterval are the consumer-group
	// coordinators' member session and heartbeat interval (Kafka's
	// group.consumer.session.timeout.ms and
	// group.consumer.heartbeat.interval.ms).
	GroupSessionTimeout    time.Duration `toml:"group_session_timeout"`
	GroupHeartbeatInterval time.Duration `toml:"group_heartbeat_interval"`
}

// The embedded defaults: `strata serve` with no flags and no file runs a
// working single-node broker.
var defaultServeConfig = serveConfig{
	DataDir:  "./data",
	Listen:   "127.0.0.1:9292",
	Admin:    "127.0.0.1:9293",
	NodeID:   1,
	Pin:      true,
	LogLevel: "info",
	Roles:    roleBroker + "," + roleController,
	// The session defaults are the broker's own; naming them here shows
	// them in --help.
	HeartbeatInterval:             server.DefaultHeartbeatInterval,
	SessionTimeout:                server.DefaultSessionTimeout,
	BrokerConnectionLossGrace:     server.DefaultConnectionLossGrace,
	RequestBudgetBytes:            server.RequestBudgetBytesDefault,
	LogRetentionCheckInterval:     server.LogRetentionCheckIntervalDefault,
	ReplicaLagTimeMax:             server.ReplicaLagTimeMaxDefault,
	HotPartitionWindow:            server.HotPartitionWindowDefault,
	OffsetsTopicPartitions:        server.OffsetsTopicPartitionsDefault,
	OffsetsTopicReplicationFactor: server.OffsetsTopicReplicationFactorDefault,
	GroupSessionTimeout:           time.Duration(group.DefaultSessionTimeoutMs) * time.Millisecond,
	GroupHeartbeatInterval:        time.Duration(group.DefaultHeartbeatIntervalMs) * time.Millisecond,
	LogDirMinFreeBytes:            server.LogDirMinFreeBytesDefault,
	LogDirMinFreeRatio:            server.LogDirMinFreeRatioDefault,
	LogCleanerDedupeBufferSize:    server.LogCleanerDedupeBufferBytesDefault,
	LogCleanerIOMaxBytesPerSecond: server.LogCleanerIOMaxBytesPerSecondDefault,
	LogSegmentAllocateStepBytes:   server.SegmentAllocateStepBytesDefault,
}

// serveConfigKeys are the TOML keys of serveConfig, for --help and errors.
const serveConfigKeys = "data_dir, listen, admin, cores, node_id, pin, log_level, " +
	"controller_voters, roles, rack, heartbeat_interval, session_timeout, broker_connection_loss_grace, cluster_secret_file, cluster_insecure, " +
	"request_budget_bytes, log_retention_check_interval, log_dir_min_free_bytes, log_dir_min_free_ratio, " +
	"log_cleaner_dedupe_buffer_size, log_cleaner_io_max_bytes_per_second, log_segment_allocate_step_bytes, replica_lag_time_max, hot_partition_window, " +
	"offsets_topic_partitions, offsets_topic_replication_factor, group_session_timeout, group_heartbeat_interval"

// The roles a node can take.
const (
	roleBroker     = "broker"
	roleController = "controller"
)

func serveCommand() *cobra.Command {
	cfg := defaultServeConfig
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a broker",
		Long: `Run a Strata broker. With no flags it serves on 127.0.0.1:9292 from ./data,
with one shard per available CPU and metrics on 127.0.0.1:9293/metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				fileCfg := defaultServeConfig
				md, err := toml.DecodeFile(configFile, &fileCfg)
				if err != nil {
					return usageError{fmt.Errorf("config %s: %w", configFile, err)}
				}
				// A setting the file names but serve does not know would be
				// ignored: refuse it rather than run without it.
				if unknown := md.Undecoded(); len(unknown) > 0 {
					return usageError{fmt.Errorf("config %s: unknown setting %q; the settings are %s",
						configFile, unknown[0].String(), serveConfigKeys)}
				}
				// Flags set on the command line override the file.
				flags := cmd.Flags()
				override := func(name string, apply func()) {
					if flags.Changed(name) {
						apply()
					}
				}
				override("data-dir", func() { fileCfg.DataDir = cfg.DataDir })
				override("listen", func() { fileCfg.Listen = cfg.Listen })
				override("admin", func() { fileCfg.Admin = cfg.Admin })
				override("cores", func() { fileCfg.Cores = cfg.Cores })
				override("node-id", func() { fileCfg.NodeID = cfg.NodeID })
				override("pin", func() { fileCfg.Pin = cfg.Pin })
				override("log-level", func() { fileCfg.LogLevel = cfg.LogLevel })
				override("controller-voters", func() { fileCfg.ControllerVoters = cfg.ControllerVoters })
				override("roles", func() { fileCfg.Roles = cfg.Roles })
				override("rack", func() { fileCfg.Rack = cfg.Rack })
				override("heartbeat-interval", func() { fileCfg.HeartbeatInterval = cfg.HeartbeatInterval })
				override("session-timeout", func() { fileCfg.SessionTimeout = cfg.SessionTimeout })
				override("broker-connection-loss-grace", func() { fileCfg.BrokerConnectionLossGrace = cfg.BrokerConnectionLossGrace })
				override("cluster-secret-file", func() { fileCfg.ClusterSecretFile = cfg.ClusterSecretFile })
				override("cluster-insecure", func() { fileCfg.ClusterInsecure = cfg.ClusterInsecure })
				override("request-budget-bytes", func() { fileCfg.RequestBudgetBytes = cfg.RequestBudgetBytes })
				override("log-retention-check-interval", func() { fileCfg.LogRetentionCheckInterval = cfg.LogRetentionCheckInterval })
				override("log-dir-min-free-bytes", func() { fileCfg.LogDirMinFreeBytes = cfg.LogDirMinFreeBytes })
				override("log-dir-min-free-ratio", func() { fileCfg.LogDirMinFreeRatio = cfg.LogDirMinFreeRatio })
				override("log-cleaner-dedupe-buffer-size", func() { fileCfg.LogCleanerDedupeBufferSize = cfg.LogCleanerDedupeBufferSize })
				override("log-cleaner-io-max-bytes-per-second", func() { fileCfg.LogCleanerIOMaxBytesPerSecond = cfg.LogCleanerIOMaxBytesPerSecond })
				override("log-segment-allocate-step-bytes", func() { fileCfg.LogSegmentAllocateStepBytes = cfg.LogSegmentAllocateStepBytes })
				override("replica-lag-time-max", func() { fileCfg.ReplicaLagTimeMax = cfg.ReplicaLagTimeMax })
				override("hot-partition-window", func() { fileCfg.HotPartitionWindow = cfg.HotPartitionWindow })
				override("offsets-topic-partitions", func() { fileCfg.OffsetsTopicPartitions = cfg.OffsetsTopicPartitions })
				override("group-session-timeout", func() { fileCfg.GroupSessionTimeout = cfg.GroupSessionTimeout })
				override("group-heartbeat-interval", func() { fileCfg.GroupHeartbeatInterval = cfg.GroupHeartbeatInterval })
				override("offsets-topic-replication-factor", func() {
					fileCfg.OffsetsTopicReplicationFactor = cfg.OffsetsTopicReplicationFactor
				})
				cfg = fileCfg
			}
			return serve(cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "TOML file with any of: "+serveConfigKeys+" (durations as \"2s\")")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "folder for partition logs and metadata")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "client address HOST:PORT")
	f.StringVar(&cfg.Admin, "admin", cfg.Admin, "metrics and pprof address HOST:PORT (empty: off)")
	f.IntVar(&cfg.Cores, "cores", cfg.Cores, "shards, one per core (0: every available CPU)")
	f.Int32Var(&cfg.NodeID, "node-id", cfg.NodeID, "this broker's id")
	f.BoolVar(&cfg.Pin, "pin", cfg.Pin, "pin each shard's thread to its CPU")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	f.StringVar(&cfg.ControllerVoters, "controller-voters", cfg.ControllerVoters,
		"the controller quorum as id@host:port,... (the voters' Raft addresses); empty: a 1-voter controller inside this broker")
	f.StringVar(&cfg.Roles, "roles", cfg.Roles, "broker,controller (a voter that serves clients) or controller (a voter only)")
	f.StringVar(&cfg.Rack, "rack", cfg.Rack, "this broker's rack, for replica placement")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "how often the broker renews its controller session")
	f.DurationVar(&cfg.SessionTimeout, "session-timeout", cfg.SessionTimeout,
		"how long the controller waits for a broker's heartbeat before fencing it (the same on every voter)")
	f.DurationVar(&cfg.BrokerConnectionLossGrace, "broker-connection-loss-grace", cfg.BrokerConnectionLossGrace,
		"how long the controller waits for a broker whose controller connection closed to reconnect before fencing it, below --session-timeout (the same on every voter; negative: off)")
	f.StringVar(&cfg.ClusterSecretFile, "cluster-secret-file", cfg.ClusterSecretFile,
		"file holding the cluster secret (at least 16 bytes, the same on every voter); a quorum needs it or --cluster-insecure")
	f.BoolVar(&cfg.ClusterInsecure, "cluster-insecure", cfg.ClusterInsecure,
		"run the controller quorum with no secret: its peers are identified, not authenticated")
	f.Int64Var(&cfg.RequestBudgetBytes, "request-budget-bytes", cfg.RequestBudgetBytes,
		"memory for large requests being received or served, shared equally by the shards; beyond it, connections wait to send more")
	f.DurationVar(&cfg.LogRetentionCheckInterval, "log-retention-check-interval", cfg.LogRetentionCheckInterval,
		"how often each shard deletes the segments past their topic's retention.ms and retention.bytes (at least 100ms)")
	f.Int64Var(&cfg.LogDirMinFreeBytes, "log-dir-min-free-bytes", cfg.LogDirMinFreeBytes,
		"bytes kept free in the data folder's file system: below the smaller of this and the ratio, producers and topic creation are refused (negative: off)")
	f.Float64Var(&cfg.LogDirMinFreeRatio, "log-dir-min-free-ratio", cfg.LogDirMinFreeRatio,
		"share of the data folder's file system kept free, below 1 (negative: off)")
	f.Int64Var(&cfg.LogCleanerDedupeBufferSize, "log-cleaner-dedupe-buffer-size", cfg.LogCleanerDedupeBufferSize,
		"memory for the compaction cleaners' key maps (24 bytes a key), split equally among the shards; at least 1 MiB a shard")
	f.Int64Var(&cfg.LogCleanerIOMaxBytesPerSecond, "log-cleaner-io-max-bytes-per-second", cfg.LogCleanerIOMaxBytesPerSecond,
		"bytes a second the compaction cleaners may read and write together, split equally among the shards (0: no throttle)")
	f.Int64Var(&cfg.LogSegmentAllocateStepBytes, "log-segment-allocate-step-bytes", cfg.LogSegmentAllocateStepBytes,
		fmt.Sprintf("how far each partition's active segment files grow at a time, for every topic (a topic with smaller segments allocates them whole); %d to %d",
			server.SegmentAllocateStepBytesMin, server.SegmentAllocateStepBytesMax))
	f.DurationVar(&cfg.ReplicaLagTimeMax, "replica-lag-time-max", cfg.ReplicaLagTimeMax,
		"how long a follower may stay behind its leader's log end before it leaves the ISR (at least 1s)")
	f.DurationVar(&cfg.HotPartitionWindow, "hot-partition-window", cfg.HotPartitionWindow,
		"the span each partition's produce rate is taken over, for flagging hot partitions (at least 1s)")
	f.Int32Var(&cfg.OffsetsTopicPartitions, "offsets-topic-partitions", cfg.OffsetsTopicPartitions,
		"partitions of __consumer_offsets, created on the first consumer-group lookup")
	f.DurationVar(&cfg.GroupSessionTimeout, "group-session-timeout", cfg.GroupSessionTimeout,
		"how long a consumer-group member may go without a heartbeat before its coordinator removes it (at least 1s)")
	f.DurationVar(&cfg.GroupHeartbeatInterval, "group-heartbeat-interval", cfg.GroupHeartbeatInterval,
		"the heartbeat interval coordinators tell consumer-group members (below the group session timeout)")
	f.Int16Var(&cfg.OffsetsTopicReplicationFactor, "offsets-topic-replication-factor", cfg.OffsetsTopicReplicationFactor,
		"replicas of each __consumer_offsets partition (at most the live brokers when it is created)")
	return cmd
}

func serve(cfg serveConfig) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: %w", cfg.LogLevel, err)}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	voters, err := server.ParseVoters(cfg.ControllerVoters)
	if err != nil {
		return usageError{fmt.Errorf("--controller-voters: %w", err)}
	}
	broker, controller, err := parseRoles(cfg.Roles)
	if err != nil {
		return usageError{err}
	}
	switch {
	case !controller:
		return usageError{errors.New("--roles broker: brokers that are not controller voters are not supported yet " +
			"(they need a metadata follower); run them with --roles broker,controller")}
	case !broker && len(voters) == 0:
		return usageError{errors.New("--roles controller needs --controller-voters")}
	case len(voters) > 0 && !slices.ContainsFunc(voters, func(v server.Voter) bool { return v.ID == cfg.NodeID }):
		return usageError{fmt.Errorf("--node-id %d is not one of --controller-voters", cfg.NodeID)}
	}
	auth, err := clusterAuth(cfg, len(voters) > 0)
	if err != nil {
		return usageError{err}
	}
	if cfg.RequestBudgetBytes < server.RequestBudgetBytesMin {
		return usageError{fmt.Errorf("--request-budget-bytes %d: want at least %d", cfg.RequestBudgetBytes, server.RequestBudgetBytesMin)}
	}
	if cfg.ReplicaLagTimeMax < server.ReplicaLagTimeMaxMin {
		return usageError{fmt.Errorf("--replica-lag-time-max %v: want at least %v", cfg.ReplicaLagTimeMax, server.ReplicaLagTimeMaxMin)}
	}
	if cfg.HotPartitionWindow < server.HotPartitionWindowMin {
		return usageError{fmt.Errorf("--hot-partition-window %v: want at least %v", cfg.HotPartitionWindow, server.HotPartitionWindowMin)}
	}
	if cfg.GroupSessionTimeout < time.Second || cfg.GroupHeartbeatInterval <= 0 || cfg.GroupHeartbeatInterval >= cfg.GroupSessionTimeout {
		return usageError{fmt.Errorf("--group-session-timeout %v and --group-heartbeat-interval %v: want a session of at least 1s and a positive interval below it",
			cfg.GroupSessionTimeout, cfg.GroupHeartbeatInterval)}
	}
	if cfg.OffsetsTopicPartitions < 1 || cfg.OffsetsTopicReplicationFactor < 1 {
		return usageError{fmt.Errorf("--offsets-topic-partitions %d and --offsets-topic-replication-factor %d: want at least 1",
			cfg.OffsetsTopicPartitions, cfg.OffsetsTopicReplicationFactor)}
	}
	if cfg.LogRetentionCheckInterval < server.LogRetentionCheckIntervalMin {
		return usageError{fmt.Errorf("--log-retention-check-interval %v: want at least %v",
			cfg.LogRetentionCheckInterval, server.LogRetentionCheckIntervalMin)}
	}
	if cfg.LogCleanerDedupeBufferSize < server.LogCleanerDedupeBufferBytesPerShardMin {
		return usageError{fmt.Errorf("--log-cleaner-dedupe-buffer-size %d: want at least %d a shard",
			cfg.LogCleanerDedupeBufferSize, server.LogCleanerDedupeBufferBytesPerShardMin)}
	}
	if cfg.LogCleanerIOMaxBytesPerSecond < 0 {
		return usageError{fmt.Errorf("--log-cleaner-io-max-bytes-per-second %d: want 0 (no throttle) or more", cfg.LogCleanerIOMaxBytesPerSecond)}
	}
	if cfg.LogSegmentAllocateStepBytes < server.SegmentAllocateStepBytesMin || cfg.LogSegmentAllocateStepBytes > server.SegmentAllocateStepBytesMax {
		return usageError{fmt.Errorf("--log-segment-allocate-step-bytes %d: want %d (4 KiB) to %d (1 GiB, the largest segment.bytes)",
			cfg.LogSegmentAllocateStepBytes, server.SegmentAllocateStepBytesMin, server.SegmentAllocateStepBytesMax)}
	}
	if cfg.LogDirMinFreeRatio >= 1 {
		return usageError{fmt.Errorf("--log-dir-min-free-ratio %v: want below 1 (negative: off)", cfg.LogDirMinFreeRatio)}
	}
	if !broker {
		// A controller-only node serves no clients and keeps no partition
		// logs: settings of the broker's would be accepted and ignored.
		if cfg.RequestBudgetBytes != defaultServeConfig.RequestBudgetBytes ||
			cfg.LogRetentionCheckInterval != defaultServeConfig.LogRetentionCheckInterval ||
			cfg.LogDirMinFreeBytes != defaultServeConfig.LogDirMinFreeBytes ||
			cfg.LogDirMinFreeRatio != defaultServeConfig.LogDirMinFreeRatio ||
			cfg.LogCleanerDedupeBufferSize != defaultServeConfig.LogCleanerDedupeBufferSize ||
			cfg.LogCleanerIOMaxBytesPerSecond != defaultServeConfig.LogCleanerIOMaxBytesPerSecond ||
			cfg.LogSegmentAllocateStepBytes != defaultServeConfig.LogSegmentAllocateStepBytes ||
			cfg.HotPartitionWindow != defaultServeConfig.HotPartitionWindow ||
			cfg.GroupSessionTimeout != defaultServeConfig.GroupSessionTimeout ||
			cfg.GroupHeartbeatInterval != defaultServeConfig.GroupHeartbeatInterval {
			return usageError{errors.New("--request-budget-bytes, --log-retention-check-interval, --log-dir-min-free-*, --log-cleaner-*, --log-segment-allocate-step-bytes, " +
				"--group-* and --hot-partition-window are broker settings; " +
				"--roles controller serves no clients and keeps no partition logs")}
		}
		return serveController(cfg, voters, auth, log)
	}
	if err := server.CheckRequestBudget(cfg.RequestBudgetBytes, cfg.Cores); err != nil {
		return usageError{fmt.Errorf("--request-budget-bytes %d with --cores %d: %w", cfg.RequestBudgetBytes, cfg.Cores, err)}
	}
	b, err := server.StartBroker(server.BrokerConfig{DataDir: cfg.DataDir, Listen: cfg.Listen, Cores: cfg.Cores,
		Pin: cfg.Pin, NodeID: cfg.NodeID, Logger: log, Voters: voters, ClusterAuth: auth, Rack: cfg.Rack,
		HeartbeatInterval: cfg.HeartbeatInterval, SessionTimeout: cfg.SessionTimeout,
		ConnectionLossGrace: cfg.BrokerConnectionLossGrace,
		RequestBudgetBytes:  cfg.RequestBudgetBytes, LogRetentionCheckInterval: cfg.LogRetentionCheckInterval,
		ReplicaLagTimeMax: cfg.ReplicaLagTimeMax, HotPartitionWindow: cfg.HotPartitionWindow,
		OffsetsTopicPartitions: cfg.OffsetsTopicPartitions, OffsetsTopicReplicationFactor: cfg.OffsetsTopicReplicationFactor,
		Group:              group.Config{SessionTimeoutMs: cfg.GroupSessionTimeout.Milliseconds(), HeartbeatIntervalMs: cfg.GroupHeartbeatInterval.Milliseconds()},
		LogDirMinFreeBytes: cfg.LogDirMinFreeBytes, LogDirMinFreeRatio: cfg.LogDirMinFreeRatio,
		LogCleanerDedupeBufferBytes: cfg.LogCleanerDedupeBufferSize, LogCleanerIOMaxBytesPerSecond: cfg.LogCleanerIOMaxBytesPerSecond,
		SegmentAllocateStepBytes: cfg.LogSegmentAllocateStepBytes})
	if err != nil {
		return err
	}
	var admin *server.AdminServer
	if cfg.Admin != "" {
		admin, err = server.StartAdmin(cfg.Admin, b.Registry())
		if err != nil {
			b.Stop()
			return fmt.Errorf("admin listener: %w", err)
		}
	}
	adminAddr := ""
	if admin != nil {
		adminAddr = admin.Addr()
	}
	log.Info("strata broker ready", "listen", b.Addr().String(), "admin", adminAddr,
		"shards", len(b.Server().Shards()), "data_dir", cfg.DataDir, "node_id", cfg.NodeID)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	sig := <-stop
	log.Info("shutting down", "signal", sig.String())
	if admin != nil {
		admin.Close()
	}
	if err := b.Stop(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// clusterAuth reads the cluster secret. A quorum must be given one, or
// told --cluster-insecure; a lone voter has no control-plane network, so
// either setting without --controller-voters is refused rather than
// ignored. Surrounding whitespace (a file's trailing newline) is not part
// of the secret.
func clusterAuth(cfg serveConfig, quorum bool) (server.ClusterAuth, error) {
	switch {
	case cfg.ClusterSecretFile != "" && cfg.ClusterInsecure:
		return server.ClusterAuth{}, errors.New("--cluster-secret-file and --cluster-insecure exclude each other")
	case !quorum && (cfg.ClusterSecretFile != "" || cfg.ClusterInsecure):
		return server.ClusterAuth{}, errors.New("--cluster-secret-file and --cluster-insecure need --controller-voters")
	case !quorum:
		return server.ClusterAuth{}, nil
	case cfg.ClusterInsecure:
		return server.ClusterAuth{Insecure: true}, nil
	case cfg.ClusterSecretFile == "":
		return server.ClusterAuth{}, errors.New("--controller-voters needs --cluster-secret-file " +
			"(or --cluster-insecure to run the control plane unauthenticated)")
	}
	b, err := os.ReadFile(cfg.ClusterSecretFile)
	if err != nil {
		return server.ClusterAuth{}, fmt.Errorf("--cluster-secret-file: %w", err)
	}
	secret := bytes.TrimSpace(b)
	if len(secret) < transport.MinSecretBytes {
		return server.ClusterAuth{}, fmt.Errorf("--cluster-secret-file %s: %d bytes of secret, want at least %d",
			cfg.ClusterSecretFile, len(secret), transport.MinSecretBytes)
	}
	return server.ClusterAuth{Secret: secret}, nil
}

// parseRoles reads --roles: a comma-separated set of broker and controller.
func parseRoles(s string) (broker, controller bool, err error) {
	for _, r := range strings.Split(s, ",") {
		switch strings.TrimSpace(r) {
		case roleBroker:
			broker = true
		case roleController:
			controller = true
		default:
			return false, false, fmt.Errorf("--roles %q: each role is broker or controller", s)
		}
	}
	return broker, controller, nil
}

// serveController runs a controller-only node until a signal.
func serveController(cfg serveConfig, voters []server.Voter, auth server.ClusterAuth, log *slog.Logger) error {
	c, err := server.StartController(server.ControllerConfig{DataDir: cfg.DataDir, NodeID: cfg.NodeID, Voters: voters, ClusterAuth: auth,
		SessionTimeout: cfg.SessionTimeout, ConnectionLossGrace: cfg.BrokerConnectionLossGrace,
		HeartbeatInterval: cfg.HeartbeatInterval, Logger: log})
	if err != nil {
		return err
	}
	log.Info("strata controller ready", "data_dir", cfg.DataDir, "node_id", cfg.NodeID)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	sig := <-stop
	log.Info("shutting down", "signal", sig.String())
	if err := c.Stop(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
