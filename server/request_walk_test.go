package server

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// What a handler may allocate for a request of n bytes, read as
// allocRequestMultiple*n + allocFixedBytes.
//
// allocRequestMultiple: the walk charges a partition entry the 8 bytes it
// takes on the wire at the least (its uoffset and soffset; vtables are
// shared), and a handler spends per partition its job's part or work, the
// answer's entry, their slots in slices that grow by doubling, and the
// answer's encoding in a builder that grows by doubling: about 300 bytes,
// 38 times the entry's 8. 64 leaves room for the runtime's size classes
// without letting anything that grows with the number of times a shared
// object is read (which is unbounded by the request's size) pass.
//
// allocFixedBytes: the encoder's first buffer and its growth for the
// smallest answers, the test image's topics in a metadata answer that
// lists every topic, and what the runtime allocates on its own while the
// measurement runs.
const (
	allocRequestMultiple = 64
	allocFixedBytes      = 64 << 10
)

// walkTestTopic is the one topic of walkTestImage, with
// walkTestPartitions partitions.
const (
	walkTestTopic      = "t"
	walkTestPartitions = 4
)

// walkTestImage is a cluster of one broker leading every partition of
// walkTestTopic.
func walkTestImage(t testing.TB) *metadata.Image {
	t.Helper()
	st := metadata.NewState()
	id := metadata.TopicID{7}
	recs := []metadata.Record{
		metadata.RegisterBrokerRecord{ID: 1, Incarnation: metadata.IncarnationID{1}, Epoch: 1,
			Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9092}}},
		metadata.UnfenceBrokerRecord{ID: 1, Epoch: 1},
		metadata.TopicRecord{ID: id, Name: walkTestTopic,
			Configs: map[string]string{metadata.ConfigPartitions: fmt.Sprint(walkTestPartitions), metadata.ConfigReplicationFactor: "1"}},
	}
	for p := int32(0); p < walkTestPartitions; p++ {
		recs = append(recs, metadata.PartitionRecord{TopicID: id, Partition: p, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1})
	}
	if err := st.ApplyAll(recs); err != nil {
		t.Fatal(err)
	}
	return st.Image()
}

// walkOutcome is what handling one request came to.
type walkOutcome struct {
	api      fb.ApiKey
	decoded  bool // the envelope verified as a request
	accepted bool // the walk accepted it
	produce  producePlan
}

