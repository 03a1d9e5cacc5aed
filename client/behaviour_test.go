package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestAcksNone produces with acks=0: callbacks report offset -1 without
// waiting for an answer, and the records are in the log.
func TestAcksNone(t *testing.T) {
	_, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "fire", 1)
	p, err := NewProducer(cl, ProducerConfig{Acks: AcksNone})
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	const n = 100
	for i := 0; i < n; i++ {
		if err := p.Send(ctx, &Record{Topic: "fire", Value: []byte(fmt.Sprint(i))}, col.cb(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if d := col.got[i]; d.err != nil || d.offset != -1 {
			t.Fatalf("record %d: %+v, want offset -1 and no error", i, d)
		}
	}
	recs := consumeN(t, ctx, cl, "fire", n)
	for i, r := range recs {
		if r.Offset != int64(i) || string(r.Value) != fmt.Sprint(i) {
			t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}
}

// TestSeekToTime writes two groups of records with timestamps an hour
// apart and seeks to the second group's time.
func TestSeekToTime(t *testing.T) {
	_, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "timed", 1)
	p, err := NewProducer(cl, ProducerConfig{LingerMs: -1})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 20; i++ {
		ts := base.Add(time.Duration(i) * time.Minute)
		if i >= 10 {
			ts = ts.Add(time.Hour)
		}
		if err := p.Send(ctx, &Record{Topic: "timed", Value: []byte(fmt.Sprint(i)), Timestamp: ts}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c := NewConsumer(cl, ConsumerConfig{MaxWaitMs: 100})
	defer c.Close()
	if err := c.Assign("timed", 0); err != nil {
		t.Fatal(err)
	}
	at := base.Add(time.Hour + 5*time.Minute) // between records 9 and 10
	if err := c.SeekToTime(ctx, "timed", at); err != nil {
		t.Fatal(err)
	}
	recs, err := c.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || recs[0].Offset != 10 || string(recs[0].Value) != "10" {
		t.Fatalf("after seek to %v got first record %+v", at, recs)
	}
	if !recs[0].Timestamp.Equal(base.Add(10*time.Minute + time.Hour)) {
		t.Fatalf("timestamp %v", recs[0].Timestamp)
	}
	// Seeking explicitly and to the latest end works the same way.
	c.Seek("timed", 0, 3)
	if recs, err = c.Poll(ctx); err != nil || recs[0].Offset != 3 {
		t.Fatalf("after Seek(3): %v %+v", err, recs)
	}
	if err := c.SeekToLatest(ctx, "timed"); err != nil {
		t.Fatal(err)
	}
	if pos, ok := c.Position("timed", 0); !ok || pos != 20 {
		t.Fatalf("latest position %d %v, want 20", pos, ok)
	}
}

// TestOffsetOutOfRangeResets seeks past the log end; the consumer resets
// to the earliest offset by its policy instead of failing.
func TestOffsetOutOfRangeResets(t *testing.T) {
	_, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "oor", 1)
	p, _ := NewProducer(cl, ProducerConfig{})
	for i := 0; i < 5; i++ {
		_ = p.Send(ctx, &Record{Topic: "oor", Value: []byte{byte(i)}}, nil)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c := NewConsumer(cl, ConsumerConfig{Reset: ResetEarliest, MaxWaitMs: 100})
	defer c.Close()
	_ = c.Assign("oor", 0)
	c.Seek("oor", 0, 1000)
	recs, err := c.Poll(ctx)
	if err != nil || len(recs) != 5 || recs[0].Offset != 0 {
		t.Fatalf("got %v %+v", err, recs)
	}
	strict := NewConsumer(cl, ConsumerConfig{Reset: ResetNone, MaxWaitMs: 100})
	_ = strict.Assign("oor", 0)
	if _, err := strict.Poll(ctx); !errors.Is(err, ErrNoPosition) {
		t.Fatalf("reset none: %v", err)
	}
}

// TestRetryAcrossBrokerRestart stops the broker (SIGTERM) while records are
// buffered and in flight, starts it again on the same folder and port, and
// checks every record is acknowledged and in the log.
func TestRetryAcrossBrokerRestart(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "durable", 2)
	p, err := NewProducer(cl, ProducerConfig{BatchBytes: 2 << 10, LingerMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	const n = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	firstHalf := make(chan struct{})
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			if i == n/2 {
				close(firstHalf)
			}
			if err := p.Send(ctx, &Record{Topic: "durable", Key: []byte(fmt.Sprint(i % 10)), Value: []byte(fmt.Sprint(i))}, col.cb(i)); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
	}()
	<-firstHalf
	// Hold reconnections until the restarted broker says it is ready: a
	// broker must not be sent requests before then.
	ready := make(chan struct{})
	cl.mu.Lock()
	cl.dialGate = func(ctx context.Context) error {
		select {
		case <-ready:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cl.mu.Unlock()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b.Restart(t)
	close(ready)
	wg.Wait()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		d, ok := col.got[i]
		if !ok || d.err != nil || d.offset < 0 {
			t.Fatalf("record %d: delivered %v, %+v", i, ok, d)
		}
	}
	// Every record is in the log at the offset its callback gave (a retried
	// batch may also appear twice: at-least-once).
	recs := consumeAll(t, ctx, cl, "durable")
	at := map[[2]int64]string{}
	for _, r := range recs {
		at[[2]int64{int64(r.Partition), r.Offset}] = string(r.Value)
	}
	for i := 0; i < n; i++ {
		d := col.got[i]
		if v := at[[2]int64{int64(d.partition), d.offset}]; v != fmt.Sprint(i) {
			t.Fatalf("record %d: log has %q at %d/%d", i, v, d.partition, d.offset)
		}
	}
}

// consumeAll reads every partition of topic up to its current end.
func consumeAll(t *testing.T, ctx context.Context, cl *Client, topic string) []Record {
	t.Helper()
	parts, err := cl.Partitions(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := cl.ListOffsets(ctx, topic, parts, OffsetLatest)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, e := range ends {
		total += int(e)
	}
	return consumeN(t, ctx, cl, topic, total)
}
