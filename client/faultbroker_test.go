package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// faultBroker stands in for a broker where a test must choose answers the
// real one cannot be made to give on cue (a retriable error for one
// produce request and success for the next one in flight). It speaks just
// enough of the protocol over real loopback TCP: ApiVersions, Metadata
// naming itself leader of one single-partition topic at leaderEpoch,
// Produce (each request handed to the test, which picks the code; with
// NONE the records join an in-memory log), and Fetch (its
// current_leader_epoch is recorded and answered LEADER_NOT_AVAILABLE).
// Answers go out in request order, as a broker's do.
type faultBroker struct {
	ln          net.Listener
	topic       string
	leaderEpoch int32
	produces    chan *faultProduce

	mu sync.Mutex
	// metadataRefusals is how many Metadata requests, from the first, get
	// LEADER_NOT_AVAILABLE for the whole answer, as a broker that has not
	// joined its cluster yet answers; metadataCalls counts them all.
	metadataRefusals int
	metadataCalls    int
	log              []string // values, by offset
	fetchEpochs      []int32
	produceCount     int
	// leader, when set, is the address the metadata names leader (as
	// broker 1) instead of this one.
	leader string
}

// faultProduce is one produce request waiting for the test's answer.
type faultProduce struct {
	values []string
	answer chan fb.ErrorCode
}

// faultQueueMax bounds the requests a faultBroker connection holds
// unanswered, and the produce requests waiting for the test.
const faultQueueMax = 64

func startFaultBroker(t *testing.T, topic string, leaderEpoch int32) *faultBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &faultBroker{ln: ln, topic: topic, leaderEpoch: leaderEpoch, produces: make(chan *faultProduce, faultQueueMax)}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
	})
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				f.serve(t, nc)
			}()
			t.Cleanup(func() { nc.Close() })
		}
	}()
	return f
}

func (f *faultBroker) addr() string { return f.ln.Addr().String() }

// serve reads one connection's requests and queues their answers in order.
func (f *faultBroker) serve(t *testing.T, nc net.Conn) {
	answers := make(chan func(*schema.Encoder) []byte, faultQueueMax)
	written := make(chan struct{})
	go func() {
		defer close(written)
		enc := schema.NewEncoder()
		for build := range answers {
			if _, err := nc.Write(build(enc)); err != nil {
				return
			}
		}
	}()
	defer func() {
		close(answers)
		<-written
		nc.Close()
	}()
	var prefix [schema.LengthPrefixBytes]byte
	for {
		if _, err := io.ReadFull(nc, prefix[:]); err != nil {
			return
		}
		n, err := schema.PeekMessageLength(prefix[:])
		if err != nil {
			t.Errorf("fault broker: %v", err)
			return
		}
		msg := make([]byte, n)
		copy(msg, prefix[:])
		if _, err := io.ReadFull(nc, msg[len(prefix):]); err != nil {
			return
		}
		var env schema.Envelope
		if err := env.DecodeRequest(msg); err != nil {
			t.Errorf("fault broker: %v", err)
			return
		}
		h := schema.EnvelopeHeader{CorrelationID: env.CorrelationId()}
		switch env.ApiKey() {
		case fb.ApiKeyApiVersions:
			answers <- func(enc *schema.Encoder) []byte {
				return enc.Encode(&h, &fb.MessageT{Type: fb.MessageApiVersionsResponse, Value: &fb.ApiVersionsResponseT{}})
			}
		case fb.ApiKeyMetadata:
			f.mu.Lock()
			f.metadataCalls++
			refuse := f.metadataCalls <= f.metadataRefusals
			f.mu.Unlock()
			if refuse {
				answers <- func(enc *schema.Encoder) []byte {
					eh := h
					eh.ApiKey, eh.ErrorCode = fb.ApiKeyMetadata, fb.ErrorCodeLeaderNotAvailable
					return enc.Encode(&eh, nil)
				}
				continue
			}
			answers <- func(enc *schema.Encoder) []byte { return enc.Encode(&h, f.metadata()) }
		case fb.ApiKeyProduce:
			r, _ := env.ProduceRequest()
			p := &faultProduce{values: produceValues(t, r.UnPack()), answer: make(chan fb.ErrorCode, 1)}
			f.produces <- p
			answers <- func(enc *schema.Encoder) []byte { return enc.Encode(&h, f.settle(p, <-p.answer)) }
		case fb.ApiKeyFetch:
			r, _ := env.FetchRequest()
			f.mu.Lock()
			for _, tp := range r.UnPack().Topics {
				for _, pp := range tp.Partitions {
					f.fetchEpochs = append(f.fetchEpochs, pp.CurrentLeaderEpoch)
				}
			}
			f.mu.Unlock()
			answers <- func(enc *schema.Encoder) []byte {
				eh := h
				eh.ApiKey, eh.ErrorCode = fb.ApiKeyFetch, fb.ErrorCodeLeaderNotAvailable
				return enc.Encode(&eh, nil)
			}
		default:
			t.Errorf("fault broker: unexpected api key %v", env.ApiKey())
			return
		}
	}
}

