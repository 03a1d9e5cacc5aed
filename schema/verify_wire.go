package schema

// Descriptions of the tables in fbs/wire.fbs, fields in slot order.

// Sizes of the scalar types the wire schema uses.
const (
	sizeBool  = 1
	sizeByte  = 1
	sizeShort = 2
	sizeInt   = 4
	sizeLong  = 8
	// sizeErrorCode, sizeApiKey and sizeAcks are the enums' underlying
	// types: short, ushort and byte.
	sizeErrorCode = sizeShort
	sizeApiKey    = sizeShort
	sizeAcks      = sizeByte
	// sizeAlterConfigOp is AlterConfigOp's underlying type, byte.
	sizeAlterConfigOp = sizeByte
	// ApiVersionRange is three ushorts.
	sizeApiVersionRange  = 3 * sizeShort
	alignApiVersionRange = sizeShort
)

// sizeDouble is the size of the schema's doubles (the produce rates of
// LogDirPartition).
const sizeDouble = 8

var (
	descApiVersionsRequest = &tableDesc{name: "ApiVersionsRequest", fields: []field{
		fString("client_software_name"),
		fString("client_software_version"),
	}}
	descApiVersionsResponse = &tableDesc{name: "ApiVersionsResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fStructVector("api_keys", sizeApiVersionRange, alignApiVersionRange),
	}}

	descMetadataRequest = &tableDesc{name: "MetadataRequest", fields: []field{
		fStringVector("topics"),
	}}
	descBroker = &tableDesc{name: "Broker", fields: []field{
		fScalar("node_id", sizeInt),
		fString("host").req(),
		fScalar("port", sizeShort),
		fString("rack"),
		fScalar("fenced", sizeBool),
	}}
	descPartitionMetadata = &tableDesc{name: "PartitionMetadata", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fScalar("partition", sizeInt),
		fScalar("leader_id", sizeInt),
		fScalar("leader_epoch", sizeInt),
		fScalarVector("replicas", sizeInt),
		fScalarVector("isr", sizeInt),
		fScalarVector("elr", sizeInt),
		fScalarVector("last_known_elr", sizeInt),
		fScalarVector("offline_replicas", sizeInt),
	}}
	descTopicMetadata = &tableDesc{name: "TopicMetadata", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fString("name").req(),
		fTableVector("partitions", descPartitionMetadata),
	}}
	descMetadataResponse = &tableDesc{name: "MetadataResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fTableVector("brokers", descBroker),
		fScalar("controller_id", sizeInt),
		fString("cluster_id"),
		fTableVector("topics", descTopicMetadata),
	}}

	descTopicConfig = &tableDesc{name: "TopicConfig", fields: []field{
		fString("name").req(),
		fString("value"),
	}}
	descCreatableTopic = &tableDesc{name: "CreatableTopic", fields: []field{
		fString("name").req(),
		fScalar("num_partitions", sizeInt),
		fScalar("replication_factor", sizeShort),
		fTableVector("configs", descTopicConfig),
	}}
	descCreateTopicsRequest = &tableDesc{name: "CreateTopicsRequest", fields: []field{
		fTableVector("topics", descCreatableTopic),
		fScalar("timeout_ms", sizeInt),
		fScalar("validate_only", sizeBool),
	}}
	descCreatableTopicResult = &tableDesc{name: "CreatableTopicResult", fields: []field{
		fString("name").req(),
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
		fScalar("num_partitions", sizeInt),
		fScalar("replication_factor", sizeShort),
	}}
	descCreateTopicsResponse = &tableDesc{name: "CreateTopicsResponse", fields: []field{
		fTableVector("topics", descCreatableTopicResult),
	}}

	descDeleteTopicsRequest = &tableDesc{name: "DeleteTopicsRequest", fields: []field{
		fStringVector("topic_names"),
		fScalar("timeout_ms", sizeInt),
	}}
	descDeletableTopicResult = &tableDesc{name: "DeletableTopicResult", fields: []field{
		fString("name").req(),
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
	}}
	descDeleteTopicsResponse = &tableDesc{name: "DeleteTopicsResponse", fields: []field{
		fTableVector("topics", descDeletableTopicResult),
	}}

	descProducePartition = &tableDesc{name: "ProducePartition", fields: []field{
		fScalar("partition", sizeInt),
		fScalarVector("frames", sizeByte),
	}}
	descProduceTopic = &tableDesc{name: "ProduceTopic", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descProducePartition),
	}}
	descProduceRequest = &tableDesc{name: "ProduceRequest", fields: []field{
		fScalar("acks", sizeAcks),
		fScalar("timeout_ms", sizeInt),
		fTableVector("topics", descProduceTopic),
	}}
	descProducePartitionResponse = &tableDesc{name: "ProducePartitionResponse", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("error_code", sizeErrorCode),
		fScalar("base_offset", sizeLong),
		fScalar("log_append_time_ms", sizeLong),
		fScalar("log_start_offset", sizeLong),
		fString("error_message"),
	}}
	descProduceTopicResponse = &tableDesc{name: "ProduceTopicResponse", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descProducePartitionResponse),
	}}
	descProduceResponse = &tableDesc{name: "ProduceResponse", fields: []field{
		fTableVector("topics", descProduceTopicResponse),
		fScalar("throttle_time_ms", sizeInt),
	}}

	descFetchPartition = &tableDesc{name: "FetchPartition", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("current_leader_epoch", sizeInt),
		fScalar("fetch_offset", sizeLong),
		fScalar("log_start_offset", sizeLong),
		fScalar("partition_max_bytes", sizeInt),
	}}
	descFetchTopic = &tableDesc{name: "FetchTopic", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descFetchPartition),
	}}
	descFetchRequest = &tableDesc{name: "FetchRequest", fields: []field{
		fScalar("replica_id", sizeInt),
		fScalar("max_wait_ms", sizeInt),
		fScalar("min_bytes", sizeInt),
		fScalar("max_bytes", sizeInt),
		fTableVector("topics", descFetchTopic),
	}}
	descFetchPartitionResponse = &tableDesc{name: "FetchPartitionResponse", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("error_code", sizeErrorCode),
		fScalar("high_watermark", sizeLong),
		fScalar("log_start_offset", sizeLong),
		fScalar("frames_bytes", sizeInt),
		fScalar("next_fetch_offset", sizeLong),
	}}
	descFetchTopicResponse = &tableDesc{name: "FetchTopicResponse", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descFetchPartitionResponse),
	}}
	descFetchResponse = &tableDesc{name: "FetchResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fScalar("throttle_time_ms", sizeInt),
		fTableVector("topics", descFetchTopicResponse),
	}}

	descListOffsetsPartition = &tableDesc{name: "ListOffsetsPartition", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("current_leader_epoch", sizeInt),
		fScalar("timestamp", sizeLong),
	}}
	descListOffsetsTopic = &tableDesc{name: "ListOffsetsTopic", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descListOffsetsPartition),
	}}
	descListOffsetsRequest = &tableDesc{name: "ListOffsetsRequest", fields: []field{
		fScalar("replica_id", sizeInt),
		fTableVector("topics", descListOffsetsTopic),
	}}
	descListOffsetsPartitionResponse = &tableDesc{name: "ListOffsetsPartitionResponse", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("error_code", sizeErrorCode),
		fScalar("timestamp", sizeLong),
		fScalar("offset", sizeLong),
		fScalar("leader_epoch", sizeInt),
	}}
	descListOffsetsTopicResponse = &tableDesc{name: "ListOffsetsTopicResponse", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descListOffsetsPartitionResponse),
	}}
	descListOffsetsResponse = &tableDesc{name: "ListOffsetsResponse", fields: []field{
		fTableVector("topics", descListOffsetsTopicResponse),
	}}

	descDescribeQuorumRequest = &tableDesc{name: "DescribeQuorumRequest"}
	descQuorumVoter           = &tableDesc{name: "QuorumVoter", fields: []field{
		fScalar("voter_id", sizeInt),
		fScalar("log_end", sizeLong),
		fScalar("lag", sizeLong),
		fScalar("active", sizeBool),
	}}
	descDescribeQuorumResponse = &tableDesc{name: "DescribeQuorumResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fScalar("leader_id", sizeInt),
		fScalar("term", sizeLong),
		fScalar("commit_index", sizeLong),
		fScalar("log_end", sizeLong),
		fScalar("metadata_offset", sizeLong),
		fTableVector("voters", descQuorumVoter),
	}}

	descDescribeLogDirsRequest = &tableDesc{name: "DescribeLogDirsRequest", fields: []field{
		fStringVector("topics"),
	}}
	descLogDirPartition = &tableDesc{name: "LogDirPartition", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("error_code", sizeErrorCode),
		fScalar("size_bytes", sizeLong),
		fScalar("bytes_in_rate", sizeDouble),
		fScalar("records_in_rate", sizeDouble),
	}}
	descLogDirTopic = &tableDesc{name: "LogDirTopic", fields: []field{
		fString("name").req(),
		fScalar("error_code", sizeErrorCode),
		fTableVector("partitions", descLogDirPartition),
	}}
	descDescribeLogDirsResponse = &tableDesc{name: "DescribeLogDirsResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fString("log_dir"),
		fScalar("total_bytes", sizeLong),
		fScalar("usable_bytes", sizeLong),
		fTableVector("topics", descLogDirTopic),
	}}

	descReplicaFetchRequest = &tableDesc{name: "ReplicaFetchRequest", fields: []field{
		fScalar("replica_id", sizeInt),
		fString("topic").req(),
		fScalarVector("topic_id", sizeByte),
		fScalar("partition", sizeInt),
		fScalar("current_leader_epoch", sizeInt),
		fScalar("gen", sizeLong),
		fScalar("seq", sizeLong),
		fScalar("log_end", sizeLong),
		fScalar("last_fetched_epoch", sizeInt),
		fScalar("durable_end", sizeLong),
		fScalar("window_start", sizeLong),
		fScalar("window_end", sizeLong),
		fScalar("max_wait_ms", sizeInt),
		fScalar("max_bytes", sizeInt),
		fScalar("log_start_offset", sizeLong),
	}}
	descReplicaFetchResponse = &tableDesc{name: "ReplicaFetchResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fScalar("leader_epoch", sizeInt),
		fScalar("gen", sizeLong),
		fScalar("seq", sizeLong),
		fScalar("has_diverging", sizeBool),
		fScalar("diverging_epoch", sizeInt),
		fScalar("diverging_end_offset", sizeLong),
		fScalar("high_watermark", sizeLong),
		fScalar("log_start_offset", sizeLong),
		fScalar("log_end", sizeLong),
		fScalar("window_start", sizeLong),
		fScalar("window_end", sizeLong),
		fScalar("limit", sizeLong),
		fScalar("frames_bytes", sizeInt),
	}}

	descGroupTopicPartitions = &tableDesc{name: "GroupTopicPartitions", fields: []field{
		fString("topic").req(),
		fScalarVector("partitions", sizeInt),
	}}

	descFindCoordinatorRequest = &tableDesc{name: "FindCoordinatorRequest", fields: []field{
		fString("group_id").req(),
	}}
	descFindCoordinatorResponse = &tableDesc{name: "FindCoordinatorResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
		fScalar("node_id", sizeInt),
		fString("host"),
		fScalar("port", sizeShort),
	}}

	descConsumerGroupHeartbeatRequest = &tableDesc{name: "ConsumerGroupHeartbeatRequest", fields: []field{
		fString("group_id").req(),
		fString("member_id"),
		fString("instance_id"),
		fScalar("member_epoch", sizeInt),
		fScalar("rebalance_timeout_ms", sizeInt),
		fStringVector("subscribed_topic_names"),
		fString("subscribed_topic_regex"),
		fString("server_assignor"),
		fTableVector("owned_topic_partitions", descGroupTopicPartitions),
	}}
	descConsumerGroupHeartbeatResponse = &tableDesc{name: "ConsumerGroupHeartbeatResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
		fString("member_id"),
		fScalar("member_epoch", sizeInt),
		fScalar("heartbeat_interval_ms", sizeInt),
		fTableVector("assignment", descGroupTopicPartitions),
	}}

	descOffsetCommitPartition = &tableDesc{name: "OffsetCommitPartition", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("committed_offset", sizeLong),
		fString("committed_metadata"),
	}}
	descOffsetCommitTopic = &tableDesc{name: "OffsetCommitTopic", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descOffsetCommitPartition),
	}}
	descOffsetCommitRequest = &tableDesc{name: "OffsetCommitRequest", fields: []field{
		fString("group_id").req(),
		fString("member_id"),
		fScalar("member_epoch", sizeInt),
		fTableVector("topics", descOffsetCommitTopic),
	}}
	descOffsetCommitPartitionResponse = &tableDesc{name: "OffsetCommitPartitionResponse", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("error_code", sizeErrorCode),
	}}
	descOffsetCommitTopicResponse = &tableDesc{name: "OffsetCommitTopicResponse", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descOffsetCommitPartitionResponse),
	}}
	descOffsetCommitResponse = &tableDesc{name: "OffsetCommitResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
		fTableVector("topics", descOffsetCommitTopicResponse),
	}}

	descOffsetFetchRequest = &tableDesc{name: "OffsetFetchRequest", fields: []field{
		fString("group_id").req(),
		fString("member_id"),
		fScalar("member_epoch", sizeInt),
		fTableVector("topics", descGroupTopicPartitions),
	}}
	descOffsetFetchPartitionResponse = &tableDesc{name: "OffsetFetchPartitionResponse", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("committed_offset", sizeLong),
		fString("committed_metadata"),
		fScalar("error_code", sizeErrorCode),
	}}
	descOffsetFetchTopicResponse = &tableDesc{name: "OffsetFetchTopicResponse", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descOffsetFetchPartitionResponse),
	}}
	descOffsetFetchResponse = &tableDesc{name: "OffsetFetchResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
		fTableVector("topics", descOffsetFetchTopicResponse),
	}}

	descConsumerGroupDescribeRequest = &tableDesc{name: "ConsumerGroupDescribeRequest", fields: []field{
		fStringVector("group_ids"),
	}}
	descDescribedGroupMember = &tableDesc{name: "DescribedGroupMember", fields: []field{
		fString("member_id").req(),
		fString("instance_id"),
		fString("client_id"),
		fString("client_host"),
		fScalar("member_epoch", sizeInt),
		fStringVector("subscribed_topic_names"),
		fString("subscribed_topic_regex"),
		fString("server_assignor"),
		fTableVector("assignment", descGroupTopicPartitions),
		fTableVector("pending_revocation", descGroupTopicPartitions),
		fTableVector("target_assignment", descGroupTopicPartitions),
	}}
	descDescribedGroup = &tableDesc{name: "DescribedGroup", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
		fString("group_id").req(),
		fString("group_state"),
		fScalar("group_epoch", sizeInt),
		fScalar("assignment_epoch", sizeInt),
		fString("assignor_name"),
		fTableVector("members", descDescribedGroupMember),
	}}
	descConsumerGroupDescribeResponse = &tableDesc{name: "ConsumerGroupDescribeResponse", fields: []field{
		fTableVector("groups", descDescribedGroup),
	}}

	descListGroupsRequest = &tableDesc{name: "ListGroupsRequest", fields: []field{
		fStringVector("states_filter"),
	}}
	descListedGroup = &tableDesc{name: "ListedGroup", fields: []field{
		fString("group_id").req(),
		fString("group_state"),
	}}
	descListGroupsResponse = &tableDesc{name: "ListGroupsResponse", fields: []field{
		fScalar("error_code", sizeErrorCode),
		fTableVector("groups", descListedGroup),
	}}

	descDeleteGroupsRequest = &tableDesc{name: "DeleteGroupsRequest", fields: []field{
		fStringVector("group_ids"),
	}}
	descDeletableGroupResult = &tableDesc{name: "DeletableGroupResult", fields: []field{
		fString("group_id").req(),
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
	}}
	descDeleteGroupsResponse = &tableDesc{name: "DeleteGroupsResponse", fields: []field{
		fTableVector("results", descDeletableGroupResult),
	}}

	descDescribeConfigsRequest = &tableDesc{name: "DescribeConfigsRequest", fields: []field{
		fStringVector("topics"),
	}}
	descDescribedConfig = &tableDesc{name: "DescribedConfig", fields: []field{
		fString("name").req(),
		fString("value"),
		fScalar("is_default", sizeBool),
		fScalar("read_only", sizeBool),
	}}
	descDescribeConfigsTopic = &tableDesc{name: "DescribeConfigsTopic", fields: []field{
		fString("name").req(),
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
		fTableVector("configs", descDescribedConfig),
	}}
	descDescribeConfigsResponse = &tableDesc{name: "DescribeConfigsResponse", fields: []field{
		fTableVector("topics", descDescribeConfigsTopic),
	}}
	descAlterableConfig = &tableDesc{name: "AlterableConfig", fields: []field{
		fString("name").req(),
		fScalar("op", sizeAlterConfigOp),
		fString("value"),
	}}
	descAlterConfigsTopic = &tableDesc{name: "AlterConfigsTopic", fields: []field{
		fString("name").req(),
		fTableVector("configs", descAlterableConfig),
	}}
	descIncrementalAlterConfigsRequest = &tableDesc{name: "IncrementalAlterConfigsRequest", fields: []field{
		fTableVector("topics", descAlterConfigsTopic),
		fScalar("timeout_ms", sizeInt),
		fScalar("validate_only", sizeBool),
	}}
	descAlterConfigsTopicResult = &tableDesc{name: "AlterConfigsTopicResult", fields: []field{
		fString("name").req(),
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
	}}
	descIncrementalAlterConfigsResponse = &tableDesc{name: "IncrementalAlterConfigsResponse", fields: []field{
		fTableVector("topics", descAlterConfigsTopicResult),
	}}
	descCreatePartitionsTopic = &tableDesc{name: "CreatePartitionsTopic", fields: []field{
		fString("name").req(),
		fScalar("count", sizeInt),
	}}
	descCreatePartitionsRequest = &tableDesc{name: "CreatePartitionsRequest", fields: []field{
		fTableVector("topics", descCreatePartitionsTopic),
		fScalar("timeout_ms", sizeInt),
		fScalar("validate_only", sizeBool),
	}}
	descCreatePartitionsTopicResult = &tableDesc{name: "CreatePartitionsTopicResult", fields: []field{
		fString("name").req(),
		fScalar("error_code", sizeErrorCode),
		fString("error_message"),
	}}
	descCreatePartitionsResponse = &tableDesc{name: "CreatePartitionsResponse", fields: []field{
		fTableVector("topics", descCreatePartitionsTopicResult),
	}}

	descDeleteRecordsPartition = &tableDesc{name: "DeleteRecordsPartition", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("offset", sizeLong),
	}}
	descDeleteRecordsTopic = &tableDesc{name: "DeleteRecordsTopic", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descDeleteRecordsPartition),
	}}
	descDeleteRecordsRequest = &tableDesc{name: "DeleteRecordsRequest", fields: []field{
		fTableVector("topics", descDeleteRecordsTopic),
		fScalar("timeout_ms", sizeInt),
	}}
	descDeleteRecordsPartitionResponse = &tableDesc{name: "DeleteRecordsPartitionResponse", fields: []field{
		fScalar("partition", sizeInt),
		fScalar("low_watermark", sizeLong),
		fScalar("error_code", sizeErrorCode),
	}}
	descDeleteRecordsTopicResponse = &tableDesc{name: "DeleteRecordsTopicResponse", fields: []field{
		fString("name").req(),
		fTableVector("partitions", descDeleteRecordsPartitionResponse),
	}}
	descDeleteRecordsResponse = &tableDesc{name: "DeleteRecordsResponse", fields: []field{
		fTableVector("topics", descDeleteRecordsTopicResponse),
	}}

	// descMessage lists the union members in tag order (tag 1 first).
	descMessage = &unionDesc{name: "Message", members: []*tableDesc{
		descApiVersionsRequest,
		descApiVersionsResponse,
		descMetadataRequest,
		descMetadataResponse,
		descCreateTopicsRequest,
		descCreateTopicsResponse,
		descDeleteTopicsRequest,
		descDeleteTopicsResponse,
		descProduceRequest,
		descProduceResponse,
		descFetchRequest,
		descFetchResponse,
		descListOffsetsRequest,
		descListOffsetsResponse,
		descDescribeQuorumRequest,
		descDescribeQuorumResponse,
		descDescribeLogDirsRequest,
		descDescribeLogDirsResponse,
		descReplicaFetchRequest,
		descReplicaFetchResponse,
		descFindCoordinatorRequest,
		descFindCoordinatorResponse,
		descConsumerGroupHeartbeatRequest,
		descConsumerGroupHeartbeatResponse,
		descOffsetCommitRequest,
		descOffsetCommitResponse,
		descOffsetFetchRequest,
		descOffsetFetchResponse,
		descConsumerGroupDescribeRequest,
		descConsumerGroupDescribeResponse,
		descListGroupsRequest,
		descListGroupsResponse,
		descDeleteGroupsRequest,
		descDeleteGroupsResponse,
		descDescribeConfigsRequest,
		descDescribeConfigsResponse,
		descIncrementalAlterConfigsRequest,
		descIncrementalAlterConfigsResponse,
		descCreatePartitionsRequest,
		descCreatePartitionsResponse,
		descDeleteRecordsRequest,
		descDeleteRecordsResponse,
	}}

	descEnvelope = &tableDesc{name: "Envelope", fields: envelopeFields()}
)

