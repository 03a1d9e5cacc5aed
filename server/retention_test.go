package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

const (
	// retentionCheckIntervalTest makes the shards check retention on
	// every tick instead of every 5 minutes.
	retentionCheckIntervalTest = 100 * time.Millisecond
	// retentionSegmentBytes is the topics' segment.bytes.
	retentionSegmentBytes = 1 << 20
	// retentionLimitBytes is the size test's retention.bytes.
	retentionLimitBytes = 4 << 20
	// retentionFeedBytes is what the size and time tests produce.
	retentionFeedBytes = 40 << 20
	// retentionValueBytes and retentionRecordsPerFrame make frames of a
	// little over 64 KiB: 15 to a segment.
	retentionValueBytes      = 4 << 10
	retentionRecordsPerFrame = 16
	// retentionWait bounds every wait for the broker to catch up.
	retentionWait = 30 * time.Second
	// retentionPoll is the pause between looks at a condition awaited.
	retentionPoll = 10 * time.Millisecond
)

func startRetentionBroker(t *testing.T, dir string) *Broker {
	t.Helper()
	b, err := StartBroker(BrokerConfig{DataDir: dir, Listen: "127.0.0.1:0", Cores: 2, NodeID: 1,
		Logger:                    slog.New(slog.NewTextHandler(io.Discard, nil)),
		LogRetentionCheckInterval: retentionCheckIntervalTest})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop() })
	return b
}

// topicConfigs turns key=value pairs into topic configs.
func topicConfigs(kv ...string) []*fb.TopicConfigT {
	var out []*fb.TopicConfigT
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		out = append(out, &fb.TopicConfigT{Name: k, Value: v})
	}
	return out
}

// retentionValue is the value of the record at offset: its offset, then a
// byte that depends on it, so a record served from the wrong file or
// place does not match.
func retentionValue(offset int64) []byte {
	v := bytes.Repeat([]byte{byte(offset*7 + 1)}, retentionValueBytes)
	binary.LittleEndian.PutUint64(v, uint64(offset))
	return v
}

// feeder produces frames of retentionValue records to partition 0 of a
// topic, one at a time, and knows the next offset.
type feeder struct {
	t     *testing.T
	c     *testClient
	topic string
	next  int64
}

// feed produces about n bytes of records timestamped tsMs.
func (f *feeder) feed(n int64, tsMs int64) {
	f.t.Helper()
	for sent := int64(0); sent < n; {
		bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
		if err != nil {
			f.t.Fatal(err)
		}
		for i := int64(0); i < retentionRecordsPerFrame; i++ {
			if err := bb.Append(&schema.Record{Value: retentionValue(f.next + i), TimestampMs: tsMs}); err != nil {
				f.t.Fatal(err)
			}
		}
		frame, err := bb.AppendTo(nil)
		if err != nil {
			f.t.Fatal(err)
		}
		env, _ := f.c.call(produceMsg(fb.AcksAll, f.topic, 0, frame))
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != f.next {
			f.t.Fatalf("produce at %d: %v, base %d", f.next, r.ErrorCode, r.BaseOffset)
		}
		f.next += retentionRecordsPerFrame
		sent += int64(len(frame))
	}
}

// decodeRecords decodes the records of the frames in b, checking each
// frame's CRC, without failing the test (consumers run on goroutines).
func decodeRecords(b []byte) ([]schema.RecordView, error) {
	var out []schema.RecordView
	var br schema.BatchReader
	for len(b) > 0 {
		n, err := schema.PeekFrameLength(b, schema.MaxFrameBytes)
		if err != nil || n > len(b) {
			return nil, fmt.Errorf("trailing bytes hold no whole frame: %v", err)
		}
		if _, err := schema.CheckFrame(b[:n]); err != nil {
			return nil, err
		}
		if err := br.Reset(b[:n]); err != nil {
			return nil, err
		}
		var v schema.RecordView
		for br.Next(&v) {
			out = append(out, schema.RecordView{Offset: v.Offset, Value: append([]byte(nil), v.Value...)})
		}
		b = b[n:]
	}
	return out, nil
}

