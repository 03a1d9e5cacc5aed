package metadata

// Limits on everything the metadata log can hold. Decoders check each of
// them before allocating, so a corrupt or hostile record can never make a
// node allocate more than these allow.
const (
	// maxBrokers bounds the number of registered brokers (ids need not be
	// dense; this bounds the map, not the id space).
	maxBrokers = 4096
	// maxBrokerID is the largest broker id; ids are non-negative int32 as in
	// Kafka, so -1 can mean "no leader".
	maxBrokerID = 1<<31 - 1
	// maxListeners bounds the listeners one broker advertises.
	maxListeners = 8
	// maxListenerNameLen bounds a listener name such as "PLAINTEXT".
	maxListenerNameLen = 32
	// maxHostLen is the longest DNS name (RFC 1035).
	maxHostLen = 255
	// maxPort is the largest TCP port.
	maxPort = 65535
	// maxRackLen bounds a rack name.
	maxRackLen = 64

	// maxTopics bounds the number of topics in the cluster.
	maxTopics = 65536
	// maxTopicNameLen is Kafka's limit, chosen so that a partition folder
	// name "<topic>-<partition>" fits in a 255-byte file name.
	maxTopicNameLen = 249
	// TopicNameBytesMax is maxTopicNameLen for the broker, which bounds
	// what it copies of a name it refuses.
	TopicNameBytesMax = maxTopicNameLen
	// maxPartitionsPerTopic bounds one topic's partition count.
	maxPartitionsPerTopic = 10000
	// maxTotalPartitions bounds the partitions across all topics.
	maxTotalPartitions = 1 << 20
	// maxReplicationFactor bounds a replica list (and so an ISR).
	maxReplicationFactor = 16

	// maxConfigValueLen bounds one topic config value.
	maxConfigValueLen = 64

	// topicIDLen and incarnationIDLen are the sizes of the random ids.
	topicIDLen       = 16
	incarnationIDLen = 16

	// maxBatchBytes bounds one encoded batch of records (one Raft entry).
	// Creating a topic of maxPartitionsPerTopic partitions at the largest
	// replication factor stays well inside it.
	maxBatchBytes = 64 << 20
	// maxSnapshotBytes bounds a snapshot accepted by Restore.
	maxSnapshotBytes = 1 << 30
)

// Defaults for topics and sessions.
const (
	// DefaultSessionTimeoutMs is how long a broker may go without a heartbeat
	// before the controller fences it (Kafka's broker.session.timeout.ms).
	DefaultSessionTimeoutMs = 9000
	// DefaultConnectionLossGraceMs is how long after a broker's session
	// connection to the controller leader ends the leader waits for it to
	// heartbeat on a new one before fencing it (sessions.go). It covers a
	// redial and a handshake on a loaded machine; a dead process never
	// comes back within it.
	DefaultConnectionLossGraceMs = 1000
	// defaultPartitions and defaultReplicationFactor apply when a topic is
	// created without them (Kafka's num.partitions, default.replication.factor).
	defaultPartitions        = 1
	defaultReplicationFactor = 1
	// defaultMinInsyncReplicas is Kafka's min.insync.replicas default.
	defaultMinInsyncReplicas = 1
	// NoLeader is the leader of a partition that has none.
	NoLeader int32 = -1
)
