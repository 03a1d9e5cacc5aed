package server

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// deleteRecordsMsg asks to delete the records of topic's partition below
// offset.
func deleteRecordsMsg(topic string, partition int32, offset int64, timeoutMs int32) *fb.MessageT {
	return &fb.MessageT{Type: fb.MessageDeleteRecordsRequest, Value: &fb.DeleteRecordsRequestT{TimeoutMs: timeoutMs,
		Topics: []*fb.DeleteRecordsTopicT{{Name: topic, Partitions: []*fb.DeleteRecordsPartitionT{{Partition: partition, Offset: offset}}}}}}
}

// deleteRecords sends one DeleteRecords and returns its partition's answer.
func (c *testClient) deleteRecords(topic string, partition int32, offset int64) *fb.DeleteRecordsPartitionResponseT {
	c.t.Helper()
	env, _ := c.call(deleteRecordsMsg(topic, partition, offset, 30_000))
	if env.Message == nil {
		c.t.Fatalf("delete records: envelope error %v", env.ErrorCode)
	}
	return env.Message.Value.(*fb.DeleteRecordsResponseT).Topics[0].Partitions[0]
}

// listOffset asks for a partition's earliest (-2) or latest (-1) offset.
func (c *testClient) listOffset(topic string, partition int32, ts int64) *fb.ListOffsetsPartitionResponseT {
	c.t.Helper()
	env, _ := c.call(&fb.MessageT{Type: fb.MessageListOffsetsRequest, Value: &fb.ListOffsetsRequestT{ReplicaId: -1,
		Topics: []*fb.ListOffsetsTopicT{{Name: topic, Partitions: []*fb.ListOffsetsPartitionT{
			{Partition: partition, CurrentLeaderEpoch: -1, Timestamp: ts}}}}}})
	return env.Message.Value.(*fb.ListOffsetsResponseT).Topics[0].Partitions[0]
}

// produceRecords produces n records in frames of 100 to partition 0 and
// checks they land at [0, n).
func produceRecords(t *testing.T, c *testClient, topic string, n int) {
	t.Helper()
	for from := 0; from < n; from += 100 {
		env, _ := c.call(produceMsg(fb.AcksAll, topic, 0, batch(t, from, 100, 1)))
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != int64(from) {
			t.Fatalf("produce at %d: %v, base %d", from, r.ErrorCode, r.BaseOffset)
		}
	}
}

// checkFirstRecord fetches at offset and checks the first record served at
// or after it is the one produced at offset.
func checkFirstRecord(t *testing.T, c *testClient, topic string, offset int64) {
	t.Helper()
	env, trailing := c.call(fetchMsg(topic, 0, offset, 0, 0))
	r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
	if r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("fetch at %d: %v", offset, r.ErrorCode)
	}
	for _, v := range records(t, trailing) {
		if v.Offset < offset {
			continue
		}
		if v.Offset != offset || string(v.Value) != fmt.Sprintf("value-%d", offset) {
			t.Fatalf("fetch at %d: first record %d %q", offset, v.Offset, v.Value)
		}
		return
	}
	t.Fatalf("fetch at %d: no record", offset)
}

