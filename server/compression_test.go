package server

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// The compressed-topic test's workload: compressKeys keys written
// compressRounds times each with JSON-like values (what lz4 is for), in
// producer batches of compressBatchBytes, to segments of
// compressSegmentBytes so that the log has several closed ones to clean.
const (
	compressKeys         = 40
	compressRounds       = 50
	compressBatchBytes   = 8 << 10
	compressSegmentBytes = 32 << 10
	// compressFillerPerPoll is the records of fresh keys produced per
	// look while waiting for the cleaner: they roll segments, so that
	// the last round ends up in a closed segment the cleaner may clean.
	compressFillerPerPoll = 100
	// compressPendingMax bounds the records sent and not yet settled.
	compressPendingMax = compressKeys * compressRounds
)

// jsonValue is a JSON-like value of about 300 bytes: fixed field names
// and varying numbers and words, compressible as real event payloads are.
func jsonValue(rng *rand.Rand, key string, version int) []byte {
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}
	return fmt.Appendf(nil, `{"id":%q,"version":%d,"user":{"name":"user-%d","email":"user-%d@example.com","tier":%q},`+
		`"event":{"type":%q,"amount":%d.%02d,"currency":"EUR","tags":[%q,%q]},"ts":%d}`,
		key, version, rng.IntN(1000), rng.IntN(1000), words[rng.IntN(len(words))],
		words[rng.IntN(len(words))], rng.IntN(10000), rng.IntN(100), words[rng.IntN(len(words))],
		words[rng.IntN(len(words))], 1_700_000_000_000+rng.Int64N(1_000_000))
}

// sentRecord is what the producer was given for one offset.
type sentRecord struct {
	key, value, hdrValue []byte
	tsMs                 int64
}

// fetchFrames reads the partition's frames from offset from to end with
// raw fetches, each checked (length, CRC), and reports how many lz4
// bodies this process decompressed while the fetches were in flight:
// only the broker runs then, so anything counted is the fetch path's.
func fetchFrames(t *testing.T, c *testClient, topic string, from, end int64) (frames [][]byte, decompressed int64) {
	t.Helper()
	for off := from; off < end; {
		before := schema.BodiesDecompressed()
		c.conn.SetDeadline(time.Now().Add(testDeadline))
		env, trailing := c.call(fetchMsg(topic, 0, off, 0, 0))
		decompressed += schema.BodiesDecompressed() - before
		r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
		if r.ErrorCode == fb.ErrorCodeOffsetOutOfRange && off < r.LogStartOffset {
			off = r.LogStartOffset
			continue
		}
		if r.ErrorCode != fb.ErrorCodeNone || len(trailing) == 0 {
			t.Fatalf("fetch of %s at %d: %v, %d bytes", topic, off, r.ErrorCode, len(trailing))
		}
		for len(trailing) > 0 {
			n, err := schema.PeekFrameLength(trailing, schema.MaxFrameBytes)
			if err != nil || n > len(trailing) {
				t.Fatalf("fetch of %s at %d: frame of %d bytes in %d: %v", topic, off, n, len(trailing), err)
			}
			h, err := schema.CheckFrame(trailing[:n])
			if err != nil {
				t.Fatalf("fetch of %s at %d: %v", topic, off, err)
			}
			frames = append(frames, bytes.Clone(trailing[:n]))
			off = h.NextOffset()
			trailing = trailing[n:]
		}
	}
	return frames, decompressed
}