// handleForAllocs does what the broker's handler for msg's API does before
// it sends work to other shards or the controller: verify, walk and plan,
// and encode the answer the plan holds (or the INVALID_REQUEST answer).
func handleForAllocs(msg []byte, im *metadata.Image) walkOutcome {
	var env schema.Envelope
	var out walkOutcome
	if env.DecodeRequest(msg) != nil {
		return out
	}
	out.decoded, out.api = true, env.ApiKey()
	var answer *fb.MessageT
	switch out.api {
	case fb.ApiKeyProduce:
		m, _ := env.ProduceRequest()
		if out.produce, out.accepted = planProduce(&m, msg, im, 2); out.accepted {
			answer = &fb.MessageT{Type: fb.MessageProduceResponse, Value: out.produce.resp}
		}
	case fb.ApiKeyFetch:
		m, _ := env.FetchRequest()
		var resp *fb.FetchResponseT
		if resp, _, out.accepted = planFetch(&m, msg, im, 2); out.accepted {
			answer = &fb.MessageT{Type: fb.MessageFetchResponse, Value: resp}
		}
	case fb.ApiKeyListOffsets:
		m, _ := env.ListOffsetsRequest()
		var resp *fb.ListOffsetsResponseT
		if resp, _, out.accepted = planListOffsets(&m, msg, im, 2); out.accepted {
			answer = &fb.MessageT{Type: fb.MessageListOffsetsResponse, Value: resp}
		}
	case fb.ApiKeyMetadata:
		m, _ := env.MetadataRequest()
		var resp *fb.MetadataResponseT
		if resp, out.accepted = metadataAnswer(&m, msg, im, 1); out.accepted {
			answer = &fb.MessageT{Type: fb.MessageMetadataResponse, Value: resp}
		}
	case fb.ApiKeyCreateTopics:
		m, _ := env.CreateTopicsRequest()
		var wants []*topicWant
		if wants, out.accepted = planCreateTopics(&m, msg); out.accepted {
			resp := &fb.CreateTopicsResponseT{}
			for _, w := range wants {
				resp.Topics = append(resp.Topics, w.result)
			}
			answer = &fb.MessageT{Type: fb.MessageCreateTopicsResponse, Value: resp}
		}
	case fb.ApiKeyDeleteTopics:
		m, _ := env.DeleteTopicsRequest()
		var results []*fb.DeletableTopicResultT
		if results, out.accepted = planDeleteTopics(&m, msg); out.accepted {
			answer = &fb.MessageT{Type: fb.MessageDeleteTopicsResponse, Value: &fb.DeleteTopicsResponseT{Topics: results}}
		}
	case fb.ApiKeyDescribeLogDirs:
		m, _ := env.DescribeLogDirsRequest()
		var resp *fb.DescribeLogDirsResponseT
		if resp, _, out.accepted = planDescribeLogDirs(&m, msg, im, 1, 2); out.accepted {
			answer = &fb.MessageT{Type: fb.MessageDescribeLogDirsResponse, Value: resp}
		}
	case fb.ApiKeyDescribeConfigs:
		m, _ := env.DescribeConfigsRequest()
		var resp *fb.DescribeConfigsResponseT
		if resp, out.accepted = planDescribeConfigs(&m, msg, im); out.accepted {
			answer = &fb.MessageT{Type: fb.MessageDescribeConfigsResponse, Value: resp}
		}
	case fb.ApiKeyIncrementalAlterConfigs:
		m, _ := env.IncrementalAlterConfigsRequest()
		var wants []*alterWant
		if wants, out.accepted = planAlterConfigs(&m, msg); out.accepted {
			resp := &fb.IncrementalAlterConfigsResponseT{}
			for _, w := range wants {
				resp.Topics = append(resp.Topics, w.result)
			}
			answer = &fb.MessageT{Type: fb.MessageIncrementalAlterConfigsResponse, Value: resp}
		}
	case fb.ApiKeyCreatePartitions:
		m, _ := env.CreatePartitionsRequest()
		var results []*fb.CreatePartitionsTopicResultT
		if results, _, out.accepted = planCreatePartitions(&m, msg); out.accepted {
			answer = &fb.MessageT{Type: fb.MessageCreatePartitionsResponse, Value: &fb.CreatePartitionsResponseT{Topics: results}}
		}
	case fb.ApiKeyDeleteRecords:
		m, _ := env.DeleteRecordsRequest()
		var resp *fb.DeleteRecordsResponseT
		if resp, _, out.accepted = planDeleteRecords(&m, msg, im, 2); out.accepted {
			answer = &fb.MessageT{Type: fb.MessageDeleteRecordsResponse, Value: resp}
		}
	default:
		// ApiVersions and DescribeQuorum read nothing of the request
		// but its header.
		out.accepted = true
	}
	h := schema.EnvelopeHeader{ApiKey: out.api, CorrelationID: env.CorrelationId()}
	if !out.accepted {
		h.ErrorCode = fb.ErrorCodeInvalidRequest
	}
	schema.NewEncoder().Encode(&h, answer)
	return out
}

// checkProduceAccepted checks what an accepted produce plan promises, by
// other means than the walk's: no byte of the request lies in two appended
// frames vectors, and no partition is appended twice.
func checkProduceAccepted(t *testing.T, msg []byte, plan producePlan) {
	owner := make([]int, len(msg)) // 1 + the work whose frames hold the byte
	seen := map[topicPartition]bool{}
	for i, w := range plan.works {
		k := topicPartition{w.topic, w.index}
		if seen[k] {
			t.Fatalf("accepted produce appends to %s/%d twice", w.topic, w.index)
		}
		seen[k] = true
		start := cap(msg) - cap(w.frames)
		for b := start; b < start+len(w.frames); b++ {
			if owner[b] != 0 {
				t.Fatalf("accepted produce: byte %d lies in the frames of parts %d and %d", b, owner[b]-1, i)
			}
			owner[b] = i + 1
		}
	}
}

