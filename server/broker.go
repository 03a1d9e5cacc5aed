package server

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/controller"
	"github.com/strata-db/strata/server/group"
	"github.com/strata-db/strata/server/metadata"
)

// BrokerConfig configures a single Strata broker.
type BrokerConfig struct {
	// DataDir holds the partition logs and the metadata log.
	DataDir string
	// Listen is the client address; port 0 picks one.
	Listen string
	// Cores is the shard count; 0 means one per available CPU.
	Cores int
	// Pin binds each shard to its CPU.
	Pin bool
	// NodeID is this broker's id in the cluster metadata, and its voter id
	// when Voters is set.
	NodeID int32
	Logger *slog.Logger

	// Voters lists the controller quorum (every voter's id and Raft
	// address); this node must be one of them. Empty: the broker runs a
	// 1-voter controller of its own, with no network.
	Voters []Voter
	// ClusterAuth is how the voters prove themselves to each other (a
	// quorum needs a secret, or insecure chosen; a lone voter neither).
	ClusterAuth ClusterAuth
	// Rack is the broker's rack, for replica placement.
	Rack string
	// HeartbeatInterval is how often the broker renews its session
	// (DefaultHeartbeatInterval); SessionTimeout is how long the
	// controller waits for a heartbeat before fencing a broker
	// (DefaultSessionTimeout; every voter should use the same).
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	// ConnectionLossGrace is how long the controller leader waits, after
	// a broker's session connection ends, for a heartbeat on a new one
	// before fencing it (DefaultConnectionLossGrace; negative: only the
	// session timeout fences; every voter should use the same).
	ConnectionLossGrace time.Duration
	// JoinTimeout bounds the wait at start for the controller to register
	// and unfence this broker (DefaultJoinTimeout).
	JoinTimeout time.Duration
	// RequestBudgetBytes bounds the memory of large requests across all
	// shards (see Config.RequestBudgetBytes; 0: RequestBudgetBytesDefault).
	RequestBudgetBytes int64
	// ReplicaLagTimeMax is how long a follower may go without catching up
	// to the leader's log end before the leader removes it from the ISR
	// (Kafka's replica.lag.time.max.ms; 0: 30 s).
	ReplicaLagTimeMax time.Duration
	// LogRetentionCheckInterval is how often each shard applies the
	// retention of the partitions it owns (Kafka's
	// log.retention.check.interval.ms; 0: LogRetentionCheckIntervalDefault,
	// at least LogRetentionCheckIntervalMin).
	LogRetentionCheckInterval time.Duration
	// HotPartitionWindow is the span each partition's produce rate is
	// taken over, for flagging hot partitions (0:
	// HotPartitionWindowDefault, at least HotPartitionWindowMin).
	HotPartitionWindow time.Duration
	// OffsetsTopicPartitions and OffsetsTopicReplicationFactor shape the
	// __consumer_offsets topic this broker creates when a group lookup
	// finds it missing (0: OffsetsTopicPartitionsDefault and
	// OffsetsTopicReplicationFactorDefault; the topic gets at most as many
	// replicas as there are live brokers).
	OffsetsTopicPartitions        int32
	OffsetsTopicReplicationFactor int16
	// Group is the consumer-group coordinators' settings (zero fields:
	// group's defaults).
	Group group.Config
	// LogDirMinFreeBytes and LogDirMinFreeRatio are the room the broker
	// keeps free in its data folder's file system: below the smaller of
	// the two, producers and topic creation are refused as for a full
	// disk (disk_space.go). 0: LogDirMinFreeBytesDefault and
	// LogDirMinFreeRatioDefault; negative: that bound is off.
	LogDirMinFreeBytes int64
	LogDirMinFreeRatio float64
	// LogCleanerDedupeBufferBytes is the memory of the compaction
	// cleaners' key maps, split among the shards (Kafka's
	// log.cleaner.dedupe.buffer.size; 0: LogCleanerDedupeBufferBytesDefault).
	// LogCleanerIOMaxBytesPerSecond throttles what they read and write,
	// split the same way (Kafka's log.cleaner.io.max.bytes.per.second; 0:
	// no throttle).
	LogCleanerDedupeBufferBytes   int64
	LogCleanerIOMaxBytesPerSecond int64
	// SegmentAllocateStepBytes is how far a partition's segment files
	// grow at a time (segment.Config.AllocateStepBytes), for every topic:
	// a topic whose segment.bytes is smaller grows its segments whole (0:
	// SegmentAllocateStepBytesDefault; at least
	// SegmentAllocateStepBytesMin, at most SegmentAllocateStepBytesMax).
	SegmentAllocateStepBytes int64
}