// TestCompressedTopicRoundTrip runs a topic with cleanup.policy=compact
// and compression.type=lz4 on an in-process broker, written by the Go
// producer under lz4 with JSON-like values, keys, a header and set
// timestamps, many versions a key:
//
//   - before cleaning, the consumer reads every record at its offset with
//     the exact key, value, header and timestamp given to the producer,
//     and every frame the broker serves is lz4;
//   - neither the fetch path nor the produce path decompresses anything,
//     on the compacted topic (whose keyless-record refusal reads the
//     frames' AttrKeyed, not their bodies) nor on a second lz4 topic with
//     cleanup.policy=delete;
//   - after cleaning, exactly the latest record of each key remains below
//     the filler, at its offset, with the same bytes; every frame served
//     is still lz4; frames the cleaner left whole are byte for byte the
//     frames served before, and the ones it rewrote keep their header but
//     for length and CRC and hold a subset of the same records.
//
// The cleaner is held off while the first two points are checked by
// min.compaction.lag.ms (every record is younger), then let go by setting
// it to 0 at run time.
func TestCompressedTopicRoundTrip(t *testing.T) {
	b := startRetentionBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 4*retentionWait)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{b.Addr().String()}, ClientID: "compressed"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)
	const topic, plainTopic = "compressed", "compressed-delete"
	if err := admin.CreateTopics(ctx,
		client.TopicSpec{Name: topic, Partitions: 1, Configs: map[string]string{
			"cleanup.policy": "compact", "compression.type": "lz4", "flush.policy": "never",
			"segment.bytes": strconv.Itoa(compressSegmentBytes), "min.cleanable.dirty.ratio": "0.01",
			"min.compaction.lag.ms": strconv.Itoa(int(time.Hour / time.Millisecond))}},
		client.TopicSpec{Name: plainTopic, Partitions: 1, Configs: map[string]string{
			"cleanup.policy": "delete", "compression.type": "lz4", "flush.policy": "never"}},
	); err != nil {
		t.Fatal(err)
	}
	prod, err := client.NewProducer(cl, client.ProducerConfig{Acks: client.AcksAll,
		Compression: client.CompressionLZ4, BatchBytes: compressBatchBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.WithoutCancel(ctx))

	rng := rand.New(rand.NewPCG(1, 2))
	sent := map[string]map[int64]sentRecord{topic: {}, plainTopic: {}}
	tsBase := time.Now().Add(-time.Minute).UnixMilli()
	var seq int64
	// send hands the records to the producer in order, and settle waits
	// for every record sent so far; the callbacks keep what was given for
	// each offset.
	errs := make(chan error, compressPendingMax)
	pending := 0
	settle := func() {
		t.Helper()
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for ; pending > 0; pending-- {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	send := func(topic string, keys []string, version int) {
		t.Helper()
		if pending+len(keys) > compressPendingMax {
			t.Fatalf("%d records pending, more than the test's %d", pending+len(keys), compressPendingMax)
		}
		pending += len(keys)
		for _, k := range keys {
			seq++
			r := sentRecord{key: []byte(k), value: jsonValue(rng, k, version),
				hdrValue: []byte("trace-" + strconv.FormatInt(seq, 16)), tsMs: tsBase + seq}
			rec := &client.Record{Topic: topic, Key: r.key, Value: r.value, Timestamp: time.UnixMilli(r.tsMs),
				Headers: []client.Header{{Key: []byte("trace"), Value: r.hdrValue}}}
			if err := prod.Send(ctx, rec, func(_ int32, off int64, err error) {
				if err == nil {
					sent[topic][off] = r // callbacks of one partition run in order, one at a time
				}
				errs <- err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys := make([]string, compressKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%03d", i)
	}

	// Produce. Nothing else in this process decompresses meanwhile: the
	// producer only compresses and the cleaner is held off.
	before := schema.BodiesDecompressed()
	for v := range compressRounds {
		// A round skips a fifth of the keys, a different fifth each
		// time, so that the latest records of some keys share frames
		// with superseded ones and the cleaner must rewrite frames.
		var round []string
		for i, k := range keys {
			if (i*7+v)%5 != 0 {
				round = append(round, k)
			}
		}
		send(topic, round, v)
	}
	settle()
	producedDecompressed := schema.BodiesDecompressed() - before
	before = schema.BodiesDecompressed()
	send(plainTopic, keys, 0)
	settle()
	if d := schema.BodiesDecompressed() - before; d != 0 {
		t.Fatalf("producing lz4 batches to a delete topic decompressed %d bodies", d)
	}
	end := seq - compressKeys // the plain topic's records came last
	if len(sent[topic]) != int(end) {
		t.Fatalf("%d records acknowledged, %d sent", len(sent[topic]), end)
	}
	if rs := prod.RetryStats(); rs.Batches != 0 {
		t.Fatalf("the producer resent %d batches on loopback: offsets would not be the ones checked", rs.Batches)
	}

	// Fetch raw frames: all lz4, none decompressed by the broker.
	framesBefore, fetchDecompressed := fetchFrames(t, newTestClient(t, b.Addr().String()), topic, 0, end)
	if fetchDecompressed != 0 {
		t.Fatalf("fetching %d lz4 frames decompressed %d bodies on the broker", len(framesBefore), fetchDecompressed)
	}
	if _, d := fetchFrames(t, newTestClient(t, b.Addr().String()), plainTopic, 0, compressKeys); d != 0 {
		t.Fatalf("fetching the delete topic decompressed %d bodies", d)
	}
	byBase := map[int64][]byte{}
	for _, f := range framesBefore {
		h, _ := schema.ParseFrameHeader(f)
		if h.Compression() != schema.CompressionLZ4 {
			t.Fatalf("frame at %d stored with codec %d", h.BaseOffset, h.Compression())
		}
		byBase[h.BaseOffset] = f
	}
	// The compacted topic's key check reads each frame's AttrKeyed, not
	// its body.
	if producedDecompressed != 0 {
		t.Fatalf("producing %d lz4 frames to a compacted topic decompressed %d bodies", len(framesBefore), producedDecompressed)
	}
	for _, f := range framesBefore {
		if h, _ := schema.ParseFrameHeader(f); h.Attributes&schema.AttrKeyed == 0 {
			t.Fatalf("frame at %d of keyed records without AttrKeyed", h.BaseOffset)
		}
	}
	t.Logf("%d records in %d lz4 frames, %d bytes on the wire", end, len(framesBefore), totalLen(framesBefore))

	// The consumer reads every record exactly as it was sent.
	cons := client.NewConsumer(cl, client.ConsumerConfig{Reset: client.ResetEarliest})
	defer cons.Close()
	if err := cons.Assign(topic, 0); err != nil {
		t.Fatal(err)
	}
	for next := int64(0); next < end; {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll at %d: %v", next, err)
		}
		for _, r := range recs {
			if r.Offset != next {
				t.Fatalf("consumer got offset %d, want %d", r.Offset, next)
			}
			checkSent(t, sent[topic][r.Offset], r.Offset, r.Key, r.Value, r.Timestamp.UnixMilli(), len(r.Headers),
				func(int) ([]byte, []byte) { return r.Headers[0].Key, r.Headers[0].Value })
			next++
		}
	}

	// Let the cleaner go, and feed fresh keys until the last round is
	// cleaned: one record per key left below the filler.
	if err := admin.AlterConfigs(ctx, false, client.ConfigChange{Topic: topic,
		Set: map[string]string{"min.compaction.lag.ms": "0"}}); err != nil {
		t.Fatal(err)
	}
	latest := map[string]int64{}
	for off := int64(0); off < end; off++ {
		latest[string(sent[topic][off].key)] = off
	}
	raw := newTestClient(t, b.Addr().String())
	filler := 0
	deadline := time.Now().Add(2 * retentionWait)
	for {
		fill := make([]string, compressFillerPerPoll)
		for i := range fill {
			fill[i] = fmt.Sprintf("filler-%06d", filler)
			filler++
		}
		send(topic, fill, 0)
		settle()
		top := end + int64(filler)
		frames, _ := fetchFrames(t, raw, topic, 0, top)
		if done := checkCleaned(t, frames, byBase, sent[topic], latest, end, top); done {
			t.Logf("cleaned: %d frames served, %d bytes, after %d filler records", len(frames), totalLen(frames), filler)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not cleaned after %v", 2*retentionWait)
		}
		time.Sleep(retentionPoll)
	}
}

func totalLen(frames [][]byte) (n int) {
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// checkSent fails unless a record read at offset is the one sent there.
func checkSent(t *testing.T, want sentRecord, offset int64, key, value []byte, tsMs int64, headers int, header func(int) ([]byte, []byte)) {
	t.Helper()
	if want.key == nil {
		t.Fatalf("record at %d was never acknowledged", offset)
	}
	if !bytes.Equal(key, want.key) || !bytes.Equal(value, want.value) || tsMs != want.tsMs || headers != 1 {
		t.Fatalf("record at %d: key %q value %q ts %d, %d headers; sent key %q value %q ts %d",
			offset, key, value, tsMs, headers, want.key, want.value, want.tsMs)
	}
	if hk, hv := header(0); string(hk) != "trace" || !bytes.Equal(hv, want.hdrValue) {
		t.Fatalf("record at %d: header %q=%q, sent trace=%q", offset, hk, hv, want.hdrValue)
	}
}

// checkCleaned checks the frames served after the cleaner was let go
// (the rules in TestCompressedTopicRoundTrip's comment) and reports whether the log below end holds exactly the
// latest record of each key.
func checkCleaned(t *testing.T, frames [][]byte, byBase map[int64][]byte, sent map[int64]sentRecord,
	latest map[string]int64, end, top int64) bool {
	t.Helper()
	var br schema.BatchReader
	var v schema.RecordView
	below := map[string][]int64{}
	rewritten := 0 // frames of the first rounds the cleaner re-encoded
	for _, f := range frames {
		h, _ := schema.ParseFrameHeader(f)
		if h.Compression() != schema.CompressionLZ4 {
			t.Fatalf("frame at %d served with codec %d after cleaning", h.BaseOffset, h.Compression())
		}
		if old, ok := byBase[h.BaseOffset]; ok && !bytes.Equal(old, f) {
			rewritten++
			oh, _ := schema.ParseFrameHeader(old)
			oh.Length, oh.CRC = h.Length, h.CRC
			if oh != h {
				t.Fatalf("cleaned frame at %d: header %+v, was %+v", h.BaseOffset, h, oh)
			}
		}
		if err := br.Reset(f); err != nil {
			t.Fatalf("frame at %d: %v", h.BaseOffset, err)
		}
		for br.Next(&v) {
			if v.Offset >= top {
				t.Fatalf("record at %d beyond the %d produced", v.Offset, top)
			}
			if v.Offset < end {
				checkSent(t, sent[v.Offset], v.Offset, v.Key, v.Value, v.TimestampMs, v.HeadersLen(),
					v.Header)
				below[string(v.Key)] = append(below[string(v.Key)], v.Offset)
			}
		}
	}
	if len(below) != len(latest) {
		t.Fatalf("%d keys served below %d, %d produced: a key lost its latest record", len(below), end, len(latest))
	}
	for k, offs := range below {
		if offs[len(offs)-1] != latest[k] {
			t.Fatalf("key %s: last served at %d, its latest record is at %d", k, offs[len(offs)-1], latest[k])
		}
		if len(offs) != 1 {
			return false
		}
	}
	// Each key's versions share frames with other keys' (a frame holds a
	// few rounds), so a cleaned log holds frames the cleaner rewrote:
	// the lz4 check above is on frames it wrote, not only ones it kept.
	if rewritten == 0 {
		t.Fatal("cleaned, yet no frame of the first rounds was rewritten")
	}
	t.Logf("%d frames rewritten by the cleaner, all lz4", rewritten)
	return true
}