// TestDeleteRecordsOnBroker: 1000 records in small segments; DeleteRecords
// before 400 answers low watermark 400; ListOffsets earliest is 400, a
// fetch at 100 is OFFSET_OUT_OF_RANGE naming 400, a fetch at 400 serves
// the record produced there, the segments wholly below 400 are gone. An
// offset above the high watermark is refused, one below the log start
// changes nothing, -1 deletes up to the high watermark. The log start
// survives a restart.
func TestDeleteRecordsOnBroker(t *testing.T) {
	dir := t.TempDir()
	b, stop := startTrimBroker(t, dir)
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("trim", 1, topicConfigs("segment.bytes=8192")...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	produceRecords(t, c, "trim", 1000)
	logsBefore, _ := partitionFiles(t, partitionDir(dir, "trim", 0))

	if r := c.deleteRecords("trim", 0, 1001); r.ErrorCode != fb.ErrorCodeOffsetOutOfRange {
		t.Fatalf("delete before 1001 (past the high watermark 1000): %v", r.ErrorCode)
	}
	if r := c.deleteRecords("trim", 0, -7); r.ErrorCode != fb.ErrorCodeOffsetOutOfRange {
		t.Fatalf("delete before -7: %v", r.ErrorCode)
	}
	if r := c.deleteRecords("trim", 1, 10); r.ErrorCode != fb.ErrorCodeUnknownTopicOrPartition {
		t.Fatalf("delete in partition 1 of a topic of 1: %v", r.ErrorCode)
	}
	if r := c.deleteRecords("trim", 0, 400); r.ErrorCode != fb.ErrorCodeNone || r.LowWatermark != 400 {
		t.Fatalf("delete before 400: %v, low watermark %d", r.ErrorCode, r.LowWatermark)
	}
	if r := c.listOffset("trim", 0, schema.ListOffsetsEarliest); r.ErrorCode != fb.ErrorCodeNone || r.Offset != 400 {
		t.Fatalf("earliest after delete: %v %d", r.ErrorCode, r.Offset)
	}
	env, _ := c.call(fetchMsg("trim", 0, 100, 0, 0))
	if r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeOffsetOutOfRange || r.LogStartOffset != 400 {
		t.Fatalf("fetch at 100: %v, log start %d", r.ErrorCode, r.LogStartOffset)
	}
	checkFirstRecord(t, c, "trim", 400)
	logsAfter, _ := partitionFiles(t, partitionDir(dir, "trim", 0))
	if len(logsAfter) >= len(logsBefore) {
		t.Fatalf("segments before the delete %d, after %d: none deleted", len(logsBefore), len(logsAfter))
	}
	// Below the log start: nothing moves, the answer names the log start.
	if r := c.deleteRecords("trim", 0, 100); r.ErrorCode != fb.ErrorCodeNone || r.LowWatermark != 400 {
		t.Fatalf("delete before 100 after 400: %v, low watermark %d", r.ErrorCode, r.LowWatermark)
	}

	stop()
	b, _ = startTrimBroker(t, dir)
	c = newTestClient(t, b.Addr().String())
	awaitEarliest(t, c, "trim", 400)
	checkFirstRecord(t, c, "trim", 400)

	// -1: everything committed.
	if r := c.deleteRecords("trim", 0, -1); r.ErrorCode != fb.ErrorCodeNone || r.LowWatermark != 1000 {
		t.Fatalf("delete before the high watermark: %v, low watermark %d", r.ErrorCode, r.LowWatermark)
	}
	if r := c.listOffset("trim", 0, schema.ListOffsetsEarliest); r.Offset != 1000 {
		t.Fatalf("earliest after deleting everything: %d", r.Offset)
	}
	// The log takes appends at its end after being emptied.
	env, _ = c.call(produceMsg(fb.AcksAll, "trim", 0, batch(t, 1000, 10, 1)))
	if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 1000 {
		t.Fatalf("produce after deleting everything: %v at %d", r.ErrorCode, r.BaseOffset)
	}
	checkFirstRecord(t, c, "trim", 1000)
}

// startTrimBroker starts a one-broker cluster on dir and returns it with
// its stop, which the test's end calls unless the test did.
func startTrimBroker(t *testing.T, dir string) (*Broker, func()) {
	t.Helper()
	b, err := StartBroker(BrokerConfig{DataDir: dir, Listen: "127.0.0.1:0", Cores: 2, NodeID: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := b.Stop(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return b, stop
}

// awaitEarliest polls ListOffsets earliest until the partition answers
// (a restarted broker takes a moment to lead it) and checks it is want.
func awaitEarliest(t *testing.T, c *testClient, topic string, want int64) {
	t.Helper()
	deadline := time.Now().Add(retentionWait)
	for {
		r := c.listOffset(topic, 0, schema.ListOffsetsEarliest)
		if r.ErrorCode == fb.ErrorCodeNone {
			if r.Offset != want {
				t.Fatalf("earliest: %d, want %d", r.Offset, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("earliest: %v", r.ErrorCode)
		}
		time.Sleep(retentionPoll)
	}
}

// TestDeleteRecordsManyPartitions: one request names partitions on both
// shards of a broker, an unknown topic and an invalid name; each is
// answered in the request's order, the partitions trimmed to their own
// offsets. A request past the walk's partition bound is INVALID_REQUEST.
func TestDeleteRecordsManyPartitions(t *testing.T) {
	b, _ := startTrimBroker(t, t.TempDir())
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("spread", 6); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	for p := int32(0); p < 6; p++ {
		env, _ := c.call(produceMsg(fb.AcksAll, "spread", p, batch(t, 0, 10, 1)))
		if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("produce to %d: %v", p, r.ErrorCode)
		}
	}
	req := &fb.DeleteRecordsRequestT{TimeoutMs: 30_000, Topics: []*fb.DeleteRecordsTopicT{
		{Name: "nope", Partitions: []*fb.DeleteRecordsPartitionT{{Partition: 0, Offset: 1}}},
		{Name: "spread"},
		{Name: "bad/name", Partitions: []*fb.DeleteRecordsPartitionT{{Partition: 0, Offset: 1}}},
	}}
	for p := int32(5); p >= 0; p-- {
		req.Topics[1].Partitions = append(req.Topics[1].Partitions, &fb.DeleteRecordsPartitionT{Partition: p, Offset: int64(p)})
	}
	env, _ := c.call(&fb.MessageT{Type: fb.MessageDeleteRecordsRequest, Value: req})
	resp := env.Message.Value.(*fb.DeleteRecordsResponseT)
	if len(resp.Topics) != 3 || resp.Topics[0].Partitions[0].ErrorCode != fb.ErrorCodeUnknownTopicOrPartition ||
		resp.Topics[2].Partitions[0].ErrorCode != fb.ErrorCodeInvalidTopic {
		t.Fatalf("answer %+v", resp.Topics)
	}
	for i, r := range resp.Topics[1].Partitions {
		want := int32(5 - i)
		if r.Partition != want || r.ErrorCode != fb.ErrorCodeNone || r.LowWatermark != int64(want) {
			t.Fatalf("answer %d: partition %d %v low watermark %d, want partition %d at %d", i, r.Partition, r.ErrorCode, r.LowWatermark, want, want)
		}
		if got := c.listOffset("spread", want, schema.ListOffsetsEarliest); got.Offset != int64(want) {
			t.Fatalf("partition %d: earliest %d", want, got.Offset)
		}
	}

	huge := &fb.DeleteRecordsRequestT{Topics: []*fb.DeleteRecordsTopicT{{Name: "spread"}}}
	for range partitionsPerRequestMax + 1 {
		huge.Topics[0].Partitions = append(huge.Topics[0].Partitions, &fb.DeleteRecordsPartitionT{Partition: 0, Offset: 0})
	}
	env, _ = c.call(&fb.MessageT{Type: fb.MessageDeleteRecordsRequest, Value: huge})
	if env.ErrorCode != fb.ErrorCodeInvalidRequest || env.Message != nil {
		t.Fatalf("%d partitions: %v", partitionsPerRequestMax+1, env.ErrorCode)
	}
}
