package client

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"
)

// pipelineValue is record i: distinct per record, so a record read from
// a reused buffer that was overwritten shows up.
func pipelineValue(i int) []byte {
	v := []byte(fmt.Sprintf("record-%06d-", i))
	return append(v, bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 40+i%60)...)
}

// TestConsumerPipelinedFetchesReuseBuffers reads a topic through many
// small fetches, so the consumer keeps a second fetch in flight (sent when
// the first answer's envelope names the next offsets) and reads answers
// into reused buffers. Every record each Poll returns must be whole and in
// order, with no offset skipped or repeated, while later answers are
// already being read into the pool.
func TestConsumerPipelinedFetchesReuseBuffers(t *testing.T) {
	_, cl, ctx := startBroker(t)
	const topic, parts, n = "pipelined", 3, 4500
	createTopic(t, ctx, cl, topic, parts)
	pr, err := NewProducer(cl, ProducerConfig{BatchBytes: 4 << 10, LingerMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := pr.Send(ctx, &Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: pipelineValue(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := pr.Close(ctx); err != nil {
		t.Fatal(err)
	}

	c := NewConsumer(cl, ConsumerConfig{Reset: ResetEarliest, MaxWaitMs: 100, MaxBytes: 24 << 10,
		PartitionMaxBytes: 8 << 10, ReuseFetchBuffers: true})
	defer c.Close()
	if err := c.Assign(topic); err != nil {
		t.Fatal(err)
	}
	next := make([]int64, parts)
	seen := make([]bool, n)
	polls := 0
	for total := 0; total < n; {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d records: %v", total, err)
		}
		polls++
		if r, ok := pooledRecord(c, recs); ok {
			t.Fatalf("partition %d offset %d lies in a buffer the pool may hand out again", r.Partition, r.Offset)
		}
		for _, r := range recs {
			if r.Offset != next[r.Partition] {
				t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			var i int
			if _, err := fmt.Sscanf(string(r.Value), "record-%06d-", &i); err != nil || i < 0 || i >= n || seen[i] ||
				!bytes.Equal(r.Value, pipelineValue(i)) {
				t.Fatalf("partition %d offset %d: value %q is not a record sent once", r.Partition, r.Offset, r.Value[:min(len(r.Value), 24)])
			}
			seen[i] = true
			total++
		}
	}
	if polls < 10 {
		t.Fatalf("%d polls: the fetches were too large to pipeline", polls)
	}
}

// pooledRecord finds a record whose value lies in one of the consumer's
// free buffers: a buffer reclaimed while its records were still lent.
func pooledRecord(c *Consumer, recs []Record) (Record, bool) {
	c.buffers.mu.Lock()
	defer c.buffers.mu.Unlock()
	for _, b := range c.buffers.free {
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		hi := lo + uintptr(cap(b))
		for _, r := range recs {
			if p := uintptr(unsafe.Pointer(unsafe.SliceData(r.Value))); len(r.Value) > 0 && p >= lo && p < hi {
				return r, true
			}
		}
	}
	return Record{}, false
}
