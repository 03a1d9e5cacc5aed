package server

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// TestBrokerErrorsLeaveOthersServed hits each error a client can cause and
// checks its error code, and that a bystander on another connection keeps
// being served throughout.
func TestBrokerErrorsLeaveOthersServed(t *testing.T) {
	b := startBroker(t, t.TempDir(), 2)
	defer b.Stop()
	addr := b.Addr().String()
	admin := newTestClient(t, addr)
	if code := admin.createTopic("small", 2, &fb.TopicConfigT{Name: "max.message.bytes", Value: "2048"}); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	if code := admin.createTopic("bad name!", 1); code != fb.ErrorCodeInvalidTopic {
		t.Fatalf("invalid name: %v", code)
	}
	if code := admin.createTopic("cfg", 1, &fb.TopicConfigT{Name: "no.such.config", Value: "1"}); code != fb.ErrorCodeInvalidConfig {
		t.Fatalf("unknown config: %v", code)
	}
	bystander := newTestClient(t, addr)
	next := 0
	stillServed := func() {
		t.Helper()
		env, _ := bystander.call(produceMsg(fb.AcksAll, "small", 0, batch(t, next, 1, 1)))
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != int64(next) {
			t.Fatalf("bystander produce: %v base %d", r.ErrorCode, r.BaseOffset)
		}
		next++
	}
	stillServed()

	c := newTestClient(t, addr)
	produceCode := func(m *fb.MessageT) fb.ErrorCode {
		env, _ := c.call(m)
		return env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0].ErrorCode
	}
	if code := produceCode(produceMsg(fb.AcksAll, "nope", 0, batch(t, 0, 1, 1))); code != fb.ErrorCodeUnknownTopicOrPartition {
		t.Fatalf("unknown topic: %v", code)
	}
	if code := produceCode(produceMsg(fb.AcksAll, "small", 7, batch(t, 0, 1, 1))); code != fb.ErrorCodeUnknownTopicOrPartition {
		t.Fatalf("bad partition: %v", code)
	}
	big := make([]byte, 0, 4096)
	for i := 0; len(big) < 3000; i++ {
		big = append(big, []byte("0123456789")...)
	}
	bb, _ := schema.NewBatchBuilder(schema.BatchOptions{})
	bb.Append(&schema.Record{Value: big})
	tooBig, _ := bb.AppendTo(nil)
	if code := produceCode(produceMsg(fb.AcksAll, "small", 1, tooBig)); code != fb.ErrorCodeMessageTooLarge {
		t.Fatalf("frame above max.message.bytes: %v", code)
	}
	corrupt := batch(t, 0, 3, 1)
	corrupt[len(corrupt)-1] ^= 0xff
	if code := produceCode(produceMsg(fb.AcksAll, "small", 1, corrupt)); code != fb.ErrorCodeCorruptMessage {
		t.Fatalf("bad CRC: %v", code)
	}
	stillServed()

	env, _ := c.call(fetchMsg("small", 0, 1_000_000, 0, 0))
	if code := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0].ErrorCode; code != fb.ErrorCodeOffsetOutOfRange {
		t.Fatalf("fetch beyond the end: %v", code)
	}
	env, _ = c.call(fetchMsg("nope", 0, 0, 0, 0))
	if code := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0].ErrorCode; code != fb.ErrorCodeUnknownTopicOrPartition {
		t.Fatalf("fetch of an unknown topic: %v", code)
	}
	stillServed()

	// Garbage: a well-framed message that is no envelope gets
	// INVALID_REQUEST, and the connection closes.
	g := newTestClient(t, addr)
	garbage := binary.LittleEndian.AppendUint32(nil, 64)
	garbage = append(garbage, make([]byte, 64)...)
	for i := range garbage[4:] {
		garbage[4+i] = byte(i * 37)
	}
	g.conn.Write(garbage)
	genv, _ := g.recv()
	if genv.ErrorCode != fb.ErrorCodeInvalidRequest {
		t.Fatalf("garbage: %v", genv.ErrorCode)
	}
	if _, _, err := g.tryRecv(); err == nil {
		t.Fatal("connection still open after garbage")
	}
	stillServed()

	// A length prefix above the largest envelope: MESSAGE_TOO_LARGE before
	// any of it is read; its bytes are dropped as they come and the
	// connection goes on serving.
	h := newTestClient(t, addr)
	h.conn.Write(binary.LittleEndian.AppendUint32(nil, schema.EnvelopeBytesMax))
	henv, _ := h.recv()
	if henv.ErrorCode != fb.ErrorCodeMessageTooLarge {
		t.Fatalf("oversized request: %v, want MESSAGE_TOO_LARGE", henv.ErrorCode)
	}
	junk := make([]byte, 1<<20)
	for sent := 0; sent < schema.EnvelopeBytesMax; sent += len(junk) {
		if _, err := h.conn.Write(junk[:min(len(junk), schema.EnvelopeBytesMax-sent)]); err != nil {
			t.Fatal(err)
		}
	}
	hp, _ := h.call(produceMsg(fb.AcksAll, "small", 1, batch(t, 0, 1, 1)))
	if r := hp.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("produce after an oversized request: %v", r.ErrorCode)
	}
	stillServed()

	// A claim beyond what the broker will drop: answered, then closed.
	k := newTestClient(t, addr)
	k.conn.Write([]byte{0xff, 0xff, 0xff, 0xff})
	if kenv, _ := k.recv(); kenv.ErrorCode != fb.ErrorCodeMessageTooLarge {
		t.Fatalf("huge claim: %v", kenv.ErrorCode)
	}
	if _, _, err := k.tryRecv(); err == nil {
		t.Fatal("connection still open after a 4 GiB claim")
	}
	stillServed()

	// A connection that vanishes mid-request leaves nothing behind.
	half := newTestClient(t, addr)
	half.conn.Write(binary.LittleEndian.AppendUint32(nil, 1000))
	half.conn.Write(make([]byte, 10))
	half.conn.Close()
	stillServed()
}

