package schema

import (
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema/fb"
)

var update = flag.Bool("update", false, "rewrite golden files and the fuzz seed corpus")

// checkGolden compares got with a hex golden file (whitespace and lines
// starting with # ignored), or writes got there under -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		var sb strings.Builder
		sb.WriteString("# " + name + ": regenerate with go test ./schema -run Golden -update\n")
		for i := 0; i < len(got); i += 16 {
			end := min(i+16, len(got))
			sb.WriteString(hex.EncodeToString(got[i:end]))
			sb.WriteByte('\n')
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var hx strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		hx.WriteString(strings.Join(strings.Fields(line), ""))
	}
	want, err := hex.DecodeString(hx.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s mismatch:\n got %x\nwant %x", name, got, want)
	}
}

// sampleRecords is a small batch touching every field: null and empty keys
// and values, headers with and without values, timestamps out of order.
func sampleRecords() []Record {
	return []Record{
		{Key: []byte("k0"), Value: []byte("v0"), TimestampMs: 1000},
		{Key: nil, Value: []byte("no key"), TimestampMs: 1005},
		{Key: []byte{}, Value: nil, TimestampMs: 999,
			Headers: []RecordHeader{{Key: []byte("h1"), Value: []byte("x")}, {Key: []byte("h2")}}},
	}
}