// Broker is a Strata broker: shards serving the wire protocol over the
// partition logs it leads, following the metadata of the controller
// quorum, of which it is a voter.
type Broker struct {
	ready atomic.Bool // joined the cluster: serving every API
	// stopOnce makes Stop idempotent: a second call (a test's cleanup
	// after the test stopped it) returns the first call's result.
	stopOnce sync.Once
	stopErr  error
	cfg      BrokerConfig
	log      *slog.Logger
	srv      *Server
	quorum   *quorumMember
	session  *brokerSession
	image    atomic.Pointer[metadata.Image]
	shards   []*brokerShard
	metrics  *brokerMetrics
	// storageFailures counts partitions taken offline by their storage;
	// storageFailed is set by the first (no clean shutdown after it).
	storageFailures prometheus.Counter
	storageFailed   atomic.Bool
	// logsGivenUp is set once a log held for lack of room was failed to
	// close it (disk_space.go): it closed without flushing, so the
	// shutdown is not clean either.
	logsGivenUp atomic.Bool
	// heartbeating is set once the heartbeat loop runs.
	heartbeating bool
	// hwLoaded are the high watermarks the last process checkpointed
	// (read-only once started); hwWriter writes this one's
	// (hw_checkpoint.go).
	hwLoaded map[hwKey]int64
	hwWriter *hwCheckpointer
	// dirLock holds the data folder's lock until Stop has closed the logs.
	dirLock *os.File
	// offsetsCreating is set while a proposal to create __consumer_offsets
	// is out (group_route.go).
	offsetsCreating atomic.Bool
	// disk is the data folder's room and the disk alarm.
	disk *diskSpace
	// cleanerMapBytes and cleanerIORate are each shard's share of the
	// cleaner settings (compaction.go).
	cleanerMapBytes, cleanerIORate int64
}

