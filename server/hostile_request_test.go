package server

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// Requests no honest encoder writes: FlatBuffers whose offsets share one
// string or vector, which the verifier accepts. The flatbuffers Builder
// takes an offset as often as it is given, so sharing is built by reusing
// one; a vector that starts inside another is made by patching an offset
// after building.

// finishRequest wraps the message table built in enc's builder into a
// request envelope and returns a copy of it.
func finishRequest(enc *schema.Encoder, corr int32, typ fb.Message, msg flatbuffers.UOffsetT) []byte {
	return append([]byte(nil), enc.Finish(&schema.EnvelopeHeader{CorrelationID: corr}, typ, msg)...)
}

// produceOfParts finishes a produce request of one topic whose partition
// tables are already in bld, enc's builder.
func produceOfParts(enc *schema.Encoder, bld *flatbuffers.Builder, corr int32, acks fb.Acks, topic string, parts []flatbuffers.UOffsetT) []byte {
	name := bld.CreateString(topic)
	fb.ProduceTopicStartPartitionsVector(bld, len(parts))
	for i := len(parts) - 1; i >= 0; i-- {
		bld.PrependUOffsetT(parts[i])
	}
	pv := bld.EndVector(len(parts))
	fb.ProduceTopicStart(bld)
	fb.ProduceTopicAddName(bld, name)
	fb.ProduceTopicAddPartitions(bld, pv)
	tt := fb.ProduceTopicEnd(bld)
	fb.ProduceRequestStartTopicsVector(bld, 1)
	bld.PrependUOffsetT(tt)
	tv := bld.EndVector(1)
	fb.ProduceRequestStart(bld)
	fb.ProduceRequestAddAcks(bld, acks)
	fb.ProduceRequestAddTopics(bld, tv)
	return finishRequest(enc, corr, fb.MessageProduceRequest, fb.ProduceRequestEnd(bld))
}

func producePartitionTable(bld *flatbuffers.Builder, partition int32, frames flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	fb.ProducePartitionStart(bld)
	fb.ProducePartitionAddPartition(bld, partition)
	fb.ProducePartitionAddFrames(bld, frames)
	return fb.ProducePartitionEnd(bld)
}

// sharedFramesProduce is one produce request (acks=all) to topic whose two
// parts, for partitions a and b, point at one frames vector.
func sharedFramesProduce(corr int32, topic string, a, b int32, frames []byte) []byte {
	return sharedFramesProduceAcks(corr, fb.AcksAll, topic, a, b, frames)
}

func sharedFramesProduceAcks(corr int32, acks fb.Acks, topic string, a, b int32, frames []byte) []byte {
	enc := schema.NewEncoder()
	bld := enc.Builder()
	vec := bld.CreateByteVector(frames)
	parts := []flatbuffers.UOffsetT{producePartitionTable(bld, a, vec), producePartitionTable(bld, b, vec)}
	return produceOfParts(enc, bld, corr, acks, topic, parts)
}

// framesFieldVOffset is where ProducePartition's vtable keeps its frames
// field: slot 1, after partition.
const framesFieldVOffset = 4 + 2*1

