package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/schema/fb"
)

// conditionPoll is how often a test looks again at a condition it waits
// for; conditionWait bounds the wait.
const (
	conditionPoll = 10 * time.Millisecond
	conditionWait = 30 * time.Second
)

// waitFor polls cond until it holds, failing the test after conditionWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(conditionWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, conditionWait)
		}
		time.Sleep(conditionPoll)
	}
}

// delivered counts the callbacks a collector has seen.
func (c *collector) delivered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// TestProduceAcrossBrokerKill produces keyed records with acks=all while
// the broker is killed (SIGKILL) and started again on the same folder and
// port, with no help from the test: the client meets lost and refused
// connections, then LEADER_NOT_AVAILABLE while the broker rejoins. Every
// record is acknowledged without error; the log holds each at the offset
// its callback gave; per partition the acknowledged offsets follow Send
// order; and the log's extra copies are no more than the records the
// producer sent again.
func TestProduceAcrossBrokerKill(t *testing.T) {
	b, cl, ctx := startBroker(t)
	const topic, parts, n = "crash", 2, 3000
	createTopic(t, ctx, cl, topic, parts)
	p, err := NewProducer(cl, ProducerConfig{BatchBytes: 1 << 10, LingerMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	send := func(from, to int) {
		for i := from; i < to; i++ {
			r := &Record{Topic: topic, Key: []byte(strconv.Itoa(i % 7)), Value: []byte(strconv.Itoa(i))}
			if err := p.Send(ctx, r, col.cb(i)); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
	}
	// The first half is sent while the broker is killed, so some of it is
	// in flight then; the second half is sent while it is down.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		send(0, n/2)
	}()
	waitFor(t, "some records acknowledged", func() bool { return col.delivered() >= n/10 })
	b.Kill()
	wg.Wait()
	send(n/2, n)
	b.Restart(t)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	stats := p.RetryStats()
	t.Logf("resent %d batches (%d records), %d of them acknowledged before", stats.Batches, stats.Records, stats.Superseded)

	last := map[int32]int64{} // per partition, the offset of the record sent before
	for i := range n {
		d, ok := col.got[i]
		if !ok || d.err != nil || d.offset < 0 {
			t.Fatalf("record %d: delivered %v, %+v", i, ok, d)
		}
		if prev, seen := last[d.partition]; seen && d.offset <= prev {
			t.Fatalf("record %d acknowledged at %d/%d, not after the record sent before it (%d)", i, d.partition, d.offset, prev)
		}
		last[d.partition] = d.offset
	}
	recs := consumeAll(t, ctx, cl, topic)
	at := map[[2]int64]string{}
	copies := map[string]int{}
	for _, r := range recs {
		at[[2]int64{int64(r.Partition), r.Offset}] = string(r.Value)
		copies[string(r.Value)]++
	}
	for i := range n {
		d := col.got[i]
		if v := at[[2]int64{int64(d.partition), d.offset}]; v != strconv.Itoa(i) {
			t.Fatalf("record %d: log has %q at %d/%d", i, v, d.partition, d.offset)
		}
	}
	if len(copies) != n {
		t.Fatalf("the log holds %d distinct records, want %d", len(copies), n)
	}
	if extra := int64(len(recs) - n); extra > stats.Records {
		t.Fatalf("the log holds %d extra copies, more than the %d records sent again", extra, stats.Records)
	}
}

// TestConsumeAcrossBrokerKill reads a topic in small fetches while the
// broker is killed and started again: the consumer goes on from its
// position, every offset once, in order, and then reads records written
// after the restart.
func TestConsumeAcrossBrokerKill(t *testing.T) {
	b, cl, ctx := startBroker(t)
	const topic, before, after = "reread", 2000, 500
	createTopic(t, ctx, cl, topic, 1)
	produce := func(from, to int) {
		t.Helper()
		p, err := NewProducer(cl, ProducerConfig{BatchBytes: 512})
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			if err := p.Send(ctx, &Record{Topic: topic, Value: []byte(strconv.Itoa(i))}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, before)
	// Small fetches: the read takes many of them, so the kill lands in
	// the middle.
	c := NewConsumer(cl, ConsumerConfig{Reset: ResetEarliest, MaxWaitMs: 100, MaxBytes: 2 << 10, PartitionMaxBytes: 2 << 10})
	defer c.Close()
	if err := c.Assign(topic, 0); err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	read := func(upTo int64) {
		t.Helper()
		for next < upTo {
			recs, err := c.Poll(ctx)
			if err != nil {
				t.Fatalf("poll at offset %d: %v", next, err)
			}
			for _, r := range recs {
				if r.Offset != next || string(r.Value) != strconv.FormatInt(next, 10) {
					t.Fatalf("read offset %d (%q), want offset %d next", r.Offset, r.Value, next)
				}
				next++
			}
		}
	}
	read(before / 4)
	b.Kill()
	b.Restart(t)
	read(before)
	produce(before, before+after)
	read(before + after)
}

// TestNonRetriableFailsAtOnce sends a record larger than the topic's
// max.message.bytes: the broker's MESSAGE_TOO_LARGE ends its batch at once
// (not at the delivery timeout). Alone in its request it is never sent
// again. A record that fits, sent right after it, is delivered whether the
// sender put the two batches in one partition entry (which the broker
// refuses whole, so each is sent again alone) or in two.
func TestNonRetriableFailsAtOnce(t *testing.T) {
	_, cl, ctx := startBroker(t)
	const topic = "small"
	if err := NewAdmin(cl).CreateTopics(ctx, TopicSpec{Name: topic, Partitions: 1,
		Configs: map[string]string{"max.message.bytes": "1024"}}); err != nil {
		t.Fatal(err)
	}
	checkTooLarge := func(err error) {
		t.Helper()
		var tooLarge *BatchTooLargeError
		if !errors.As(err, &tooLarge) || ErrorCode(err) != fb.ErrorCodeMessageTooLarge || errors.Is(err, ErrDeliveryTimeout) {
			t.Fatalf("oversized record: %v, want MESSAGE_TOO_LARGE at once", err)
		}
	}
	// The delivery timeout is the test's: reaching it fails the test.
	pcfg := ProducerConfig{LingerMs: -1, DeliveryTimeoutMs: int(testTimeout / time.Millisecond)}

	p, err := NewProducer(cl, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	if err := p.Send(ctx, &Record{Topic: topic, Value: make([]byte, 4096)}, col.cb(0)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkTooLarge(col.got[0].err)
	if s := p.RetryStats(); s.Batches != 0 {
		t.Fatalf("resent %d batches, want none", s.Batches)
	}

	// Two batches, sealed one after the other.
	p, err = NewProducer(cl, ProducerConfig{LingerMs: 50, BatchBytes: 2048, DeliveryTimeoutMs: pcfg.DeliveryTimeoutMs})
	if err != nil {
		t.Fatal(err)
	}
	col = newCollector()
	if err := p.Send(ctx, &Record{Topic: topic, Value: make([]byte, 4096)}, col.cb(0)); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, &Record{Topic: topic, Value: []byte("fits")}, col.cb(1)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkTooLarge(col.got[0].err)
	if d := col.got[1]; d.err != nil || d.offset != 0 {
		t.Fatalf("record after it: %+v, want offset 0", d)
	}
	if s := p.RetryStats(); s.Batches > 2 {
		t.Fatalf("resent %d batches, want at most 2 (each once, alone)", s.Batches)
	}
}

// TestDeliveryTimeoutNamesLastCause kills the broker for good: a record
// sent then is retried until its delivery timeout, which ends it with
// ErrDeliveryTimeout wrapping the refused connection it last met.
func TestDeliveryTimeoutNamesLastCause(t *testing.T) {
	b, cl, ctx := startBroker(t)
	const topic = "gone"
	createTopic(t, ctx, cl, topic, 1)
	const deliveryTimeoutMs = 1500
	p, err := NewProducer(cl, ProducerConfig{DeliveryTimeoutMs: deliveryTimeoutMs})
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	if err := p.Send(ctx, &Record{Topic: topic, Value: []byte("first")}, col.cb(0)); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d := col.got[0]; d.err != nil {
		t.Fatalf("first record: %v", d.err)
	}
	b.Kill()
	if err := p.Send(ctx, &Record{Topic: topic, Value: []byte("second")}, col.cb(1)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	d := col.got[1]
	if !errors.Is(d.err, ErrDeliveryTimeout) || !errors.Is(d.err, syscall.ECONNREFUSED) {
		t.Fatalf("record sent to a dead broker: %v, want a delivery timeout naming the refused connection", d.err)
	}
	if want := fmt.Sprintf("(%d ms)", deliveryTimeoutMs); !strings.Contains(d.err.Error(), want) {
		t.Fatalf("error %q does not name the timeout %s", d.err, want)
	}
}

// TestListOffsetsRetriesAcrossRestart asks for offsets while the broker is
// down and coming back: the call waits it out instead of failing on the
// refused connection or on LEADER_NOT_AVAILABLE, and gives the log end.
func TestListOffsetsRetriesAcrossRestart(t *testing.T) {
	b, cl, ctx := startBroker(t)
	const topic = "ends"
	createTopic(t, ctx, cl, topic, 2)
	p, err := NewProducer(cl, ProducerConfig{ManualPartitions: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := p.Send(ctx, &Record{Topic: topic, Partition: int32(i % 2), Value: []byte{byte(i)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b.Kill()
	type answer struct {
		offs map[int32]int64
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		offs, err := cl.ListOffsets(ctx, topic, []int32{0, 1}, OffsetLatest)
		done <- answer{offs, err}
	}()
	b.Restart(t)
	a := <-done
	if a.err != nil || a.offs[0] != 5 || a.offs[1] != 5 {
		t.Fatalf("log ends across a restart: %v %v, want 5 and 5", a.offs, a.err)
	}
	// A partition the topic does not have is not retried.
	if _, err := cl.ListOffsets(ctx, topic, []int32{7}, OffsetLatest); !errors.Is(err, ErrNoSuchPartition) {
		t.Fatalf("partition 7 of 2: %v, want ErrNoSuchPartition", err)
	}
}

// TestMetadataRetryTimeout bounds a metadata lookup against a dead broker
// by RetryTimeoutMs, ending with ErrRetryTimeout and the last cause.
func TestMetadataRetryTimeout(t *testing.T) {
	b, _, _ := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := Dial(ctx, Config{Brokers: []string{b.Addr}, RetryBackoffMs: 20, RetryBackoffMaxMs: 100, RetryTimeoutMs: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	b.Kill()
	_, err = cl.Partitions(ctx, "anything")
	if !errors.Is(err, ErrRetryTimeout) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("metadata from a dead broker: %v, want ErrRetryTimeout naming the refused connection", err)
	}
}