func buildFrame(t testing.TB, opts BatchOptions, recs []Record) []byte {
	t.Helper()
	b, err := NewBatchBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err := b.Append(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sampleMessages returns one message of every union member, with every
// field set, and the header to send it with.
func sampleMessages() []*fb.MessageT {
	frames := []byte("frame bytes stand-in")
	return []*fb.MessageT{
		{Type: fb.MessageApiVersionsRequest, Value: &fb.ApiVersionsRequestT{ClientSoftwareName: "strata-go", ClientSoftwareVersion: "0.1"}},
		{Type: fb.MessageApiVersionsResponse, Value: &fb.ApiVersionsResponseT{ApiKeys: []*fb.ApiVersionRangeT{
			{ApiKey: fb.ApiKeyProduce, MinVersion: 0, MaxVersion: 1}, {ApiKey: fb.ApiKeyFetch, MinVersion: 0, MaxVersion: 2}}}},
		{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{Topics: []string{"a", "b"}}},
		{Type: fb.MessageMetadataResponse, Value: &fb.MetadataResponseT{
			Brokers:      []*fb.BrokerT{{NodeId: 1, Host: "h1", Port: 9092, Rack: "r1"}},
			ControllerId: 1, ClusterId: "c",
			Topics: []*fb.TopicMetadataT{{Name: "a", Partitions: []*fb.PartitionMetadataT{
				{Partition: 0, LeaderId: 1, LeaderEpoch: 3, Replicas: []int32{1, 2, 3}, Isr: []int32{1, 2},
					Elr: []int32{3}, LastKnownElr: []int32{2}, OfflineReplicas: []int32{3}}}}}}},
		{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{TimeoutMs: 5000, ValidateOnly: true,
			Topics: []*fb.CreatableTopicT{{Name: "a", NumPartitions: 3, ReplicationFactor: 3,
				Configs: []*fb.TopicConfigT{{Name: "retention.ms", Value: "1000"}}}}}},
		{Type: fb.MessageCreateTopicsResponse, Value: &fb.CreateTopicsResponseT{Topics: []*fb.CreatableTopicResultT{
			{Name: "a", ErrorCode: fb.ErrorCodeTopicAlreadyExists, ErrorMessage: "exists", NumPartitions: 3, ReplicationFactor: 3}}}},
		{Type: fb.MessageDeleteTopicsRequest, Value: &fb.DeleteTopicsRequestT{TopicNames: []string{"a"}, TimeoutMs: 100}},
		{Type: fb.MessageDeleteTopicsResponse, Value: &fb.DeleteTopicsResponseT{Topics: []*fb.DeletableTopicResultT{
			{Name: "a", ErrorCode: fb.ErrorCodeUnknownTopicOrPartition, ErrorMessage: "no such topic"}}}},
		{Type: fb.MessageProduceRequest, Value: &fb.ProduceRequestT{Acks: fb.AcksAll, TimeoutMs: 30000,
			Topics: []*fb.ProduceTopicT{{Name: "a", Partitions: []*fb.ProducePartitionT{{Partition: 2, Frames: frames}}}}}},
		{Type: fb.MessageProduceResponse, Value: &fb.ProduceResponseT{ThrottleTimeMs: 1, Topics: []*fb.ProduceTopicResponseT{
			{Name: "a", Partitions: []*fb.ProducePartitionResponseT{{Partition: 2, BaseOffset: 42, LogAppendTimeMs: 7, LogStartOffset: 0, ErrorMessage: "m"}}}}}},
		{Type: fb.MessageFetchRequest, Value: &fb.FetchRequestT{ReplicaId: -1, MaxWaitMs: 500, MinBytes: 1, MaxBytes: 1 << 20,
			Topics: []*fb.FetchTopicT{{Name: "a", Partitions: []*fb.FetchPartitionT{
				{Partition: 0, CurrentLeaderEpoch: 3, FetchOffset: 10, LogStartOffset: -1, PartitionMaxBytes: 1 << 16}}}}}},
		{Type: fb.MessageFetchResponse, Value: &fb.FetchResponseT{ThrottleTimeMs: 0, Topics: []*fb.FetchTopicResponseT{
			{Name: "a", Partitions: []*fb.FetchPartitionResponseT{
				{Partition: 0, HighWatermark: 12, LogStartOffset: 0, FramesBytes: 3},
				{Partition: 1, ErrorCode: fb.ErrorCodeNotLeader, HighWatermark: -1, LogStartOffset: -1}}},
			{Name: "b", Partitions: []*fb.FetchPartitionResponseT{{Partition: 0, HighWatermark: 5, LogStartOffset: 0, FramesBytes: 2}}}}}},
		{Type: fb.MessageListOffsetsRequest, Value: &fb.ListOffsetsRequestT{ReplicaId: -1, Topics: []*fb.ListOffsetsTopicT{
			{Name: "a", Partitions: []*fb.ListOffsetsPartitionT{{Partition: 0, CurrentLeaderEpoch: -1, Timestamp: ListOffsetsEarliest}}}}}},
		{Type: fb.MessageListOffsetsResponse, Value: &fb.ListOffsetsResponseT{Topics: []*fb.ListOffsetsTopicResponseT{
			{Name: "a", Partitions: []*fb.ListOffsetsPartitionResponseT{{Partition: 0, Timestamp: -1, Offset: 0, LeaderEpoch: 3}}}}}},
		{Type: fb.MessageDescribeQuorumRequest, Value: &fb.DescribeQuorumRequestT{}},
		{Type: fb.MessageDescribeQuorumResponse, Value: &fb.DescribeQuorumResponseT{LeaderId: 2, Term: 7, CommitIndex: 120,
			LogEnd: 121, MetadataOffset: 300, Voters: []*fb.QuorumVoterT{
				{VoterId: 1, LogEnd: 118, Lag: 3, Active: true}, {VoterId: 2, LogEnd: 121, Active: true}, {VoterId: 3}}}},
		{Type: fb.MessageDescribeLogDirsRequest, Value: &fb.DescribeLogDirsRequestT{Topics: []string{"a", "b"}}},
		{Type: fb.MessageDescribeLogDirsResponse, Value: &fb.DescribeLogDirsResponseT{LogDir: "/var/lib/strata", TotalBytes: 1 << 40,
			UsableBytes: 1 << 39, Topics: []*fb.LogDirTopicT{
				{Name: "a", Partitions: []*fb.LogDirPartitionT{{Partition: 0, SizeBytes: 4096, BytesInRate: 70123.5, RecordsInRate: 1250},
					{Partition: 1, ErrorCode: fb.ErrorCodeStorageError, SizeBytes: -1, BytesInRate: -1, RecordsInRate: -1}}},
				{Name: "b", ErrorCode: fb.ErrorCodeUnknownTopicOrPartition, Partitions: []*fb.LogDirPartitionT{}}}}},
		{Type: fb.MessageReplicaFetchRequest, Value: &fb.ReplicaFetchRequestT{ReplicaId: 2, Topic: "a", TopicId: []byte{1, 2, 3, 4},
			Partition: 1, CurrentLeaderEpoch: 4, Gen: 9, Seq: 3, LogEnd: 100, LastFetchedEpoch: 4, DurableEnd: 90,
			WindowStart: 100, WindowEnd: 200, MaxWaitMs: 500, MaxBytes: 1 << 20}},
		{Type: fb.MessageReplicaFetchResponse, Value: &fb.ReplicaFetchResponseT{LeaderEpoch: 4, Gen: 9, Seq: 3, HasDiverging: true,
			DivergingEpoch: 3, DivergingEndOffset: 80, HighWatermark: 95, LogStartOffset: 0, LogEnd: 120, WindowStart: 100,
			WindowEnd: 200, Limit: 120, FramesBytes: 7}},
		{Type: fb.MessageFindCoordinatorRequest, Value: &fb.FindCoordinatorRequestT{GroupId: "g"}},
		{Type: fb.MessageFindCoordinatorResponse, Value: &fb.FindCoordinatorResponseT{ErrorMessage: "m", NodeId: 2, Host: "h2", Port: 9092}},
		{Type: fb.MessageConsumerGroupHeartbeatRequest, Value: &fb.ConsumerGroupHeartbeatRequestT{GroupId: "g", MemberId: "m1",
			InstanceId: "i1", MemberEpoch: 3, RebalanceTimeoutMs: 30000, SubscribedTopicNames: []string{"a", "b"},
			SubscribedTopicRegex: "x.*", ServerAssignor: "uniform",
			OwnedTopicPartitions: []*fb.GroupTopicPartitionsT{{Topic: "a", Partitions: []int32{0, 2}}}}},
		{Type: fb.MessageConsumerGroupHeartbeatResponse, Value: &fb.ConsumerGroupHeartbeatResponseT{ErrorCode: fb.ErrorCodeFencedMemberEpoch,
			ErrorMessage: "m", MemberId: "m1", MemberEpoch: 4, HeartbeatIntervalMs: 5000,
			Assignment: []*fb.GroupTopicPartitionsT{{Topic: "a", Partitions: []int32{0}}, {Topic: "b", Partitions: []int32{1, 3}}}}},
		{Type: fb.MessageOffsetCommitRequest, Value: &fb.OffsetCommitRequestT{GroupId: "g", MemberId: "m1", MemberEpoch: 4,
			Topics: []*fb.OffsetCommitTopicT{{Name: "a", Partitions: []*fb.OffsetCommitPartitionT{{Partition: 0, CommittedOffset: 42, CommittedMetadata: "md"}}}}}},
		{Type: fb.MessageOffsetCommitResponse, Value: &fb.OffsetCommitResponseT{ErrorCode: fb.ErrorCodeStaleMemberEpoch, ErrorMessage: "m",
			Topics: []*fb.OffsetCommitTopicResponseT{{Name: "a", Partitions: []*fb.OffsetCommitPartitionResponseT{{Partition: 0, ErrorCode: fb.ErrorCodeStaleMemberEpoch}}}}}},
		{Type: fb.MessageOffsetFetchRequest, Value: &fb.OffsetFetchRequestT{GroupId: "g", MemberId: "m1", MemberEpoch: 4,
			Topics: []*fb.GroupTopicPartitionsT{{Topic: "a", Partitions: []int32{0, 1}}}}},
		{Type: fb.MessageOffsetFetchResponse, Value: &fb.OffsetFetchResponseT{ErrorMessage: "m", Topics: []*fb.OffsetFetchTopicResponseT{
			{Name: "a", Partitions: []*fb.OffsetFetchPartitionResponseT{{Partition: 0, CommittedOffset: 42, CommittedMetadata: "md"}, {Partition: 1, CommittedOffset: -1}}}}}},
		{Type: fb.MessageConsumerGroupDescribeRequest, Value: &fb.ConsumerGroupDescribeRequestT{GroupIds: []string{"g", "h"}}},
		{Type: fb.MessageConsumerGroupDescribeResponse, Value: &fb.ConsumerGroupDescribeResponseT{Groups: []*fb.DescribedGroupT{
			{GroupId: "g", GroupState: "Reconciling", GroupEpoch: 5, AssignmentEpoch: 5, AssignorName: "uniform", ErrorMessage: "m",
				Members: []*fb.DescribedGroupMemberT{{MemberId: "m1", InstanceId: "i1", ClientId: "c1", ClientHost: "127.0.0.1:5000",
					MemberEpoch: 4, SubscribedTopicNames: []string{"a"}, SubscribedTopicRegex: "x", ServerAssignor: "range",
					Assignment:        []*fb.GroupTopicPartitionsT{{Topic: "a", Partitions: []int32{0}}},
					PendingRevocation: []*fb.GroupTopicPartitionsT{{Topic: "a", Partitions: []int32{1}}},
					TargetAssignment:  []*fb.GroupTopicPartitionsT{{Topic: "a", Partitions: []int32{0, 2}}}}}},
			{GroupId: "h", ErrorCode: fb.ErrorCodeGroupIdNotFound, GroupState: "Dead", Members: []*fb.DescribedGroupMemberT{}}}}},
		{Type: fb.MessageListGroupsRequest, Value: &fb.ListGroupsRequestT{StatesFilter: []string{"Stable"}}},
		{Type: fb.MessageListGroupsResponse, Value: &fb.ListGroupsResponseT{Groups: []*fb.ListedGroupT{{GroupId: "g", GroupState: "Stable"}}}},
		{Type: fb.MessageDeleteGroupsRequest, Value: &fb.DeleteGroupsRequestT{GroupIds: []string{"g"}}},
		{Type: fb.MessageDeleteGroupsResponse, Value: &fb.DeleteGroupsResponseT{Results: []*fb.DeletableGroupResultT{
			{GroupId: "g", ErrorCode: fb.ErrorCodeNonEmptyGroup, ErrorMessage: "m"}}}},
		{Type: fb.MessageDescribeConfigsRequest, Value: &fb.DescribeConfigsRequestT{Topics: []string{"a"}}},
		{Type: fb.MessageDescribeConfigsResponse, Value: &fb.DescribeConfigsResponseT{Topics: []*fb.DescribeConfigsTopicT{
			{Name: "a", Configs: []*fb.DescribedConfigT{{Name: "partitions", Value: "3", ReadOnly: true},
				{Name: "retention.ms", Value: "604800000", IsDefault: true}}},
			{Name: "b", ErrorCode: fb.ErrorCodeUnknownTopicOrPartition, ErrorMessage: "no such topic", Configs: []*fb.DescribedConfigT{}}}}},
		{Type: fb.MessageIncrementalAlterConfigsRequest, Value: &fb.IncrementalAlterConfigsRequestT{TimeoutMs: 5000, ValidateOnly: true,
			Topics: []*fb.AlterConfigsTopicT{{Name: "a", Configs: []*fb.AlterableConfigT{
				{Name: "retention.bytes", Op: fb.AlterConfigOpSet, Value: "1048576"}, {Name: "segment.ms", Op: fb.AlterConfigOpDelete}}}}}},
		{Type: fb.MessageIncrementalAlterConfigsResponse, Value: &fb.IncrementalAlterConfigsResponseT{Topics: []*fb.AlterConfigsTopicResultT{
			{Name: "a", ErrorCode: fb.ErrorCodeInvalidConfig, ErrorMessage: "partitions cannot be altered"}}}},
		{Type: fb.MessageCreatePartitionsRequest, Value: &fb.CreatePartitionsRequestT{TimeoutMs: 5000,
			Topics: []*fb.CreatePartitionsTopicT{{Name: "a", Count: 6}}}},
		{Type: fb.MessageCreatePartitionsResponse, Value: &fb.CreatePartitionsResponseT{Topics: []*fb.CreatePartitionsTopicResultT{
			{Name: "a", ErrorCode: fb.ErrorCodeInvalidPartitions, ErrorMessage: "topic a has 6 partitions"}}}},
		{Type: fb.MessageDeleteRecordsRequest, Value: &fb.DeleteRecordsRequestT{TimeoutMs: 30000, Topics: []*fb.DeleteRecordsTopicT{
			{Name: "a", Partitions: []*fb.DeleteRecordsPartitionT{{Partition: 0, Offset: 400}, {Partition: 1, Offset: -1}}}}}},
		{Type: fb.MessageDeleteRecordsResponse, Value: &fb.DeleteRecordsResponseT{Topics: []*fb.DeleteRecordsTopicResponseT{
			{Name: "a", Partitions: []*fb.DeleteRecordsPartitionResponseT{{Partition: 0, LowWatermark: 400},
				{Partition: 1, LowWatermark: -1, ErrorCode: fb.ErrorCodeOffsetOutOfRange}}}}}},
	}
}

func headerFor(m *fb.MessageT, corr int32) *EnvelopeHeader {
	h := &EnvelopeHeader{ApiVersion: 1, CorrelationID: corr}
	if !messageInfo[m.Type].response {
		h.ClientID = "client-1"
	}
	return h
}

// walkEnvelope reads every field of a verified envelope through the
// generated accessors (the object API's UnPack visits them all).
func walkEnvelope(e *Envelope) *fb.EnvelopeT {
	return e.UnPack()
}

// rawBody builds a body whose records have the given offset deltas and
// nothing else, bypassing BatchBuilder's own numbering.
func rawBody(deltas []uint32) []byte {
	b := flatbuffers.NewBuilder(64)
	offs := make([]flatbuffers.UOffsetT, len(deltas))
	for i, d := range deltas {
		fb.RecordStart(b)
		fb.RecordAddOffsetDelta(b, d)
		offs[i] = fb.RecordEnd(b)
	}
	fb.RecordBatchBodyStartRecordsVector(b, len(offs))
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	v := b.EndVector(len(offs))
	fb.RecordBatchBodyStart(b)
	fb.RecordBatchBodyAddRecords(b, v)
	b.FinishWithFileIdentifier(fb.RecordBatchBodyEnd(b), bodyIdent)
	return b.FinishedBytes()
}
