package client

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
	"github.com/strata-db/strata/schema/fb"
)

// TestProducerFollowsLeaderChange produces to a partition replicated on
// three brokers while its leader is stopped gracefully (SIGTERM: the
// broker hands its leaderships over before it exits). The producer meets
// NOT_LEADER or a lost connection, refreshes its metadata, moves to the
// new leader and keeps going: every record is acknowledged without error.
// Replication is not wired into the broker yet, so the new leader's log
// starts empty: what the test checks there is that the records
// acknowledged after the change are in it, at the offsets their callbacks
// gave, in Send order.
func TestProducerFollowsLeaderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	c := brokertest.StartCluster(t, strataBin, 3)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := Dial(ctx, Config{Brokers: c.Addrs(), RetryBackoffMs: 20, RetryBackoffMaxMs: 200,
		ResponseTimeoutMs: responseTimeoutMsTest})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const topic, n = "moving", 3000
	admin := NewAdmin(cl)
	waitFor(t, "the topic created", func() bool {
		err := admin.CreateTopics(ctx, TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3})
		return err == nil || ErrorCode(err) == fb.ErrorCodeTopicAlreadyExists
	})
	p, err := NewProducer(cl, ProducerConfig{BatchBytes: 1 << 10, LingerMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if err := p.Send(ctx, &Record{Topic: topic, Value: []byte(strconv.Itoa(i))}, col.cb(i)); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		send(0, n/2)
	}()
	waitFor(t, "some records acknowledged", func() bool { return col.delivered() >= n/10 })
	old, _, ok := cl.leaderOf(topic, 0)
	if !ok {
		t.Fatal("no leader cached after acknowledgements")
	}
	var leader *brokertest.Broker
	for _, b := range c.Nodes[1:] {
		if b.Addr == old {
			leader = b
		}
	}
	if err := leader.Stop(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	send(n/2, n)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if d, ok := col.got[i]; !ok || d.err != nil || d.offset < 0 {
			t.Fatalf("record %d: delivered %v, %+v", i, ok, d)
		}
	}
	now, _, ok := cl.leaderOf(topic, 0)
	if !ok || now == old {
		t.Fatalf("leader after the stop: %q (known %v), was %q", now, ok, old)
	}
	// The new leader's log: every record sent after the stop is there at
	// the offset its callback gave, and those offsets follow Send order.
	recs := consumeAll(t, ctx, cl, topic)
	at := map[int64]string{}
	for _, r := range recs {
		at[r.Offset] = string(r.Value)
	}
	last := int64(-1)
	for i := n / 2; i < n; i++ {
		d := col.got[i]
		if v := at[d.offset]; v != strconv.Itoa(i) {
			t.Fatalf("record %d: the new leader has %q at offset %d", i, v, d.offset)
		}
		if d.offset <= last {
			t.Fatalf("record %d acknowledged at %d, not after the record before it (%d)", i, d.offset, last)
		}
		last = d.offset
	}
}