// overlappingFramesProduce is one produce request to topic whose part for
// partition 0 holds first, a 4-byte word and second, and whose part for
// partition 1 is a vector starting at that word: its length is that word,
// its bytes are second, inside the first part's. len(first) must be a
// multiple of 4, for the second vector's length word to be aligned.
func overlappingFramesProduce(t testing.TB, corr int32, topic string, first, second []byte) []byte {
	t.Helper()
	if len(first)%4 != 0 {
		t.Fatalf("first frames of %d bytes: not a multiple of 4", len(first))
	}
	outer := append(append(append([]byte(nil), first...), binary.LittleEndian.AppendUint32(nil, uint32(len(second)))...), second...)
	enc := schema.NewEncoder()
	bld := enc.Builder()
	outerVec := bld.CreateByteVector(outer)
	innerVec := bld.CreateByteVector(second) // re-pointed below
	parts := []flatbuffers.UOffsetT{producePartitionTable(bld, 0, outerVec), producePartitionTable(bld, 1, innerVec)}
	msg := produceOfParts(enc, bld, corr, fb.AcksAll, topic, parts)

	var env schema.Envelope
	if err := env.DecodeRequest(msg); err != nil {
		t.Fatal(err)
	}
	m, _ := env.ProduceRequest()
	var tp fb.ProduceTopic
	var p0, p1 fb.ProducePartition
	m.Topics(&tp, 0)
	tp.Partitions(&p0, 0)
	tp.Partitions(&p1, 1)
	outerData := cap(msg) - cap(p0.FramesBytes())
	innerLen := outerData + len(first) // the word before second, inside the outer vector
	tab := p1.Table()
	field := int(tab.Pos) + int(tab.Offset(framesFieldVOffset))
	if innerLen <= field {
		t.Fatalf("the inner part's field at %d does not lie before the outer vector at %d", field, innerLen)
	}
	binary.LittleEndian.PutUint32(msg[field:], uint32(innerLen-field))
	if err := env.DecodeRequest(msg); err != nil {
		t.Fatalf("overlapping request fails verification: %v", err)
	}
	return msg
}

// sharedNameFetch is a fetch whose entries topic tables all point at one
// string, name.
func sharedNameFetch(corr int32, entries int, name []byte) []byte {
	enc := schema.NewEncoder()
	bld := enc.Builder()
	nameOff := bld.CreateByteString(name)
	topics := make([]flatbuffers.UOffsetT, entries)
	for i := range topics {
		fb.FetchTopicStart(bld)
		fb.FetchTopicAddName(bld, nameOff)
		topics[i] = fb.FetchTopicEnd(bld)
	}
	fb.FetchRequestStartTopicsVector(bld, entries)
	for i := entries - 1; i >= 0; i-- {
		bld.PrependUOffsetT(topics[i])
	}
	tv := bld.EndVector(entries)
	fb.FetchRequestStart(bld)
	fb.FetchRequestAddReplicaId(bld, -1)
	fb.FetchRequestAddTopics(bld, tv)
	return finishRequest(enc, corr, fb.MessageFetchRequest, fb.FetchRequestEnd(bld))
}

// sharedNameMetadata is a metadata request whose entries names all point
// at one string, name.
func sharedNameMetadata(corr int32, entries int, name []byte) []byte {
	enc := schema.NewEncoder()
	bld := enc.Builder()
	nameOff := bld.CreateByteString(name)
	fb.MetadataRequestStartTopicsVector(bld, entries)
	for range entries {
		bld.PrependUOffsetT(nameOff)
	}
	tv := bld.EndVector(entries)
	fb.MetadataRequestStart(bld)
	fb.MetadataRequestAddTopics(bld, tv)
	return finishRequest(enc, corr, fb.MessageMetadataRequest, fb.MetadataRequestEnd(bld))
}

// frameOfAlignedLength is a frame of records whose length is a multiple
// of 4.
func frameOfAlignedLength(t testing.TB, from int) []byte {
	t.Helper()
	for n := 1; n < 8; n++ {
		if f := batch(t, from, n, 1); len(f)%4 == 0 {
			return f
		}
	}
	t.Fatal("no frame of a length that is a multiple of 4")
	return nil
}

// logEnd asks the broker for a partition's log end.
func logEnd(t testing.TB, c *testClient, topic string, partition int32) int64 {
	t.Helper()
	env, _ := c.call(&fb.MessageT{Type: fb.MessageListOffsetsRequest, Value: &fb.ListOffsetsRequestT{ReplicaId: -1,
		Topics: []*fb.ListOffsetsTopicT{{Name: topic, Partitions: []*fb.ListOffsetsPartitionT{{Partition: partition, CurrentLeaderEpoch: -1, Timestamp: schema.ListOffsetsLatest}}}}}})
	r := env.Message.Value.(*fb.ListOffsetsResponseT).Topics[0].Partitions[0]
	if r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("list offsets %s/%d: %v", topic, partition, r.ErrorCode)
	}
	return r.Offset
}