// walkSeeds are requests of every API, honest and hostile.
func walkSeeds(t testing.TB) [][]byte {
	enc := schema.NewEncoder()
	encode := func(m *fb.MessageT) []byte {
		return append([]byte(nil), enc.Encode(&schema.EnvelopeHeader{CorrelationID: 1}, m)...)
	}
	frame := batch(t, 0, 2, 1)
	seeds := [][]byte{
		encode(&fb.MessageT{Type: fb.MessageApiVersionsRequest, Value: &fb.ApiVersionsRequestT{ClientSoftwareName: "x"}}),
		encode(&fb.MessageT{Type: fb.MessageDescribeQuorumRequest, Value: &fb.DescribeQuorumRequestT{}}),
		encode(&fb.MessageT{Type: fb.MessageDescribeLogDirsRequest, Value: &fb.DescribeLogDirsRequestT{}}),
		encode(&fb.MessageT{Type: fb.MessageDescribeConfigsRequest, Value: &fb.DescribeConfigsRequestT{}}),
		encode(&fb.MessageT{Type: fb.MessageDescribeConfigsRequest, Value: &fb.DescribeConfigsRequestT{Topics: []string{walkTestTopic, "gone", walkTestTopic, "a b"}}}),
		encode(&fb.MessageT{Type: fb.MessageIncrementalAlterConfigsRequest, Value: &fb.IncrementalAlterConfigsRequestT{Topics: []*fb.AlterConfigsTopicT{
			{Name: walkTestTopic, Configs: []*fb.AlterableConfigT{{Name: "retention.ms", Value: "1"}, {Name: "segment.ms", Op: fb.AlterConfigOpDelete}, {Name: "x", Op: 7}}},
			{Name: "a b"}}}}),
		encode(&fb.MessageT{Type: fb.MessageCreatePartitionsRequest, Value: &fb.CreatePartitionsRequestT{Topics: []*fb.CreatePartitionsTopicT{
			{Name: walkTestTopic, Count: 3}, {Name: "a b", Count: 2}, {Name: "z", Count: -1}}}}),
		encode(&fb.MessageT{Type: fb.MessageDescribeLogDirsRequest, Value: &fb.DescribeLogDirsRequestT{Topics: []string{walkTestTopic, "gone", walkTestTopic, "a b"}}}),
		encode(produceMsg(fb.AcksAll, walkTestTopic, 1, frame)),
		encode(&fb.MessageT{Type: fb.MessageProduceRequest, Value: &fb.ProduceRequestT{Acks: fb.AcksLeader, Topics: []*fb.ProduceTopicT{
			{Name: walkTestTopic, Partitions: []*fb.ProducePartitionT{{Partition: 0, Frames: frame}, {Partition: 1, Frames: frame}, {Partition: 9, Frames: frame}}},
			{Name: "bad name", Partitions: []*fb.ProducePartitionT{{Partition: 0, Frames: frame}}},
			{Name: walkTestTopic, Partitions: []*fb.ProducePartitionT{{Partition: 0, Frames: frame}}}, // twice: refused
		}}}),
		encode(fetchMsg(walkTestTopic, 2, 0, 0, 0)),
		encode(&fb.MessageT{Type: fb.MessageListOffsetsRequest, Value: &fb.ListOffsetsRequestT{ReplicaId: -1, Topics: []*fb.ListOffsetsTopicT{
			{Name: walkTestTopic, Partitions: []*fb.ListOffsetsPartitionT{{Partition: 0, Timestamp: -2}, {Partition: 3, Timestamp: 5}}},
			{Name: "..", Partitions: []*fb.ListOffsetsPartitionT{{Partition: 0}}}}}}),
		encode(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{}}),
		encode(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{Topics: []string{walkTestTopic, "other", walkTestTopic, ""}}}),
		encode(&fb.MessageT{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{Topics: []*fb.CreatableTopicT{
			{Name: "new", NumPartitions: 3, ReplicationFactor: -1, Configs: []*fb.TopicConfigT{{Name: "retention.ms", Value: "1000"}}},
			{Name: "new/bad", NumPartitions: -1, ReplicationFactor: -1}}}}),
		encode(&fb.MessageT{Type: fb.MessageDeleteTopicsRequest, Value: &fb.DeleteTopicsRequestT{TopicNames: []string{walkTestTopic, "x", "."}}}),
		sharedFramesProduce(2, walkTestTopic, 0, 0, frame),
		sharedFramesProduce(3, walkTestTopic, 0, 1, frame),
		overlappingFramesProduce(t, 4, walkTestTopic, frameOfAlignedLength(t, 0), frame),
		sharedNameMetadata(5, 1000, make([]byte, 300)),
		sharedNameFetch(6, 1000, make([]byte, 300)),
		// A valid name of the longest length, read for every topic.
		sharedNameMetadata(5, topicsPerRequestMax, []byte(strings.Repeat("m", 249))),
		sharedNameFetch(6, topicsPerRequestMax, []byte(strings.Repeat("f", 249))),
		minimalPartitionsFetch(7, partitionsPerRequestMax),
		encode(&fb.MessageT{Type: fb.MessageProduceRequest, Value: &fb.ProduceRequestT{Topics: []*fb.ProduceTopicT{
			{Name: walkTestTopic, Partitions: distinctProducePartitions(partitionsPerRequestMax)}}}}),
		encode(&fb.MessageT{Type: fb.MessageDeleteRecordsRequest, Value: &fb.DeleteRecordsRequestT{TimeoutMs: 1000, Topics: []*fb.DeleteRecordsTopicT{
			{Name: walkTestTopic, Partitions: []*fb.DeleteRecordsPartitionT{{Partition: 0, Offset: 5}, {Partition: 3, Offset: -1}, {Partition: 9}, {Partition: 1, Offset: -4}}},
			{Name: "no such", Partitions: []*fb.DeleteRecordsPartitionT{{Partition: 0}}}}}}),
		minimalPartitionsDeleteRecords(8, partitionsPerRequestMax),
	}
	return seeds
}

