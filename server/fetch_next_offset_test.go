package server

import (
	"testing"

	"github.com/strata-db/strata/schema/fb"
)

// A fetch answer's entry says where the partition's next fetch starts: the
// offset after its region's last frame, the fetch offset when the region is
// empty or left out by max_bytes, and -1 with an error.
func TestFetchAnswerNamesNextFetchOffset(t *testing.T) {
	b := startBroker(t, t.TempDir(), 2)
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("next", 2); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	var frameBytes int
	for p := int32(0); p < 2; p++ {
		for i := 0; i < 5; i++ {
			frame := batch(t, i*10, 10, 1000)
			frameBytes = len(frame)
			env, _ := c.call(produceMsg(fb.AcksAll, "next", p, frame))
			if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
				t.Fatalf("produce p%d: %v", p, r.ErrorCode)
			}
		}
	}

	// Two frames' worth per partition, the whole answer capped at three
	// frames: partition 0 gets two frames, partition 1 is left out.
	req := &fb.FetchRequestT{ReplicaId: -1, MaxBytes: int32(3 * frameBytes), Topics: []*fb.FetchTopicT{{Name: "next", Partitions: []*fb.FetchPartitionT{
		{Partition: 0, FetchOffset: 10, PartitionMaxBytes: int32(2 * frameBytes), CurrentLeaderEpoch: -1, LogStartOffset: -1},
		{Partition: 1, FetchOffset: 0, PartitionMaxBytes: int32(2 * frameBytes), CurrentLeaderEpoch: -1, LogStartOffset: -1},
		{Partition: 7, FetchOffset: 0, PartitionMaxBytes: int32(2 * frameBytes), CurrentLeaderEpoch: -1, LogStartOffset: -1},
	}}}}
	env, trailing := c.call(&fb.MessageT{Type: fb.MessageFetchRequest, Value: req})
	parts := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions
	if len(parts) != 3 {
		t.Fatalf("%d partition entries, want 3", len(parts))
	}
	recs := records(t, trailing)
	if len(recs) != 20 || recs[0].Offset != 10 || recs[19].Offset != 29 {
		t.Fatalf("records %d, want offsets 10..29", len(recs))
	}
	if got := parts[0]; got.ErrorCode != fb.ErrorCodeNone || got.NextFetchOffset != 30 {
		t.Errorf("partition 0: code %v next %d, want none and 30", got.ErrorCode, got.NextFetchOffset)
	}
	if got := parts[1]; got.ErrorCode != fb.ErrorCodeNone || got.FramesBytes != 0 || got.NextFetchOffset != 0 {
		t.Errorf("partition 1 (over max_bytes): code %v bytes %d next %d, want none, 0 and 0", got.ErrorCode, got.FramesBytes, got.NextFetchOffset)
	}
	if got := parts[2]; got.ErrorCode != fb.ErrorCodeUnknownTopicOrPartition || got.NextFetchOffset != -1 {
		t.Errorf("partition 7: code %v next %d, want UNKNOWN_TOPIC_OR_PARTITION and -1", got.ErrorCode, got.NextFetchOffset)
	}

	// At the log end the region is empty and the next fetch starts where
	// this one did.
	env, trailing = c.call(fetchMsg("next", 1, 50, 0, 0))
	got := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
	if got.ErrorCode != fb.ErrorCodeNone || len(trailing) != 0 || got.NextFetchOffset != 50 {
		t.Errorf("fetch at the end: code %v, %d bytes, next %d; want none, 0 and 50", got.ErrorCode, len(trailing), got.NextFetchOffset)
	}
}