// StartBroker starts serving, starts the controller voter (replaying its
// metadata log), registers this process with the controller and waits
// until it is unfenced and its shards have opened the partitions it leads.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("server: no data folder")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.HeartbeatInterval >= cfg.SessionTimeout {
		return nil, fmt.Errorf("server: heartbeat interval %v is not below the session timeout %v", cfg.HeartbeatInterval, cfg.SessionTimeout)
	}
	if cfg.ConnectionLossGrace == 0 {
		cfg.ConnectionLossGrace = DefaultConnectionLossGrace
	}
	if cfg.ConnectionLossGrace >= cfg.SessionTimeout {
		return nil, fmt.Errorf("server: connection-loss grace %v is not below the session timeout %v", cfg.ConnectionLossGrace, cfg.SessionTimeout)
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	switch {
	case cfg.ReplicaLagTimeMax == 0:
		cfg.ReplicaLagTimeMax = ReplicaLagTimeMaxDefault
	case cfg.ReplicaLagTimeMax < ReplicaLagTimeMaxMin:
		return nil, fmt.Errorf("server: replica lag time max %v is below %v", cfg.ReplicaLagTimeMax, ReplicaLagTimeMaxMin)
	}
	if cfg.OffsetsTopicPartitions == 0 {
		cfg.OffsetsTopicPartitions = OffsetsTopicPartitionsDefault
	}
	if cfg.OffsetsTopicReplicationFactor == 0 {
		cfg.OffsetsTopicReplicationFactor = OffsetsTopicReplicationFactorDefault
	}
	if cfg.OffsetsTopicPartitions < 0 || cfg.OffsetsTopicReplicationFactor < 0 {
		return nil, fmt.Errorf("server: offsets topic partitions %d and replication factor %d must be positive",
			cfg.OffsetsTopicPartitions, cfg.OffsetsTopicReplicationFactor)
	}
	interval, err := retentionInterval(cfg.LogRetentionCheckInterval)
	if err != nil {
		return nil, err
	}
	cfg.LogRetentionCheckInterval = interval
	if cfg.SegmentAllocateStepBytes, err = segmentAllocateStep(cfg.SegmentAllocateStepBytes); err != nil {
		return nil, err
	}
	if cfg.HotPartitionWindow, err = hotPartitionWindow(cfg.HotPartitionWindow); err != nil {
		return nil, err
	}
	if cfg.LogDirMinFreeBytes, cfg.LogDirMinFreeRatio, err = resolveMinFree(cfg.LogDirMinFreeBytes, cfg.LogDirMinFreeRatio); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	dirLock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			dirLock.Close()
		}
	}()
	addr, err := netip.ParseAddrPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: listen address %q: %w", cfg.Listen, err)
	}
	// Taken (and removed) before any log is opened: a crash of this
	// process must not find the marker of the one before.
	cleanEpoch, err := takeCleanShutdown(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("server: clean shutdown marker: %w", err)
	}
	cores, err := resolveCores(cfg.Cores)
	if err != nil {
		return nil, err
	}
	mapBytes, ioRate, err := cleanerShares(cfg.LogCleanerDedupeBufferBytes, cfg.LogCleanerIOMaxBytesPerSecond, cores)
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, dirLock: dirLock, hwLoaded: loadHW(cfg.DataDir), hwWriter: newHWCheckpointer(cfg.DataDir),
		cleanerMapBytes: mapBytes, cleanerIORate: ioRate}
	// Requests that arrive before the first image is served see an empty
	// cluster.
	b.image.Store(metadata.NewState().Image())
	for i := range cores {
		b.shards = append(b.shards, newBrokerShard(b, i))
	}
	// Metrics exist before the shards run: they record from the first
	// request on (the shards' counters are read at scrape time).
	b.metrics = newBrokerMetrics(b)
	b.storageFailures = newStorageFailuresCounter(b.metrics.reg)
	b.disk = newDiskSpace(cfg.DataDir, cores, cfg.LogDirMinFreeBytes, cfg.LogDirMinFreeRatio, cfg.Logger, b.metrics.reg)
	defer func() {
		if !started {
			b.disk.stop()
		}
	}()
	b.srv, err = Start(Config{Listen: addr.String(), Cores: cores, Pin: cfg.Pin, Handler: b, Logger: cfg.Logger,
		RequestBudgetBytes: cfg.RequestBudgetBytes})
	if err != nil {
		return nil, err
	}
	b.quorum, err = startQuorumMember(cfg.DataDir, cfg.NodeID, cfg.Voters, cfg.ClusterAuth,
		sessionConfig(cfg.SessionTimeout, cfg.HeartbeatInterval, cfg.ConnectionLossGrace), cfg.Logger)
	if err != nil {
		b.srv.Stop()
		return nil, err
	}
	b.quorum.registerMetrics(b.metrics.reg)
	bound := b.srv.Addr()
	listener := metadata.Listener{Name: "PLAINTEXT", Host: bound.Addr().String(), Port: bound.Port()}
	b.session = newBrokerSession(b.quorum, cfg.NodeID, []metadata.Listener{listener}, cfg.Rack, cfg.HeartbeatInterval,
		b.publish, cfg.Logger)
	b.session.setCleanShutdownEpoch(cleanEpoch)
	b.session.start()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.JoinTimeout)
	defer cancel()
	if err := b.session.join(ctx, len(cfg.Voters) == 0); err != nil {
		return nil, errors.Join(err, b.Stop())
	}
	b.heartbeating = true
	go b.session.heartbeatLoop()
	// Every field above is set: shards may use them from here on (the
	// atomic store orders those writes before a shard's load).
	b.ready.Store(true)
	started = true
	return b, nil
}

// Addr is the address clients connect to.
func (b *Broker) Addr() netip.AddrPort { return b.srv.Addr() }

// Registry holds the broker's Prometheus metrics.
func (b *Broker) Registry() *prometheus.Registry { return b.metrics.reg }

// Server is the broker's shard set.
func (b *Broker) Server() *Server { return b.srv }

// Stop moves the broker's leaderships away (controlled shutdown), drains
// the shards, closes every partition log and stops the controller voter.
func (b *Broker) Stop() error {
	b.stopOnce.Do(func() { b.stopErr = b.stop() })
	return b.stopErr
}