// minimalPartitionsDeleteRecords is a DeleteRecords of walkTestTopic with
// n partition entries of no fields (partition 0, offset -1): the most
// entries per byte that the walk lets through.
func minimalPartitionsDeleteRecords(corr int32, n int) []byte {
	enc := schema.NewEncoder()
	bld := enc.Builder()
	parts := make([]flatbuffers.UOffsetT, n)
	for i := range parts {
		fb.DeleteRecordsPartitionStart(bld)
		parts[i] = fb.DeleteRecordsPartitionEnd(bld)
	}
	fb.DeleteRecordsTopicStartPartitionsVector(bld, n)
	for i := n - 1; i >= 0; i-- {
		bld.PrependUOffsetT(parts[i])
	}
	pv := bld.EndVector(n)
	name := bld.CreateString(walkTestTopic)
	fb.DeleteRecordsTopicStart(bld)
	fb.DeleteRecordsTopicAddName(bld, name)
	fb.DeleteRecordsTopicAddPartitions(bld, pv)
	tt := fb.DeleteRecordsTopicEnd(bld)
	fb.DeleteRecordsRequestStartTopicsVector(bld, 1)
	bld.PrependUOffsetT(tt)
	tv := bld.EndVector(1)
	fb.DeleteRecordsRequestStart(bld)
	fb.DeleteRecordsRequestAddTopics(bld, tv)
	return finishRequest(enc, corr, fb.MessageDeleteRecordsRequest, fb.DeleteRecordsRequestEnd(bld))
}

// distinctProducePartitions is n produce parts, for partitions 0 to n-1,
// with no frames: the most parts per byte a produce can carry.
func distinctProducePartitions(n int) []*fb.ProducePartitionT {
	parts := make([]*fb.ProducePartitionT, n)
	for i := range parts {
		parts[i] = &fb.ProducePartitionT{Partition: int32(i)}
	}
	return parts
}

// minimalPartitionsFetch is an honest fetch of walkTestTopic with n
// partition entries of no fields (partition 0, offset 0), each the
// smallest a table can be: the most entries per byte that the walk lets
// through.
func minimalPartitionsFetch(corr int32, n int) []byte {
	enc := schema.NewEncoder()
	bld := enc.Builder()
	parts := make([]flatbuffers.UOffsetT, n)
	for i := range parts {
		fb.FetchPartitionStart(bld)
		parts[i] = fb.FetchPartitionEnd(bld)
	}
	fb.FetchTopicStartPartitionsVector(bld, n)
	for i := n - 1; i >= 0; i-- {
		bld.PrependUOffsetT(parts[i])
	}
	pv := bld.EndVector(n)
	name := bld.CreateString(walkTestTopic)
	fb.FetchTopicStart(bld)
	fb.FetchTopicAddName(bld, name)
	fb.FetchTopicAddPartitions(bld, pv)
	tt := fb.FetchTopicEnd(bld)
	fb.FetchRequestStartTopicsVector(bld, 1)
	bld.PrependUOffsetT(tt)
	tv := bld.EndVector(1)
	fb.FetchRequestStart(bld)
	fb.FetchRequestAddTopics(bld, tv)
	return finishRequest(enc, corr, fb.MessageFetchRequest, fb.FetchRequestEnd(bld))
}

