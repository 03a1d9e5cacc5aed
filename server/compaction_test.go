package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// The compaction test's workload: compactionKeys keys written
// compactionRounds times each (one produce a round, a record per key),
// then a tombstone for each of the first compactionTombstones keys, then
// filler records of keys written once, to roll segments and give the
// cleaner dirty bytes while the test waits.
const (
	compactionKeys       = 100
	compactionRounds     = 1000
	compactionTombstones = 20
	// compactionDeleteRetentionMs is the topic's delete.retention.ms:
	// short, so that the tombstones go while the test waits.
	compactionDeleteRetentionMs = 300
	// compactionFillerPerPoll is the filler records produced per look:
	// with compactionFillerPad, most of a segment, so that each look
	// rolls one and the cleaner has a round to run.
	compactionFillerPerPoll = 50
)

// compactionFillerPad makes a filler record about 1 KiB.
var compactionFillerPad = strings.Repeat(".", 1000)

// compactedRecord is what was produced at an offset.
type compactedRecord struct {
	key, value string
	tombstone  bool
}

// TestCompactionOnBroker produces 100 keys x 1,000 updates to a topic with
// cleanup.policy=compact and small segments, then tombstones for 20 of the
// keys, and waits, feeding records of fresh keys, until a fetch from the
// log start serves, below the tombstones' end, exactly one record for
// each of the 80 live keys, the latest produced, and none of the 20
// deleted keys (their tombstones gone after delete.retention.ms). Every
// record served at any offset is the one produced there (offsets never
// change), and every filler record stays. A first segment that kept no
// record is removed and the log start moves past it.
func TestCompactionOnBroker(t *testing.T) {
	dir := t.TempDir()
	b := startRetentionBroker(t, dir)
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("compacted", 1, topicConfigs("segment.bytes=65536", "cleanup.policy=compact",
		"min.cleanable.dirty.ratio=0.01", "flush.policy=never",
		"delete.retention.ms="+strconv.Itoa(compactionDeleteRetentionMs))...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	produced := map[int64]compactedRecord{}
	next := int64(0)
	produce := func(recs []compactedRecord) {
		t.Helper()
		bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			rec := &schema.Record{Key: []byte(r.key), TimestampMs: time.Now().UnixMilli()}
			if !r.tombstone {
				rec.Value = []byte(r.value)
			}
			if err := bb.Append(rec); err != nil {
				t.Fatal(err)
			}
		}
		frame, _ := bb.AppendTo(nil)
		// A thousand produces take a while under -race: the deadline
		// bounds each, not the whole feed.
		c.conn.SetDeadline(time.Now().Add(testDeadline))
		env, _ := c.call(produceMsg(fb.AcksAll, "compacted", 0, frame))
		pr := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if pr.ErrorCode != fb.ErrorCodeNone || pr.BaseOffset != next {
			t.Fatalf("produce at %d: %v, base %d", next, pr.ErrorCode, pr.BaseOffset)
		}
		for _, r := range recs {
			produced[next] = r
			next++
		}
	}
	key := func(k int) string { return fmt.Sprintf("k%03d", k) }
	for r := 0; r < compactionRounds; r++ {
		recs := make([]compactedRecord, compactionKeys)
		for k := range recs {
			recs[k] = compactedRecord{key: key(k), value: key(k) + "=" + strconv.Itoa(r)}
		}
		produce(recs)
	}
	var tombs []compactedRecord
	for k := range compactionTombstones {
		tombs = append(tombs, compactedRecord{key: key(k), tombstone: true})
	}
	produce(tombs)
	cutoff := next // the updates and tombstones are below it
	filler := 0
	feed := func() {
		recs := make([]compactedRecord, compactionFillerPerPoll)
		for i := range recs {
			recs[i] = compactedRecord{key: fmt.Sprintf("f%06d", filler), value: strconv.Itoa(filler) + compactionFillerPad}
			filler++
		}
		produce(recs)
	}
	feed()

	deadline := time.Now().Add(2 * retentionWait)
	sawTombstones := false
	for {
		below := map[string]int{}      // records served below cutoff, by key
		servedAt := map[string]int64{} // the offset of the last of them
		fillers, tombstones := 0, 0
		start := int64(-1)
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
			if start < 0 {
				start = off
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
					want, ok := produced[v.Offset]
					if !ok || string(v.Key) != want.key || (v.Value == nil) != want.tombstone || string(v.Value) != want.value {
						t.Fatalf("record at %d: key %q value %q, produced %+v", v.Offset, v.Key, v.Value, want)
					}
					switch {
					case v.Offset >= cutoff:
						fillers++
					case want.tombstone:
						tombstones++
						below[want.key]++
					default:
						below[want.key]++
						servedAt[want.key] = v.Offset
					}
				}
				h := br.Header()
				off = h.NextOffset()
				trailing = trailing[n:]
			}
		}
		if fillers != filler {
			t.Fatalf("%d filler records served, %d produced (a record of a key written once was removed)", fillers, filler)
		}
		sawTombstones = sawTombstones || tombstones == compactionTombstones && len(below) == compactionKeys
		done := len(below) == compactionKeys-compactionTombstones && tombstones == 0
		for k := 0; k < compactionKeys && done; k++ {
			switch n := below[key(k)]; {
			case k < compactionTombstones && n != 0, k >= compactionTombstones && n != 1:
				done = false
			}
		}
		if done {
			// Exactly the latest record of each live key: the last
			// round's, at the offset it was produced at.
			for k := compactionTombstones; k < compactionKeys; k++ {
				if want := cutoff - compactionTombstones - compactionKeys + int64(k); servedAt[key(k)] != want {
					t.Fatalf("%s served at %d, its latest record is at %d", key(k), servedAt[key(k)], want)
				}
			}
			if start == 0 {
				t.Fatal("the log start did not move past the first segments, which kept nothing")
			}
			t.Logf("cleaned: log start %d, %d filler records; tombstones seen before they went: %v", start, filler, sawTombstones)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not cleaned after %v: %d keys below %d (%d tombstones)", 2*retentionWait, len(below), cutoff, tombstones)
		}
		feed()
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