func (b *Broker) stop() error {
	if b.heartbeating {
		// Heartbeats go on during the controlled shutdown so that the
		// session does not lapse meanwhile.
		if err := b.session.controlledShutdown(); err != nil {
			b.log.Warn("controlled shutdown failed; stopping anyway", "broker", b.cfg.NodeID, "err", err)
		}
	}
	b.session.stopHeartbeats(b.heartbeating)
	b.session.stop()
	err := b.srv.Stop()
	for _, bs := range b.shards {
		// The shards' threads are gone: their state is this goroutine's.
		// A broker that never served keeps the last process's file.
		if b.ready.Load() {
			bs.checkpointHW(nowMs(), true)
		}
		err = errors.Join(err, bs.closeAll())
	}
	b.hwWriter.stop()
	if epoch := b.session.epoch.Load(); err == nil && epoch > 0 && !b.storageFailed.Load() && !b.logsGivenUp.Load() {
		// Every log closed flushed: the next process may prove it.
		err = markCleanShutdown(b.cfg.DataDir, epoch)
		if segment.IsNoSpace(err) {
			// A full disk: the next start is taken as unclean, which
			// costs eligible-leader places, not data.
			b.log.Warn("no room to mark the shutdown clean", "err", err)
			err = nil
		}
	}
	err = errors.Join(err, b.quorum.stop())
	b.disk.stop()
	// Last: another broker may open the folder once every log is closed.
	return errors.Join(err, b.dirLock.Close())
}

// Status is the controller quorum as its leader sees it (asked of the
// leader when this voter does not lead).
func (b *Broker) Status(ctx context.Context) (controller.Status, error) { return b.quorum.status(ctx) }

// Serve decodes a request and hands it to its API's handler.
func (b *Broker) Serve(sh *Shard, req *Request) {
	bs := b.shards[sh.ID()]
	bs.sh = sh
	bs.reqStart = time.Now()
	env := &bs.env
	metrics := b.metrics.forShard(bs.id)
	if err := env.DecodeRequest(req.Message); err != nil {
		metrics.receivedUnknown()
		bs.rejectAndClose(req, err)
		return
	}
	metrics.received(env.ApiKey())
	if !b.ready.Load() && env.ApiKey() != fb.ApiKeyApiVersions {
		// The shards listen before the broker has joined the cluster (the
		// port must be known to register): until then every request but
		// ApiVersions gets a retriable error.
		bs.respondError(req, fb.ErrorCodeLeaderNotAvailable)
		return
	}
	switch env.ApiKey() {
	case fb.ApiKeyApiVersions:
		bs.apiVersions(req)
	case fb.ApiKeyMetadata:
		bs.metadata(req)
	case fb.ApiKeyCreateTopics:
		bs.createTopics(req)
	case fb.ApiKeyDeleteTopics:
		bs.deleteTopics(req)
	case fb.ApiKeyProduce:
		bs.produce(req)
	case fb.ApiKeyFetch:
		bs.fetch(req)
	case fb.ApiKeyListOffsets:
		bs.listOffsets(req)
	case fb.ApiKeyDescribeQuorum:
		bs.describeQuorum(req)
	case fb.ApiKeyReplicaFetch:
		bs.replicaFetch(req)
	case fb.ApiKeyDescribeLogDirs:
		bs.describeLogDirs(req)
	case fb.ApiKeyFindCoordinator:
		bs.findCoordinator(req)
	case fb.ApiKeyConsumerGroupHeartbeat:
		bs.groupHeartbeat(req)
	case fb.ApiKeyOffsetCommit:
		bs.offsetCommit(req)
	case fb.ApiKeyOffsetFetch:
		bs.offsetFetch(req)
	case fb.ApiKeyConsumerGroupDescribe:
		bs.groupDescribe(req)
	case fb.ApiKeyListGroups:
		bs.listGroups(req)
	case fb.ApiKeyDeleteGroups:
		bs.deleteGroups(req)
	case fb.ApiKeyDescribeConfigs:
		bs.describeConfigs(req)
	case fb.ApiKeyIncrementalAlterConfigs:
		bs.incrementalAlterConfigs(req)
	case fb.ApiKeyCreatePartitions:
		bs.createPartitions(req)
	case fb.ApiKeyDeleteRecords:
		bs.deleteRecords(req)
	default:
		bs.respondError(req, fb.ErrorCodeUnsupportedVersion)
	}
}