func envelopeFields() []field {
	msgType, msg := fUnion("message", descMessage)
	return []field{
		fScalar("api_key", sizeApiKey),
		fScalar("api_version", sizeShort),
		fScalar("correlation_id", sizeInt),
		fString("client_id"),
		fScalar("error_code", sizeErrorCode),
		msgType,
		msg,
	}
}

// EnvelopeIdentifier is the file identifier of an Envelope.
const EnvelopeIdentifier = "SENV"

// Limits on one request or response envelope.
const (
	// LengthPrefixBytes is the little-endian length before each envelope.
	LengthPrefixBytes = 4
	// EnvelopeBytesMax bounds one message, length prefix included: room for
	// a produce request carrying a frame of MaxFrameBytes and more besides.
	EnvelopeBytesMax = 2 * MaxFrameBytes
	// envelopeBytesMin is the length prefix, root offset and identifier.
	envelopeBytesMin = LengthPrefixBytes + uoffsetBytes + fileIdentifierBytes
	// envelopeDepthMax: envelope, message, topic, partition, with room for
	// one more level, which ConsumerGroupDescribe takes (envelope, message,
	// group, member, topic).
	envelopeDepthMax = 5
	// envelopeObjectsMax bounds the tables, vectors and strings of one
	// message.
	envelopeObjectsMax = 1 << 20
	// envelopeVectorLenMax bounds the topics, partitions, brokers or names
	// in any one list.
	envelopeVectorLenMax = 1 << 18
)

var envelopeLimits = Limits{
	BytesMax:     EnvelopeBytesMax,
	DepthMax:     envelopeDepthMax,
	ObjectsMax:   envelopeObjectsMax,
	VectorLenMax: envelopeVectorLenMax,
}

// VerifyEnvelope checks that b is one whole message: the length prefix,
// equal to len(b)-LengthPrefixBytes, and a well-formed Envelope FlatBuffer
// (identifier "SENV") with whichever union member it names. Only after it
// returns nil may the generated accessors read b.
func VerifyEnvelope(b []byte) error {
	n, err := PeekMessageLength(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return &VerifyError{Kind: ErrVerifySize, Table: "Envelope", Pos: int64(len(b))}
	}
	return verifyRoot(b, LengthPrefixBytes, EnvelopeIdentifier, descEnvelope, &envelopeLimits)
}