// TestCleanerBrokerSettingsHonoured runs a broker whose cleaner key map
// is the least allowed (1 MiB for its one shard: 39,321 keys a round) and
// whose cleaner I/O is throttled, on a compacted topic of 50,000 distinct
// keys: the first round stops where its map filled, short of the end
// (the next goes on from there), and its I/O was held back by the
// throttle. Both are read from the round's debug line.
func TestCleanerBrokerSettingsHonoured(t *testing.T) {
	const (
		keys      = 50_000
		perBatch  = 1000
		mapKeys   = (LogCleanerDedupeBufferBytesPerShardMin / 24) * 90 / 100
		ioPerSec  = 512 << 10
		roundLine = "msg=compacted"
	)
	logs := &lockedBuffer{}
	b, err := StartBroker(BrokerConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Cores: 1, NodeID: 1,
		Logger:                      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LogRetentionCheckInterval:   retentionCheckIntervalTest,
		LogCleanerDedupeBufferBytes: LogCleanerDedupeBufferBytesPerShardMin, LogCleanerIOMaxBytesPerSecond: ioPerSec})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("many", 1, topicConfigs("segment.bytes=65536", "cleanup.policy=compact",
		"min.cleanable.dirty.ratio=0.01", "flush.policy=never")...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	for from := 0; from < keys; from += perBatch {
		bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for k := from; k < from+perBatch; k++ {
			if err := bb.Append(&schema.Record{Key: []byte(fmt.Sprintf("key-%06d", k)), Value: []byte("v"), TimestampMs: 1}); err != nil {
				t.Fatal(err)
			}
		}
		frame, _ := bb.AppendTo(nil)
		env, _ := c.call(produceMsg(fb.AcksAll, "many", 0, frame))
		if pr := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; pr.ErrorCode != fb.ErrorCodeNone {
			t.Fatal(pr.ErrorCode)
		}
	}
	var line string
	deadline := time.Now().Add(2 * retentionWait)
	for line == "" {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, roundLine) {
				line = l
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cleaner round within %v", 2*retentionWait)
		}
		time.Sleep(retentionPoll)
	}
	field := func(name string) string {
		_, v, ok := strings.Cut(line, " "+name+"=")
		if !ok {
			t.Fatalf("no %s in %q", name, line)
		}
		v, _, _ = strings.Cut(v, " ")
		return v
	}
	upTo, err := strconv.ParseInt(field("cleanedUpTo"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if upTo <= 0 || upTo > mapKeys || upTo >= keys {
		t.Fatalf("the first round cleaned up to %d: the map holds %d keys, the topic %d", upTo, mapKeys, keys)
	}
	throttled, err := time.ParseDuration(field("throttledFor"))
	if err != nil {
		t.Fatal(err)
	}
	if throttled <= 0 {
		t.Fatalf("the round read %s and wrote %s bytes and was never throttled (%q)", field("bytesRead"), field("bytesWritten"), line)
	}
	t.Logf("first round: cleaned up to %d of %d, read %s, wrote %s, throttled for %v", upTo, keys, field("bytesRead"), field("bytesWritten"), throttled)
}

// TestCompactedTopicCompressedKeyCheck: on a compacted topic a compressed
// batch is judged by its AttrKeyed, never by decompressing it: the
// builder's lz4 batch of keyed records is taken, one holding a keyless
// record (which the builder leaves without AttrKeyed) is refused whole, and
// neither produce decompressed a body.
func TestCompactedTopicCompressedKeyCheck(t *testing.T) {
	b := startRetentionBroker(t, t.TempDir())
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("compacted-lz4", 1, topicConfigs("cleanup.policy=compact")...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	value := bytes.Repeat([]byte("a compressible value "), 64)
	produce := func(keys ...[]byte) (*fb.ProducePartitionResponseT, schema.FrameHeader) {
		bb, err := schema.NewBatchBuilder(schema.BatchOptions{Compression: schema.CompressionLZ4})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if err := bb.Append(&schema.Record{Key: k, Value: value, TimestampMs: 1}); err != nil {
				t.Fatal(err)
			}
		}
		frame, _ := bb.AppendTo(nil)
		h, err := schema.ParseFrameHeader(frame)
		if err != nil || h.Compression() != schema.CompressionLZ4 {
			t.Fatalf("built frame: %v, codec %d", err, h.Compression())
		}
		env, _ := c.call(produceMsg(fb.AcksAll, "compacted-lz4", 0, frame))
		return env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0], h
	}
	before := schema.BodiesDecompressed()
	r, h := produce([]byte("a"), []byte("b"))
	if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 0 || h.Attributes&schema.AttrKeyed == 0 {
		t.Fatalf("keyed lz4 batch: %v %q base %d, attributes %#x", r.ErrorCode, r.ErrorMessage, r.BaseOffset, h.Attributes)
	}
	r, h = produce([]byte("c"), nil)
	if h.Attributes&schema.AttrKeyed != 0 {
		t.Fatalf("a batch with a keyless record has AttrKeyed: %#x", h.Attributes)
	}
	if r.ErrorCode != fb.ErrorCodeCorruptMessage || r.BaseOffset != -1 || !strings.Contains(r.ErrorMessage, "does not declare every record keyed") {
		t.Fatalf("lz4 batch with a keyless record: %v %q base %d", r.ErrorCode, r.ErrorMessage, r.BaseOffset)
	}
	if d := schema.BodiesDecompressed() - before; d != 0 {
		t.Fatalf("the key checks decompressed %d bodies", d)
	}
	if r, _ := produce([]byte("d")); r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 2 {
		t.Fatalf("keyed lz4 batch after the refusal: %v base %d (the refused batch was appended)", r.ErrorCode, r.BaseOffset)
	}
}