func (f *faultBroker) metadata() *fb.MessageT {
	broker := func(id int32, addr string) *fb.BrokerT {
		host, port, _ := net.SplitHostPort(addr)
		portNum, _ := strconv.Atoi(port)
		return &fb.BrokerT{NodeId: id, Host: host, Port: uint16(portNum)}
	}
	brokers := []*fb.BrokerT{broker(0, f.addr())}
	leader, epoch := int32(0), f.leaderEpoch
	f.mu.Lock()
	if f.leader != "" {
		brokers = append(brokers, broker(1, f.leader))
		leader, epoch = 1, f.leaderEpoch+1
	}
	f.mu.Unlock()
	return &fb.MessageT{Type: fb.MessageMetadataResponse, Value: &fb.MetadataResponseT{
		Brokers: brokers,
		Topics: []*fb.TopicMetadataT{{Name: f.topic, Partitions: []*fb.PartitionMetadataT{
			{Partition: 0, LeaderId: leader, LeaderEpoch: epoch, Replicas: []int32{0, 1}, Isr: []int32{leader}}}}},
	}}
}

// settle appends a produce's records when code is NONE and builds its
// answer.
func (f *faultBroker) settle(p *faultProduce, code fb.ErrorCode) *fb.MessageT {
	base := int64(-1)
	f.mu.Lock()
	f.produceCount++
	if code == fb.ErrorCodeNone {
		base = int64(len(f.log))
		f.log = append(f.log, p.values...)
	}
	f.mu.Unlock()
	return &fb.MessageT{Type: fb.MessageProduceResponse, Value: &fb.ProduceResponseT{Topics: []*fb.ProduceTopicResponseT{{
		Name: f.topic, Partitions: []*fb.ProducePartitionResponseT{{Partition: 0, ErrorCode: code, BaseOffset: base}}}}}}
}

// produceValues are the record values of a produce request's frames.
func produceValues(t *testing.T, r *fb.ProduceRequestT) []string {
	var values []string
	for _, tp := range r.Topics {
		for _, pp := range tp.Partitions {
			rest := bytes.Clone(pp.Frames)
			for len(rest) > 0 {
				frame, next, err := schema.NextFrame(rest)
				if err != nil {
					t.Errorf("fault broker: %v", err)
					return values
				}
				rest = next
				var br schema.BatchReader
				if err := br.Reset(frame); err != nil {
					t.Errorf("fault broker: %v", err)
					return values
				}
				var v schema.RecordView
				for br.Next(&v) {
					values = append(values, string(v.Value))
				}
			}
		}
	}
	return values
}

