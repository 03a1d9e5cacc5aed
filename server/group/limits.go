package group

// Defaults, as in Kafka's group.consumer.* broker configs.
const (
	// DefaultSessionTimeoutMs is how long a member may go without a
	// heartbeat before the coordinator removes it and frees its partitions
	// (group.consumer.session.timeout.ms).
	DefaultSessionTimeoutMs = 45_000
	// DefaultHeartbeatIntervalMs is the interval the coordinator tells
	// members to heartbeat at (group.consumer.heartbeat.interval.ms).
	DefaultHeartbeatIntervalMs = 5_000
	// DefaultReconcileHeartbeatIntervalMs is the interval the coordinator
	// tells a member while the member is still moving toward its target
	// (it holds partitions it must revoke, or waits for partitions their
	// owners are letting go of): a partition that moves is handed over
	// within a few of these rather than a few heartbeat intervals, and the
	// faster heartbeats last only as long as the rebalance.
	DefaultReconcileHeartbeatIntervalMs = 500
	// DefaultRebalanceTimeoutMs is how long a member may keep partitions it
	// was asked to revoke before the coordinator removes it, so one stuck
	// member cannot hold a partition from its new owner forever (the
	// consumer's max.poll.interval.ms, which it sends as its rebalance
	// timeout).
	DefaultRebalanceTimeoutMs = 300_000
	// DefaultOffsetsRetentionMs is how long the committed offsets of an
	// empty group are kept, counted from when it became empty
	// (offsets.retention.minutes = 7 days).
	DefaultOffsetsRetentionMs = 7 * 24 * 3600 * 1000
	// DefaultMaxGroupSize bounds the members of one group
	// (group.consumer.max.size).
	DefaultMaxGroupSize = 1000
	// DefaultAssignor is the server-side assignor a group uses when its
	// members name none (group.consumer.assignors, first entry).
	DefaultAssignor = AssignorUniform
)

// Assignor names, as members send them in ServerAssignor.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

// Bounds on what a request may carry. Requests beyond them are refused
// with ErrInvalidRequest before anything is stored, so a member can never
// make the coordinator hold more than these allow.
const (
	// maxGroupIDLen and maxMemberIDLen bound the ids a client chooses.
	maxGroupIDLen    = 255
	maxMemberIDLen   = 64
	maxInstanceIDLen = 255
	// maxTopicNameLen is Kafka's limit on a topic name.
	maxTopicNameLen = 249
	// maxSubscribedTopics bounds one member's topic list.
	maxSubscribedTopics = 10_000
	// maxRegexLen bounds a subscription regular expression.
	maxRegexLen = 1024
	// maxOwnedPartitions bounds the owned partitions one heartbeat reports.
	maxOwnedPartitions = 100_000
	// maxOffsetMetadataLen bounds the metadata string of one commit
	// (offset.metadata.max.bytes).
	maxOffsetMetadataLen = 4096
	// maxCommitPartitions bounds the partitions of one OffsetCommit.
	maxCommitPartitions = 100_000
)

// Member epochs with a meaning of their own in a heartbeat.
const (
	// EpochJoin is the epoch of a member joining (or rejoining after it was
	// fenced or lost its session).
	EpochJoin int32 = 0
	// EpochLeave is the epoch of a member leaving the group.
	EpochLeave int32 = -1
	// EpochStaticLeave is the epoch of a static member shutting down that
	// means to come back within its session and keep its partitions.
	EpochStaticLeave int32 = -2
)

// Config is the coordinator's settings. Zero fields take the defaults.
type Config struct {
	SessionTimeoutMs    int64
	HeartbeatIntervalMs int64
	// ReconcileHeartbeatIntervalMs is the interval of a member still
	// reconciling (DefaultReconcileHeartbeatIntervalMs; never above
	// HeartbeatIntervalMs).
	ReconcileHeartbeatIntervalMs int64
	RebalanceTimeoutMs           int64
	OffsetsRetentionMs           int64
	MaxGroupSize                 int
	// Assignor is the assignor of a group whose members name none.
	Assignor string
}

func (c Config) withDefaults() Config {
	if c.SessionTimeoutMs <= 0 {
		c.SessionTimeoutMs = DefaultSessionTimeoutMs
	}
	if c.HeartbeatIntervalMs <= 0 {
		c.HeartbeatIntervalMs = DefaultHeartbeatIntervalMs
	}
	if c.ReconcileHeartbeatIntervalMs <= 0 {
		c.ReconcileHeartbeatIntervalMs = DefaultReconcileHeartbeatIntervalMs
	}
	c.ReconcileHeartbeatIntervalMs = min(c.ReconcileHeartbeatIntervalMs, c.HeartbeatIntervalMs)
	if c.RebalanceTimeoutMs <= 0 {
		c.RebalanceTimeoutMs = DefaultRebalanceTimeoutMs
	}
	if c.OffsetsRetentionMs <= 0 {
		c.OffsetsRetentionMs = DefaultOffsetsRetentionMs
	}
	if c.MaxGroupSize <= 0 {
		c.MaxGroupSize = DefaultMaxGroupSize
	}
	if c.Assignor == "" {
		c.Assignor = DefaultAssignor
	}
	return c
}