// checkAnswer checks that the records of a fetch answer from offset are
// the ones produced there, every one of them, from offset on.
func checkAnswer(offset int64, trailing []byte) (next int64, err error) {
	recs, err := decodeRecords(trailing)
	if err != nil {
		return 0, err
	}
	next = offset
	for _, r := range recs {
		if r.Offset < offset {
			continue // the frame holding offset starts before it
		}
		if r.Offset != next {
			return 0, fmt.Errorf("record at %d, want %d", r.Offset, next)
		}
		if !bytes.Equal(r.Value, retentionValue(r.Offset)) {
			return 0, fmt.Errorf("record %d: value is not the one produced", r.Offset)
		}
		next++
	}
	return next, nil
}

// partitionFiles lists a partition folder's segment data files and sums
// their sizes (a closed segment's is its data; the active one's its
// allocated steps).
func partitionFiles(t *testing.T, dir string) (logs []string, size int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // retention, running on, deleted it since the listing
		}
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, e.Name())
		size += info.Size()
	}
	return logs, size
}

// logStart asks the broker for the partition's log start (a fetch at -1
// is out of range and names it).
func logStart(t *testing.T, c *testClient, topic string) int64 {
	t.Helper()
	env, _ := c.call(fetchMsg(topic, 0, -1, 0, 0))
	r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
	if r.ErrorCode != fb.ErrorCodeOffsetOutOfRange {
		t.Fatalf("fetch at -1: %v", r.ErrorCode)
	}
	return r.LogStartOffset
}

// awaitRetention polls until the partition's segment data is at most
// limit bytes, and returns the log start then.
func awaitRetention(t *testing.T, c *testClient, dir, topic string, limit int64) int64 {
	t.Helper()
	deadline := time.Now().Add(retentionWait)
	for {
		_, size := partitionFiles(t, partitionDir(dir, topic, 0))
		if size <= limit {
			return logStart(t, c, topic)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d bytes of segments, want at most %d", topic, size, limit)
		}
		time.Sleep(retentionPoll)
	}
}

// checkServedFrom checks that the partition serves offset start (the log
// start) with the records produced there, and refuses offsets below it
// with OFFSET_OUT_OF_RANGE.
func checkServedFrom(t *testing.T, c *testClient, topic string, start int64) {
	t.Helper()
	// The retention check keeps running, so the log start may move on
	// between two fetches: it only ever moves forward.
	for attempt := 0; ; attempt++ {
		env, trailing := c.call(fetchMsg(topic, 0, start, 0, 0))
		r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
		if r.ErrorCode == fb.ErrorCodeOffsetOutOfRange && r.LogStartOffset > start && attempt < retentionServedAttemptsMax {
			start = r.LogStartOffset
			continue
		}
		if r.ErrorCode != fb.ErrorCodeNone || r.LogStartOffset != start {
			t.Fatalf("fetch at the log start %d: %v, log start %d", start, r.ErrorCode, r.LogStartOffset)
		}
		if next, err := checkAnswer(start, trailing); err != nil || next == start {
			t.Fatalf("fetch at the log start %d: %d records, %v", start, next-start, err)
		}
		break
	}
	env, _ := c.call(fetchMsg(topic, 0, start-1, 0, 0))
	r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
	if r.ErrorCode != fb.ErrorCodeOffsetOutOfRange || r.LogStartOffset < start {
		t.Fatalf("fetch below the log start %d: %v, log start %d", start, r.ErrorCode, r.LogStartOffset)
	}
}

// retentionServedAttemptsMax bounds how often checkServedFrom follows a
// log start that moved on under it.
const retentionServedAttemptsMax = 8