// FuzzHandlerAllocs feeds any bytes to the handlers' walk and asserts that
// what they allocate stays below allocRequestMultiple times the request's
// size plus allocFixedBytes, and that an accepted produce appends no byte
// twice and no partition twice. It measures TotalAlloc around one call on
// this goroutine; the fuzz engine runs each input alone.
func FuzzHandlerAllocs(f *testing.F) {
	for _, s := range walkSeeds(f) {
		f.Add(s)
	}
	im := walkTestImage(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		msg := append([]byte(nil), in...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		out := handleForAllocs(msg, im)
		runtime.ReadMemStats(&after)
		got := after.TotalAlloc - before.TotalAlloc
		if limit := uint64(allocRequestMultiple*len(msg) + allocFixedBytes); got > limit {
			t.Fatalf("api %v, %d bytes: the handler allocated %d bytes, above %d", out.api, len(msg), got, limit)
		}
		if out.api == fb.ApiKeyProduce && out.accepted {
			checkProduceAccepted(t, msg, out.produce)
		}
	})
}

// walkPlan decodes msg and walks it as its API's handler does.
func walkPlan(t *testing.T, msg []byte, im *metadata.Image) walkOutcome {
	t.Helper()
	out := handleForAllocs(msg, im)
	if !out.decoded {
		t.Fatal("the request does not verify")
	}
	return out
}