// Tick answers the long-polling fetches of the shard whose wait ran out,
// or all of them once the shard is stopping.
func (b *Broker) Tick(sh *Shard, now int64) {
	bs := b.shards[sh.ID()]
	bs.sh = sh
	if sh.Draining() {
		for _, job := range bs.parked {
			job.deadlineMs = 0
		}
		// Followers' fetches parked here would hold their connections
		// open until the drain gives up on them; a log held for lack of
		// room would never go idle.
		for _, p := range bs.slots {
			if p != nil {
				p.abandonReplicaFetches()
				bs.giveUpSpace(p, "the broker is stopping")
			}
		}
	}
	bs.expireFetches(now)
	bs.tickPartitions(now)
	if sh.Draining() {
		// The coordinators' waiting answers go out before the connections
		// close.
		bs.dropAllGroupHosts()
		return
	}
	bs.tickGroups(now)
}

// CompleteDisk routes a partition log's completion to its partition.
func (b *Broker) CompleteDisk(sh *Shard, cqe ring.CQE) {
	bs := b.shards[sh.ID()]
	bs.sh = sh
	bs.completeDisk(cqe)
}

// Idle reports whether the shard's partition logs have nothing in flight.
func (b *Broker) Idle(sh *Shard) bool { return b.shards[sh.ID()].idle() }

// publish hands a new metadata image to every shard; done runs once all
// have opened or closed the partitions it adds or removes. Only then do
// Metadata answers show it, so that a client never finds a partition in
// Metadata that its leader does not yet serve.
func (b *Broker) publish(im *metadata.Image, done func()) {
	var left atomic.Int32
	left.Store(int32(len(b.shards)))
	finish := func() {
		if left.Add(-1) == 0 {
			b.image.Store(im)
			done()
		}
	}
	for i, sh := range b.srv.Shards() {
		bs := b.shards[i]
		err := sh.Post(func(sh *Shard) {
			bs.sh = sh
			bs.applyImage(im)
			finish()
		})
		if err != nil {
			b.log.Error("metadata image not delivered to a shard", "shard", i, "err", err)
			finish()
		}
	}
}

// ownerShard is the shard that owns a partition: a stable hash of topic
// name and partition, so every shard computes the same owner.
func ownerShard(topic string, partition int32, shards int) int {
	h := fnv.New32a()
	h.Write([]byte(topic))
	return int((h.Sum32()*31 + uint32(partition)) % uint32(shards))
}

// partitionDir is where a partition's log lives, named as Kafka names it.
func partitionDir(dataDir, topic string, partition int32) string {
	return filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition))
}

// resolveCores turns a configured core count into a shard count.
func resolveCores(n int) (int, error) {
	if n > 0 {
		return n, nil
	}
	cpus, err := allowedCPUs()
	if err != nil {
		return 0, err
	}
	return max(1, len(cpus)), nil
}

// codeOfMeta maps a metadata rejection to its wire error code.
func codeOfMeta(err error) fb.ErrorCode {
	switch metadata.CodeOf(err) {
	case metadata.ErrNone:
		return fb.ErrorCodeNone
	case metadata.ErrInvalidTopic:
		return fb.ErrorCodeInvalidTopic
	case metadata.ErrTopicAlreadyExists:
		return fb.ErrorCodeTopicAlreadyExists
	case metadata.ErrUnknownTopicOrPartition:
		return fb.ErrorCodeUnknownTopicOrPartition
	case metadata.ErrInvalidConfig:
		return fb.ErrorCodeInvalidConfig
	case metadata.ErrInvalidPartitions:
		return fb.ErrorCodeInvalidPartitions
	case metadata.ErrInvalidReplicationFactor:
		return fb.ErrorCodeInvalidReplicationFactor
	case metadata.ErrNotLeader:
		return fb.ErrorCodeNotLeader
	case metadata.ErrFencedLeaderEpoch:
		return fb.ErrorCodeFencedLeaderEpoch
	}
	var ce *schema.CodeError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return fb.ErrorCodeUnknown
}