// TestRetentionBytesOnBroker feeds 40 MiB to a topic of 1 MiB segments
// with retention.bytes of 4 MiB, while a consumer reads from the oldest
// offset on. After every 4 MiB fed the partition's segment files come down
// to at most 4 MiB and the active segment's allocation (and not below
// 4 MiB less a segment), its blocks on disk to at most 6 MiB, and its log
// start moves on; the log start is served
// with the records produced there and below it is out of range. Every
// answer the consumer got held the records produced at its offsets.
func TestRetentionBytesOnBroker(t *testing.T) {
	dir := t.TempDir()
	b := startRetentionBroker(t, dir)
	addr := b.Addr().String()
	c := newTestClient(t, addr)
	if code := c.createTopic("sized", 1, topicConfigs("segment.bytes="+strconv.Itoa(retentionSegmentBytes),
		"retention.bytes="+strconv.Itoa(retentionLimitBytes))...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	stop := make(chan struct{})
	consumed := make(chan consumerReport, 1)
	go consumeFromOldest(addr, "sized", stop, consumed)

	f := &feeder{t: t, c: c, topic: "sized"}
	var start int64
	const allocatedMax = retentionLimitBytes + 2*retentionSegmentBytes
	for fed := 0; fed < retentionFeedBytes; fed += retentionLimitBytes {
		f.feed(retentionLimitBytes, nowMs())
		// The active segment's file is as long as its allocated step
		// (the whole 1 MiB segment), past the data retention counts.
		moved := awaitRetention(t, c, dir, "sized", retentionLimitBytes+retentionSegmentBytes)
		if moved < start {
			t.Fatalf("log start went back from %d to %d", start, moved)
		}
		start = moved
		logs, size := partitionFiles(t, partitionDir(dir, "sized", 0))
		if size < retentionLimitBytes-retentionSegmentBytes {
			t.Fatalf("%d bytes of segments left (%d files), want at least %d", size, len(logs), retentionLimitBytes-retentionSegmentBytes)
		}
		// segment.bytes is honoured: 4 MiB is held in several segments,
		// none past 1 MiB (ReadDir lists them oldest first).
		if len(logs) < retentionLimitBytes/retentionSegmentBytes {
			t.Fatalf("segments %v: want at least %d of at most %d bytes", logs, retentionLimitBytes/retentionSegmentBytes, retentionSegmentBytes)
		}
		for _, name := range logs {
			info, err := os.Stat(filepath.Join(partitionDir(dir, "sized", 0), name))
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted by a retention check since the listing
			}
			if err != nil || info.Size() > retentionSegmentBytes {
				t.Fatalf("segment %s: %v, larger than segment.bytes %d", name, err, retentionSegmentBytes)
			}
		}
		if n := topicAllocatedBytes(t, dir, "sized", 1); n > allocatedMax {
			t.Fatalf("%d bytes allocated on disk, want at most %d", n, allocatedMax)
		}
	}
	if start == 0 {
		t.Fatal("the log start never moved")
	}
	checkServedFrom(t, c, "sized", start)
	close(stop)
	rep := <-consumed
	if rep.err != nil {
		t.Fatal(rep.err)
	}
	t.Logf("log start %d of %d; the consumer read %d answers, %d times moved to the log start",
		start, f.next, rep.answers, rep.jumps)
	if rep.answers == 0 {
		t.Fatal("the consumer got no answer with records")
	}
}