// TestRetryKeepsPartitionOrder has two produce requests of one partition
// in flight; the first is answered NOT_ENOUGH_REPLICAS and the second is
// written. The second batch is sent again after the first, so the offsets
// the callbacks report (and the order they run in) follow Send order, and
// the producer counts the second batch's first copy as superseded.
func TestRetryKeepsPartitionOrder(t *testing.T) {
	const topic = "ordered"
	f := startFaultBroker(t, topic, 3)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := Dial(ctx, Config{Brokers: []string{f.addr()}, RetryBackoffMs: 5, RetryBackoffMaxMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := NewProducer(cl, ProducerConfig{LingerMs: -1})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	offsets := map[string]int64{}
	cb := func(v string) Callback {
		return func(_ int32, off int64, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("record %s: %v", v, err)
			}
			order = append(order, v)
			offsets[v] = off
		}
	}
	first, second := "first", "second"
	if err := p.Send(ctx, &Record{Topic: topic, Value: []byte(first)}, cb(first)); err != nil {
		t.Fatal(err)
	}
	req1 := <-f.produces
	if err := p.Send(ctx, &Record{Topic: topic, Value: []byte(second)}, cb(second)); err != nil {
		t.Fatal(err)
	}
	req2 := <-f.produces
	if len(req1.values) != 1 || req1.values[0] != first || len(req2.values) != 1 || req2.values[0] != second {
		t.Fatalf("requests in flight %v and %v, want [first] and [second]", req1.values, req2.values)
	}
	req1.answer <- fb.ErrorCodeNotEnoughReplicas
	req2.answer <- fb.ErrorCodeNone
	// Whatever comes next (the two batches again, in one request or two)
	// is written.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case r := <-f.produces:
				r.answer <- fb.ErrorCodeNone
			case <-stop:
				return
			}
		}
	}()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	log := append([]string(nil), f.log...)
	f.mu.Unlock()
	want := []string{second, first, second}
	if !slices.Equal(log, want) {
		t.Fatalf("log %v, want %v: the second batch written, then both again in order", log, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(order, []string{first, second}) || offsets[first] != 1 || offsets[second] != 2 {
		t.Fatalf("callbacks in order %v with offsets %v, want first at 1 then second at 2", order, offsets)
	}
	if s := p.RetryStats(); s.Superseded != 1 || s.Batches != 2 {
		t.Fatalf("retry stats %+v, want 2 batches resent, 1 superseded", s)
	}
	_ = p.Close(ctx)
}

// TestFetchCarriesLeaderEpoch checks that a fetch names the leader epoch
// the metadata gave, so that a broker can fence a stale reader, and that a
// fetch refused with a retriable error is sent again.
func TestFetchCarriesLeaderEpoch(t *testing.T) {
	const topic, epoch = "fenced", 7
	f := startFaultBroker(t, topic, epoch)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := Dial(ctx, Config{Brokers: []string{f.addr()}, RetryBackoffMs: 5, RetryBackoffMaxMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c := NewConsumer(cl, ConsumerConfig{MaxWaitMs: 10})
	defer c.Close()
	if err := c.Assign(topic, 0); err != nil {
		t.Fatal(err)
	}
	c.Seek(topic, 0, 0)
	pollCtx, pollCancel := context.WithCancel(ctx)
	polled := make(chan error, 1)
	go func() {
		_, err := c.Poll(pollCtx)
		polled <- err
	}()
	waitFor(t, "two fetches", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.fetchEpochs) >= 2
	})
	pollCancel()
	if err := <-polled; !errors.Is(err, context.Canceled) {
		t.Fatalf("poll: %v, want it to wait through LEADER_NOT_AVAILABLE until cancelled", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.fetchEpochs {
		if e != epoch {
			t.Fatalf("fetches carried leader epochs %v, want %d", f.fetchEpochs, epoch)
		}
	}
}

// TestMetadataWaitsForBrokerToJoin looks a topic up on a broker that
// answers LEADER_NOT_AVAILABLE to its first metadata requests, as a broker
// just started does until it has joined the cluster: the lookup retries
// until the answer comes instead of failing on the first refusal.
func TestMetadataWaitsForBrokerToJoin(t *testing.T) {
	const topic, refusals = "joining", 3
	f := startFaultBroker(t, topic, 0)
	f.mu.Lock()
	f.metadataRefusals = refusals
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := Dial(ctx, Config{Brokers: []string{f.addr()}, RetryBackoffMs: 5, RetryBackoffMaxMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	parts, err := cl.Partitions(ctx, topic)
	if err != nil || !slices.Equal(parts, []int32{0}) {
		t.Fatalf("partitions of %s: %v %v, want [0]", topic, parts, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.metadataCalls != refusals+1 {
		t.Fatalf("%d metadata requests, want %d refused and one answered", f.metadataCalls, refusals)
	}
}

// TestLeaderChangeEndsBackoff: a batch refused NOT_LEADER backs off
// (here for an hour, RetryBackoffMs), and the metadata still names the
// same leader; once it names another broker, the batch goes there at once
// rather than at the end of the backoff, and is written.
func TestLeaderChangeEndsBackoff(t *testing.T) {
	const topic = "moving"
	old := startFaultBroker(t, topic, 2)
	next := startFaultBroker(t, topic, 3)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := Dial(ctx, Config{Brokers: []string{old.addr()}, RetryBackoffMs: 3_600_000})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := NewProducer(cl, ProducerConfig{LingerMs: -1, DeliveryTimeoutMs: 2 * 3_600_000})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	if err := p.Send(ctx, &Record{Topic: topic, Value: []byte("v")}, func(_ int32, _ int64, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	(<-old.produces).answer <- fb.ErrorCodeNotLeader
	// The metadata keeps naming the old leader for a while: the batch
	// keeps waiting.
	old.mu.Lock()
	calls := old.metadataCalls
	old.mu.Unlock()
	waitFor(t, "the metadata asked for again while backing off", func() bool {
		old.mu.Lock()
		defer old.mu.Unlock()
		return old.metadataCalls >= calls+3
	})
	old.mu.Lock()
	old.leader = next.addr()
	old.mu.Unlock()
	select {
	case r := <-next.produces:
		r.answer <- fb.ErrorCodeNone
	case r := <-old.produces:
		t.Fatalf("batch %v sent to the old leader again", r.values)
	case <-ctx.Done():
		t.Fatal("the batch was not sent to the new leader")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = p.Close(ctx)
}