// TestProduceSharedFramesRefused sends produce requests whose parts share
// frames bytes: two parts for one partition on one vector (which used to
// be acknowledged at offsets 0 and 1 and lost on restart), two partitions
// on one vector, and two partitions whose vectors overlap. Each passes the
// verifier and is refused whole with INVALID_REQUEST; the logs stay empty,
// and after a restart hold exactly what was produced afterwards.
func TestProduceSharedFramesRefused(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, 2)
	stopped := false
	defer func() {
		if !stopped {
			b.Stop()
		}
	}()
	c := newTestClient(t, b.Addr().String())
	const topic = "shared"
	if code := c.createTopic(topic, 2); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	frame := batch(t, 0, 3, 1)
	cases := []struct {
		name string
		msg  []byte
	}{
		{"one partition, one vector", sharedFramesProduce(1001, topic, 0, 0, frame)},
		{"two partitions, one vector", sharedFramesProduce(1002, topic, 0, 1, frame)},
		{"two partitions, overlapping vectors", overlappingFramesProduce(t, 1003, topic, frameOfAlignedLength(t, 10), batch(t, 20, 2, 1))},
	}
	for _, tc := range cases {
		var env schema.Envelope
		if err := env.DecodeRequest(tc.msg); err != nil {
			t.Fatalf("%s: the verifier refuses it (%v); the test needs one it accepts", tc.name, err)
		}
		if _, err := c.conn.Write(tc.msg); err != nil {
			t.Fatal(err)
		}
		got, _ := c.recv()
		if got.CorrelationId != env.CorrelationId() || got.ErrorCode != fb.ErrorCodeInvalidRequest || got.Message != nil {
			t.Fatalf("%s: answer correlation %d, error %v, message %+v; want %d, INVALID_REQUEST and no message",
				tc.name, got.CorrelationId, got.ErrorCode, got.Message, env.CorrelationId())
		}
		for p := int32(0); p < 2; p++ {
			if end := logEnd(t, c, topic, p); end != 0 {
				t.Fatalf("%s: partition %d ends at %d after a refused request", tc.name, p, end)
			}
		}
	}
	// With acks=0 the producer reads no answer: the refusal closes its
	// connection instead.
	quiet := newTestClient(t, b.Addr().String())
	if _, err := quiet.conn.Write(sharedFramesProduceAcks(1004, fb.AcksNone, topic, 0, 0, frame)); err != nil {
		t.Fatal(err)
	}
	if env, _, err := quiet.tryRecv(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("acks=0 refusal: answered %+v (%v), want the connection closed", env, err)
	}
	for p := int32(0); p < 2; p++ {
		if end := logEnd(t, c, topic, p); end != 0 {
			t.Fatalf("acks=0: partition %d ends at %d after a refused request", p, end)
		}
	}
	env, _ := c.call(produceMsg(fb.AcksAll, topic, 0, frame))
	if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 0 {
		t.Fatalf("produce after the refusals: %v at %d, want offset 0", r.ErrorCode, r.BaseOffset)
	}
	c.conn.Close()
	stopped = true
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir, 2)
	stopped = false
	c = newTestClient(t, b.Addr().String())
	_, trailing := c.call(fetchMsg(topic, 0, 0, 0, 0))
	recs := records(t, trailing)
	if len(recs) != 3 {
		t.Fatalf("after restart partition 0 holds %d records, want 3", len(recs))
	}
	for i, r := range recs {
		if r.Offset != int64(i) || string(r.Value) != "value-"+string(rune('0'+i)) {
			t.Fatalf("record %d after restart: offset %d value %q", i, r.Offset, r.Value)
		}
	}
	if end := logEnd(t, c, topic, 1); end != 0 {
		t.Fatalf("partition 1 ends at %d after restart", end)
	}
}
