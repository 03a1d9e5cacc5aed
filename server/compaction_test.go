package server

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// compactionKeys and compactionRounds: every key is written this many
// times, so that a compacted partition holds one record per key below the
// active segment.
const (
	compactionKeys   = 20
	compactionRounds = 30
)

// TestCompactionOnBroker produces many versions of a few keys to a topic
// with cleanup.policy=compact and small segments, and waits until a fetch
// from offset 0 answers with at most one record per key below the active
// segment, each the latest produced, at the offsets they were produced at.
// A first segment that kept no record is removed and the log start moves
// past it.
func TestCompactionOnBroker(t *testing.T) {
	dir := t.TempDir()
	b := startRetentionBroker(t, dir)
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("compacted", 1, topicConfigs("segment.bytes=4096", "cleanup.policy=compact",
		"min.cleanable.dirty.ratio=0.01", "flush.policy=sync")...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	latest := map[string]int64{}
	next := int64(0)
	for r := 0; r < compactionRounds; r++ {
		for k := 0; k < compactionKeys; k++ {
			bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("k%02d", k)
			if err := bb.Append(&schema.Record{Key: []byte(key), Value: []byte(key + "=" + strconv.Itoa(r)), TimestampMs: 1}); err != nil {
				t.Fatal(err)
			}
			frame, _ := bb.AppendTo(nil)
			env, _ := c.call(produceMsg(fb.AcksAll, "compacted", 0, frame))
			pr := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
			if pr.ErrorCode != fb.ErrorCodeNone || pr.BaseOffset != next {
				t.Fatalf("produce at %d: %v, base %d", next, pr.ErrorCode, pr.BaseOffset)
			}
			latest[key] = next
			next++
		}
	}
	deadline := time.Now().Add(retentionWait)
	for {
		counts := map[string]int{}
		total := 0
		var br schema.BatchReader
		for off := int64(0); off < next; {
			env, trailing := c.call(fetchMsg("compacted", 0, off, 0, 0))
			r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
			if r.ErrorCode == fb.ErrorCodeOffsetOutOfRange && off < r.LogStartOffset {
				// The first segments kept nothing (every record in them
				// superseded): the log starts at the first one kept, as
				// a consumer reset to the earliest offset finds.
				off = r.LogStartOffset
				continue
			}
			if r.ErrorCode != fb.ErrorCodeNone || len(trailing) == 0 {
				t.Fatalf("fetch at %d: %v, %d bytes", off, r.ErrorCode, len(trailing))
			}
			for len(trailing) > 0 {
				n, err := schema.PeekFrameLength(trailing, schema.MaxFrameBytes)
				if err != nil || n > len(trailing) {
					t.Fatalf("fetch at %d: %v", off, err)
				}
				if err := br.Reset(trailing[:n]); err != nil {
					t.Fatalf("fetch at %d: %v", off, err)
				}
				var v schema.RecordView
				for br.Next(&v) {
					key := string(v.Key)
					if want := key + "="; string(v.Value[:len(want)]) != want {
						t.Fatalf("record %d: %q holds %q", v.Offset, key, v.Value)
					}
					if v.Offset == latest[key] && string(v.Value) != key+"="+strconv.Itoa(compactionRounds-1) {
						t.Fatalf("latest record of %s at %d holds %q", key, v.Offset, v.Value)
					}
					counts[key]++
					total++
				}
				h := br.Header()
				off = h.NextOffset()
				trailing = trailing[n:]
			}
		}
		for k, off := range latest {
			if counts[k] == 0 {
				t.Fatalf("key %s (latest at %d) lost", k, off)
			}
		}
		// The active segment holds at most a segment's worth of
		// records, uncleaned: the rest is one record per key.
		if total < compactionKeys*compactionRounds/3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records of %d left after %v", total, compactionKeys*compactionRounds, retentionWait)
		}
		time.Sleep(retentionPoll)
	}
}

// TestCompactedTopicRefusesKeylessRecords: a produce to a compacted topic
// whose batch holds a record without a key is refused whole with
// CORRUPT_MESSAGE (Kafka's INVALID_RECORD) and a message naming the
// record, and nothing of it is appended: the next keyed produce gets the
// offset the refused one would have. An empty key is a key. A topic
// without cleanup.policy=compact takes keyless records.
func TestCompactedTopicRefusesKeylessRecords(t *testing.T) {
	b := startRetentionBroker(t, t.TempDir())
	c := newTestClient(t, b.Addr().String())
	for _, tc := range []struct {
		topic, policy string
	}{{"compacted", "compact"}, {"both", "compact,delete"}, {"plain", "delete"}} {
		if code := c.createTopic(tc.topic, 1, topicConfigs("cleanup.policy="+tc.policy)...); code != fb.ErrorCodeNone {
			t.Fatal(code)
		}
		produce := func(keys ...[]byte) *fb.ProducePartitionResponseT {
			bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i, k := range keys {
				if err := bb.Append(&schema.Record{Key: k, Value: []byte(strconv.Itoa(i)), TimestampMs: 1}); err != nil {
					t.Fatal(err)
				}
			}
			frame, _ := bb.AppendTo(nil)
			env, _ := c.call(produceMsg(fb.AcksAll, tc.topic, 0, frame))
			return env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		}
		if r := produce([]byte("a"), []byte{}); r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 0 {
			t.Fatalf("%s: keyed produce: %v base %d", tc.topic, r.ErrorCode, r.BaseOffset)
		}
		r := produce([]byte("b"), nil, []byte("c"))
		if tc.policy == "delete" {
			if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 2 {
				t.Fatalf("%s: keyless record refused: %v %q", tc.topic, r.ErrorCode, r.ErrorMessage)
			}
			continue
		}
		if r.ErrorCode != fb.ErrorCodeCorruptMessage || r.BaseOffset != -1 || !strings.Contains(r.ErrorMessage, "record 1 ") ||
			!strings.Contains(r.ErrorMessage, "no key") {
			t.Fatalf("%s: keyless record: %v %q base %d", tc.topic, r.ErrorCode, r.ErrorMessage, r.BaseOffset)
		}
		if r := produce([]byte("d")); r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 2 {
			t.Fatalf("%s: keyed produce after the refusal: %v base %d (the refused batch was appended)", tc.topic, r.ErrorCode, r.BaseOffset)
		}
		env, trailing := c.call(fetchMsg(tc.topic, 0, 0, 0, 0))
		if fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; fr.ErrorCode != fb.ErrorCodeNone || fr.HighWatermark != 3 {
			t.Fatalf("%s: fetch: %v hw %d", tc.topic, fr.ErrorCode, fr.HighWatermark)
		}
		// a, the empty key, d: the refused batch left nothing.
		recs := records(t, trailing)
		if len(recs) != 3 || string(recs[0].Key) != "a" || recs[1].Offset != 1 || string(recs[2].Key) != "d" || recs[2].Offset != 2 {
			t.Fatalf("%s: the log holds %+v", tc.topic, recs)
		}
	}
}