// TestRetentionMsOnBroker feeds 20 MiB of records stamped an hour ago and
// then 20 MiB stamped now to a topic of 1 MiB segments with retention.ms
// of 10 minutes: the old segments go (all but the one the new records
// start in), the new records stay, and the log start moves to the first
// segment left.
func TestRetentionMsOnBroker(t *testing.T) {
	dir := t.TempDir()
	b := startRetentionBroker(t, dir)
	c := newTestClient(t, b.Addr().String())
	const retentionMs = 10 * 60 * 1000
	if code := c.createTopic("aged", 1, topicConfigs("segment.bytes="+strconv.Itoa(retentionSegmentBytes),
		"retention.ms="+strconv.Itoa(retentionMs))...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	f := &feeder{t: t, c: c, topic: "aged"}
	f.feed(retentionFeedBytes/2, nowMs()-6*retentionMs)
	firstNew := f.next
	f.feed(retentionFeedBytes/2, nowMs())
	// What stays: the new records, and at most the segment they start in
	// of the old ones.
	awaitRetention(t, c, dir, "aged", retentionFeedBytes/2+2*retentionSegmentBytes)
	start := logStart(t, c, "aged")
	if start == 0 || start > firstNew || firstNew-start > retentionSegmentBytes/retentionValueBytes {
		t.Fatalf("log start %d; the new records start at %d", start, firstNew)
	}
	checkServedFrom(t, c, "aged", start)
	// The new records are all there.
	for off := firstNew; off < f.next; {
		env, trailing := c.call(fetchMsg("aged", 0, off, 0, 0))
		if r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("fetch at %d: %v", off, r.ErrorCode)
		}
		next, err := checkAnswer(off, trailing)
		if err != nil || next == off {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		off = next
	}
}

// consumerReport is what a consumer goroutine saw.
type consumerReport struct {
	answers, jumps int
	err            error
}

// consumeFromOldest reads partition 0 of topic from offset 0 on, as fast
// as answers come, moving to the log start when its offset was deleted,
// until stop is closed; it checks every answer's records.
func consumeFromOldest(addr, topic string, stop <-chan struct{}, done chan<- consumerReport) {
	var rep consumerReport
	defer func() { done <- rep }()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		rep.err = err
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testDeadline))
	c := &testClient{conn: conn, enc: schema.NewEncoder()}
	var off int64
	for {
		select {
		case <-stop:
			return
		default:
		}
		m := fetchMsg(topic, 0, off, 100, 1)
		c.corr++
		if _, err := conn.Write(c.enc.Encode(&schema.EnvelopeHeader{CorrelationID: c.corr, ClientID: "test"}, m)); err != nil {
			rep.err = err
			return
		}
		env, trailing, err := c.tryRecv()
		if err != nil {
			rep.err = err
			return
		}
		r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
		switch r.ErrorCode {
		case fb.ErrorCodeNone:
		case fb.ErrorCodeOffsetOutOfRange:
			if r.LogStartOffset <= off {
				rep.err = fmt.Errorf("offset %d out of range with the log start at %d", off, r.LogStartOffset)
				return
			}
			off = r.LogStartOffset
			rep.jumps++
			continue
		default:
			rep.err = fmt.Errorf("fetch at %d: %v", off, r.ErrorCode)
			return
		}
		if len(trailing) == 0 {
			continue
		}
		next, err := checkAnswer(off, trailing)
		if err != nil {
			rep.err = fmt.Errorf("answer at %d: %w", off, err)
			return
		}
		rep.answers++
		off = next
	}
}

// deletedFilesOpen counts this process's descriptors of unlinked files in
// dir: deleted segments whose data files are still open.
func deletedFilesOpen(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // closed since the listing
		}
		if strings.HasPrefix(target, dir+string(filepath.Separator)) && strings.HasSuffix(target, " (deleted)") {
			n++
		}
	}
	return n
}

// TestRetentionCheckIntervalBelowTickRefused: an interval shorter than the
// shard's tick, which runs the check, could not be honoured, so the broker
// refuses to start with it.
func TestRetentionCheckIntervalBelowTickRefused(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, LogRetentionCheckIntervalMin - time.Millisecond} {
		b, err := StartBroker(BrokerConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Cores: 1, NodeID: 1,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LogRetentionCheckInterval: d})
		if err == nil {
			b.Stop()
			t.Fatalf("a broker started with a retention check interval of %v", d)
		}
	}
}