// TestBrokerPipelining sends 1,000 produce requests on one connection
// before reading any answer; the answers come back in order with
// increasing offsets.
func TestBrokerPipelining(t *testing.T) {
	b := startBroker(t, t.TempDir(), 2)
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("pipe", 1); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	const n = 1000
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = batch(t, i, 1, int64(i))
	}
	go func() {
		for i := range n {
			c.send(produceMsg(fb.AcksLeader, "pipe", 0, frames[i]))
		}
	}()
	for i := range n {
		env, _, err := c.tryRecv()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if env.CorrelationId != int32(i+2) { // 1 was the topic creation
			t.Fatalf("answer %d has correlation %d", i, env.CorrelationId)
		}
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != int64(i) {
			t.Fatalf("answer %d: %v base %d", i, r.ErrorCode, r.BaseOffset)
		}
	}
}

// TestBrokerLongPollWokenByProduce parks a fetch at the log end with a long
// wait; a produce on another connection wakes it with the new records.
func TestBrokerLongPollWokenByProduce(t *testing.T) {
	b := startBroker(t, t.TempDir(), 2)
	defer b.Stop()
	admin := newTestClient(t, b.Addr().String())
	if code := admin.createTopic("poll", 3); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	for p := int32(0); p < 3; p++ {
		consumer := newTestClient(t, b.Addr().String())
		start := time.Now()
		corr := consumer.send(fetchMsg("poll", p, 0, 20_000, 1))
		// Nothing can be answered yet: the produce has not happened.
		producer := newTestClient(t, b.Addr().String())
		env, _ := producer.call(produceMsg(fb.AcksAll, "poll", p, batch(t, 0, 5, 42)))
		if code := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0].ErrorCode; code != fb.ErrorCodeNone {
			t.Fatal(code)
		}
		fenv, trailing := consumer.recv()
		if fenv.CorrelationId != corr {
			t.Fatal("wrong answer")
		}
		if recs := records(t, trailing); len(recs) != 5 || string(recs[4].Value) != "value-4" {
			t.Fatalf("partition %d: long poll returned %d records", p, len(recs))
		}
		if time.Since(start) >= 20*time.Second {
			t.Fatal("the fetch waited out its deadline instead of being woken")
		}
	}
	// An empty partition answers at its deadline with no data.
	consumer := newTestClient(t, b.Addr().String())
	env, trailing := consumer.call(fetchMsg("poll", 0, 5, 150, 1))
	if fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; fr.ErrorCode != fb.ErrorCodeNone || len(trailing) != 0 || fr.HighWatermark != 5 {
		t.Fatalf("expired fetch: %v %d bytes hw %d", fr.ErrorCode, len(trailing), fr.HighWatermark)
	}
}

// TestBrokerListOffsetsAndDelete covers earliest, latest and by-time
// lookups, then deleting the topic.
func TestBrokerListOffsetsAndDelete(t *testing.T) {
	b := startBroker(t, t.TempDir(), 2)
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("times", 1); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	for i := range 5 {
		c.call(produceMsg(fb.AcksAll, "times", 0, batch(t, i*10, 10, int64(1000*(i+1)))))
	}
	lookup := func(ts int64) *fb.ListOffsetsPartitionResponseT {
		env, _ := c.call(&fb.MessageT{Type: fb.MessageListOffsetsRequest, Value: &fb.ListOffsetsRequestT{ReplicaId: -1,
			Topics: []*fb.ListOffsetsTopicT{{Name: "times", Partitions: []*fb.ListOffsetsPartitionT{{Partition: 0, Timestamp: ts, CurrentLeaderEpoch: -1}}}}}})
		return env.Message.Value.(*fb.ListOffsetsResponseT).Topics[0].Partitions[0]
	}
	for _, tc := range []struct{ ts, want int64 }{{-2, 0}, {-1, 50}, {0, 0}, {2500, 20}, {3000, 20}, {5000, 40}, {9999, 50}} {
		if r := lookup(tc.ts); r.ErrorCode != fb.ErrorCodeNone || r.Offset != tc.want {
			t.Errorf("ListOffsets(%d): %v offset %d, want %d", tc.ts, r.ErrorCode, r.Offset, tc.want)
		}
	}
	env, _ := c.call(&fb.MessageT{Type: fb.MessageDeleteTopicsRequest, Value: &fb.DeleteTopicsRequestT{TopicNames: []string{"times", "absent"}}})
	dr := env.Message.Value.(*fb.DeleteTopicsResponseT).Topics
	if dr[0].ErrorCode != fb.ErrorCodeNone || dr[1].ErrorCode != fb.ErrorCodeUnknownTopicOrPartition {
		t.Fatalf("delete: %v %v", dr[0].ErrorCode, dr[1].ErrorCode)
	}
	env, _ = c.call(produceMsg(fb.AcksAll, "times", 0, batch(t, 0, 1, 1)))
	if code := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0].ErrorCode; code != fb.ErrorCodeUnknownTopicOrPartition {
		t.Fatalf("produce to a deleted topic: %v", code)
	}
	if code := c.createTopic("times", 2); code != fb.ErrorCodeNone {
		t.Fatalf("recreate: %v", code)
	}
	if r := lookup(-1); r.Offset != 0 {
		t.Fatalf("recreated topic starts at %d", r.Offset)
	}
}