// TestRequestWalkRules checks each rule of the walk on the request that
// breaks it and on the nearest one that keeps it.
func TestRequestWalkRules(t *testing.T) {
	im := walkTestImage(t)
	enc := schema.NewEncoder()
	encode := func(m *fb.MessageT) []byte {
		return append([]byte(nil), enc.Encode(&schema.EnvelopeHeader{CorrelationID: 1}, m)...)
	}
	frame := batch(t, 0, 2, 1)
	refused := map[string][]byte{
		"produce: one partition twice on one vector":   sharedFramesProduce(1, walkTestTopic, 0, 0, frame),
		"produce: two partitions on one vector":        sharedFramesProduce(1, walkTestTopic, 0, 1, frame),
		"produce: two partitions on overlapping bytes": overlappingFramesProduce(t, 1, walkTestTopic, frameOfAlignedLength(t, 0), frame),
		"produce: one partition twice, own bytes": encode(&fb.MessageT{Type: fb.MessageProduceRequest, Value: &fb.ProduceRequestT{Topics: []*fb.ProduceTopicT{
			{Name: walkTestTopic, Partitions: []*fb.ProducePartitionT{{Partition: 2, Frames: frame}}},
			{Name: walkTestTopic, Partitions: []*fb.ProducePartitionT{{Partition: 2, Frames: frame}}}}}}),
		"fetch: 1000 topics on one name":      sharedNameFetch(1, 1000, []byte("abcdefgh")),
		"metadata: 1000 names on one string":  sharedNameMetadata(1, 1000, []byte("abcdefgh")),
		"log dirs: 1000 names on one string":  sharedNameLogDirs(1, 1000, []byte("abcdefgh")),
		"fetch: one partition past the bound": minimalPartitionsFetch(1, partitionsPerRequestMax+1),
		"metadata: one topic past the bound":  encode(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{Topics: distinctNames(topicsPerRequestMax + 1)}}),
		"create: one topic twice":             encode(&fb.MessageT{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{Topics: []*fb.CreatableTopicT{{Name: "a"}, {Name: "a"}}}}),
		"delete: one topic twice":             encode(&fb.MessageT{Type: fb.MessageDeleteTopicsRequest, Value: &fb.DeleteTopicsRequestT{TopicNames: []string{"a", "b", "a"}}}),
	}
	for name, msg := range refused {
		if out := walkPlan(t, msg, im); out.accepted {
			t.Errorf("%s: accepted", name)
		}
	}
	accepted := map[string][]byte{
		"produce: two partitions, same frame in own bytes": encode(&fb.MessageT{Type: fb.MessageProduceRequest, Value: &fb.ProduceRequestT{Topics: []*fb.ProduceTopicT{
			{Name: walkTestTopic, Partitions: []*fb.ProducePartitionT{{Partition: 0, Frames: frame}, {Partition: 1, Frames: frame}}}}}}),
		"fetch: partitions up to the bound": minimalPartitionsFetch(1, partitionsPerRequestMax),
		"metadata: topics up to the bound":  encode(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{Topics: distinctNames(topicsPerRequestMax)}}),
		"delete: distinct names":            encode(&fb.MessageT{Type: fb.MessageDeleteTopicsRequest, Value: &fb.DeleteTopicsRequestT{TopicNames: []string{"a", "b"}}}),
		"create: an invalid name twice":     encode(&fb.MessageT{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{Topics: []*fb.CreatableTopicT{{Name: "a b"}, {Name: "a b"}}}}),
		"fetch: a name at the length bound": encode(fetchMsg(strings.Repeat("x", 249), 0, 0, 0, 0)),
	}
	for name, msg := range accepted {
		if out := walkPlan(t, msg, im); !out.accepted {
			t.Errorf("%s: refused", name)
		}
	}

	// Same bytes in two frames vectors of their own: both appended.
	out := walkPlan(t, accepted["produce: two partitions, same frame in own bytes"], im)
	if len(out.produce.works) != 2 {
		t.Fatalf("%d appends, want 2", len(out.produce.works))
	}

	// An invalid name is answered INVALID_TOPIC, echoed when it is no
	// longer than a valid name may be and empty when it is; the other
	// topics are served.
	long := strings.Repeat("a", 250)
	msg := encode(&fb.MessageT{Type: fb.MessageProduceRequest, Value: &fb.ProduceRequestT{Topics: []*fb.ProduceTopicT{
		{Name: long, Partitions: []*fb.ProducePartitionT{{Partition: 0, Frames: frame}}},
		{Name: "a/b", Partitions: []*fb.ProducePartitionT{{Partition: 0, Frames: frame}}},
		{Name: walkTestTopic, Partitions: []*fb.ProducePartitionT{{Partition: 0, Frames: frame}}}}}})
	out = walkPlan(t, msg, im)
	if !out.accepted || len(out.produce.works) != 1 || out.produce.works[0].topic != walkTestTopic {
		t.Fatalf("accepted %v, appends %+v; want one, to %s", out.accepted, out.produce.works, walkTestTopic)
	}
	for i, tr := range out.produce.resp.Topics[:2] {
		if tr.Name != []string{"", "a/b"}[i] || tr.Partitions[0].ErrorCode != fb.ErrorCodeInvalidTopic {
			t.Fatalf("invalid topic %d answered as %q, %v", i, tr.Name, tr.Partitions[0].ErrorCode)
		}
	}

	// Metadata answers a name asked twice once.
	msg = encode(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{Topics: []string{walkTestTopic, "gone", walkTestTopic, "a b"}}})
	var env schema.Envelope
	if err := env.DecodeRequest(msg); err != nil {
		t.Fatal(err)
	}
	m, _ := env.MetadataRequest()
	resp, ok := metadataAnswer(&m, msg, im, 1)
	if !ok || len(resp.Topics) != 3 {
		t.Fatalf("metadata: ok %v, %d topics, want 3", ok, len(resp.Topics))
	}
	want := []struct {
		name string
		code fb.ErrorCode
	}{{walkTestTopic, fb.ErrorCodeNone}, {"gone", fb.ErrorCodeUnknownTopicOrPartition}, {"a b", fb.ErrorCodeInvalidTopic}}
	for i, w := range want {
		if resp.Topics[i].Name != w.name || resp.Topics[i].ErrorCode != w.code {
			t.Fatalf("metadata topic %d: %q %v, want %q %v", i, resp.Topics[i].Name, resp.Topics[i].ErrorCode, w.name, w.code)
		}
	}
}

// distinctNames is n valid topic names, all different.
func distinctNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	return names
}
