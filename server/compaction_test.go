package server

import (
	"fmt"
	"strconv"
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
