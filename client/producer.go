package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/strata-db/strata/schema"
)

// Acks says how many replicas must have a batch before the broker answers.
type Acks int8

// The acks settings. The zero value is AcksAll, the safe default.
const (
	// AcksAll waits until the in-sync replicas have the batch.
	AcksAll Acks = iota
	// AcksLeader waits until the leader has appended the batch.
	AcksLeader
	// AcksNone sends and does not wait: the broker answers nothing, so
	// callbacks report offset -1 and errors the broker finds are not seen.
	AcksNone
)

// wire is the value of the produce request's acks field.
func (a Acks) wire() int8 {
	switch a {
	case AcksLeader:
		return 1
	case AcksNone:
		return 0
	default:
		return -1
	}
}

// Compression codecs of a producer's batches.
const (
	CompressionNone = schema.CompressionNone
	CompressionLZ4  = schema.CompressionLZ4
)

// Defaults of ProducerConfig.
const (
	batchBytesDefault        = 64 << 10
	lingerMsDefault          = 5
	bufferBytesDefault       = 32 << 20
	deliveryTimeoutMsDefault = 120_000
	requestTimeoutMsDefault  = 30_000
	// requestFramesBytesMax bounds the frames of one produce request, so
	// one request stays far below the envelope limit (128 MiB).
	requestFramesBytesMax = 16 << 20
	// recordOverheadBytes and headerOverheadBytes bound what a record adds
	// to a batch body beyond its bytes (schema's own bound, restated to
	// account for buffer memory before the record is encoded).
	recordOverheadBytes = 96
	headerOverheadBytes = 48
)

// ProducerConfig tunes a Producer. The zero value of each field takes its
// default.
type ProducerConfig struct {
	Acks Acks
	// BatchBytes is the size at which a partition's batch is sealed and
	// sent without waiting for the linger (uncompressed body bytes).
	BatchBytes int
	// LingerMs is how long a batch that is not full waits for more records.
	// Default 5; a negative value sends at once.
	LingerMs int
	// BufferBytes bounds the records held (batching, in flight, awaiting
	// retry). Send waits for room, or fails when its context ends.
	BufferBytes int
	// Compression is CompressionNone or CompressionLZ4. Under lz4 every
	// batch is lz4, also one lz4 cannot shrink (a little larger then), so
	// that a topic whose compression.type is lz4 takes all of them.
	Compression uint16
	// DeliveryTimeoutMs bounds the time from Send to the callback, as
	// Kafka's delivery.timeout.ms: retries stop when it passes and the
	// callback gets ErrDeliveryTimeout wrapping the last error. Default
	// 120 000. A batch in flight when it passes ends when its answer comes
	// or its connection's ResponseTimeoutMs runs out, so keep it above
	// LingerMs plus ResponseTimeoutMs.
	DeliveryTimeoutMs int
	// RequestTimeoutMs is the produce request's timeout_ms: how long the
	// broker may wait for replication before answering.
	RequestTimeoutMs int
	// ManualPartitions sends every record to the partition its Partition
	// field names, instead of choosing one by key (Kafka's record with a
	// partition set). Send refuses a partition the topic does not have.
	ManualPartitions bool
}

func (c ProducerConfig) withDefaults() ProducerConfig {
	if c.BatchBytes <= 0 {
		c.BatchBytes = batchBytesDefault
	}
	c.BatchBytes = min(c.BatchBytes, requestFramesBytesMax)
	if c.LingerMs == 0 {
		c.LingerMs = lingerMsDefault
	}
	c.LingerMs = max(c.LingerMs, 0)
	if c.BufferBytes <= 0 {
		c.BufferBytes = bufferBytesDefault
	}
	if c.DeliveryTimeoutMs <= 0 {
		c.DeliveryTimeoutMs = deliveryTimeoutMsDefault
	}
	if c.RequestTimeoutMs <= 0 {
		c.RequestTimeoutMs = requestTimeoutMsDefault
	}
	return c
}

// Callback receives the outcome of one record: the partition it went to
// and its offset (-1 with AcksNone or on error), or the error that ended
// its delivery. It runs on a producer goroutine and must not block; in
// particular it must not call Send without a context that can end.
type Callback func(partition int32, offset int64, err error)

// ErrRecordTooLarge is returned by Send for a record that could never fit
// the producer's buffer or a batch.
var ErrRecordTooLarge = errors.New("strata client: record larger than the producer's buffer")

// ErrNoSuchPartition is returned by Send, with ManualPartitions, for a
// partition the topic does not have.
var ErrNoSuchPartition = errors.New("strata client: no such partition")

// Producer batches records per partition and sends them to the partition
// leaders in the background. Send is asynchronous and safe for concurrent
// use; each record's callback reports its real offset.
//
// Retries: a batch that meets a retriable error (a lost or refused
// connection, NOT_LEADER, LEADER_NOT_AVAILABLE, NOT_ENOUGH_REPLICAS,
// REQUEST_TIMED_OUT, ...; see the package documentation) goes back to its
// partition's queue and is sent again, after a metadata refresh where the
// error calls for one and an exponential backoff, until it is delivered or
// DeliveryTimeoutMs passes. Other errors end it at once.
//
// Ordering: the batches of one partition are sent in Send order, all of a
// partition's batches in flight are on one connection (which the broker
// answers in order), and when one must be retried, every later batch of
// the partition that was in flight is sent again after it, whatever its
// own answer was. So a batch is never acknowledged, or written for good,
// after a later batch of its partition: in the log, the copies the
// callbacks report are in Send order. A batch that was written before it
// was sent again is in the log twice (at least once; see the package
// documentation); RetryStats counts the resends.
type Producer struct {
	cl  *Client
	cfg ProducerConfig

	mu       sync.Mutex
	parts    map[TopicPartition]*partState
	sticky   map[string]int32
	bufUsed  int
	pending  int // records sent and not yet called back
	flushing int
	closed   bool
	changed  chan struct{} // closed and replaced when bufUsed or pending drop
	deferred []completion  // outcomes whose callbacks have not run yet
	retries  RetryStats
	// leaderPollAt is when the sender may next ask for the metadata of
	// partitions backing off from a leader that failed (sender only).
	leaderPollAt time.Time

	cbMu sync.Mutex // runs callbacks one list at a time, in completion order

	wake chan struct{} // nudges the sender
	quit chan struct{}
	done chan struct{}
}

// pendingRec is one record waiting for its callback.
type pendingRec struct {
	cb    Callback
	bytes int
}

// batch is one sealed frame of a partition and its records' callbacks.
type batch struct {
	ps       *partState
	seq      uint64 // order within the partition
	frame    *bytebufferpool.ByteBuffer
	recs     []pendingRec
	bytes    int
	attempts int // answers and connection failures that sent it back
	sends    int // times it was put in a request
	// alone sends the batch in a partition entry of its own: the broker
	// refused an entry it shared with others, and only its own answer says
	// whether it was the one.
	alone   bool
	created time.Time
	lastErr error
}

// partState is one partition's open batch and its queue of sealed ones.
type partState struct {
	tp        TopicPartition
	builder   *schema.BatchBuilder
	open      []pendingRec
	openBytes int
	openSince time.Time
	queue     []*batch // sealed, not in flight, by seq
	nextSeq   uint64
	retryAt   time.Time
	inflight  int // batches sent and not yet answered
	// inflightConn is the connection the batches in flight went out on:
	// more go out only on it until they are answered, so that answers come
	// back in sequence order (a broker answers one connection in order).
	inflightConn *brokerConn
	// blocked is set when a batch came back for a retry: the batches after
	// it that were in flight come back for a retry too, whatever their
	// answers, and nothing is sent until all are back in the queue, which
	// then goes out again in sequence order.
	blocked bool
	// failedLeader is the address of the leader whose failure (a lost or
	// refused connection, NOT_LEADER and the like) the partition is
	// backing off from; "" when none. The backoff spares that broker;
	// once the metadata names another leader it ends (leaderWatch).
	failedLeader string
}

// RetryStats counts a producer's resends since it was made.
type RetryStats struct {
	// Batches and Records count batches (and their records) sent again
	// after an earlier send of theirs: each resend may write its records
	// once more when the earlier send had been written.
	Batches, Records int64
	// Superseded counts the batches the broker had acknowledged that were
	// sent again because an earlier batch of their partition was retried:
	// each is certainly written twice.
	Superseded int64
}

// RetryStats returns the producer's resend counts.
func (p *Producer) RetryStats() RetryStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retries
}

// completion is the outcome of one batch, waiting for its callbacks.
type completion struct {
	b    *batch
	base int64
	err  error
}

// NewProducer returns a producer sending through cl. Close it to flush
// and stop its goroutine; cl stays open.
func NewProducer(cl *Client, cfg ProducerConfig) (*Producer, error) {
	cfg = cfg.withDefaults()
	if cfg.Compression != CompressionNone && cfg.Compression != CompressionLZ4 {
		return nil, fmt.Errorf("strata client: unknown compression %d", cfg.Compression)
	}
	p := &Producer{cl: cl, cfg: cfg, parts: map[TopicPartition]*partState{}, sticky: map[string]int32{},
		changed: make(chan struct{}), wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p, nil
}

// recordBytes bounds what r takes in a batch body, before compression.
func recordBytes(r *Record) int {
	n := recordOverheadBytes + len(r.Key) + len(r.Value)
	for i := range r.Headers {
		n += headerOverheadBytes + len(r.Headers[i].Key) + len(r.Headers[i].Value)
	}
	return n
}

// Send queues r for its topic and returns once it is in a batch; cb (which
// may be nil) gets the outcome later. The partition is murmur2 of the key
// for a keyed record, the topic's sticky partition for one without a key
// (or r.Partition, under ManualPartitions).
// r's bytes are copied before Send returns. Send waits while the buffer is
// full, and fails with ctx's error if ctx ends first.
func (p *Producer) Send(ctx context.Context, r *Record, cb Callback) error {
	size := recordBytes(r)
	if size > p.cfg.BufferBytes || size > schema.BodyBytesMax {
		return fmt.Errorf("%w: %d bytes", ErrRecordTooLarge, size)
	}
	n, err := p.cl.partitionCount(ctx, r.Topic)
	if err != nil {
		return err
	}
	ts := r.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.closed && p.bufUsed > 0 && p.bufUsed+size > p.cfg.BufferBytes {
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			p.mu.Lock()
			return ctx.Err()
		}
		p.mu.Lock()
	}
	if p.closed {
		return ErrClosed
	}
	var part int32
	if p.cfg.ManualPartitions {
		if r.Partition < 0 || r.Partition >= n {
			return fmt.Errorf("%w: topic %s has no partition %d (it has %d)", ErrNoSuchPartition, r.Topic, r.Partition, n)
		}
		part = r.Partition
	} else if r.Key != nil {
		part = KeyPartition(r.Key, n)
	} else {
		s, ok := p.sticky[r.Topic]
		if !ok || s >= n {
			s = stickyPartition(-1, n)
			p.sticky[r.Topic] = s
		}
		part = s
	}
	ps, err := p.partition(TopicPartition{Topic: r.Topic, Partition: part})
	if err != nil {
		return err
	}
	if len(ps.open) > 0 && ps.openBytes+size > p.cfg.BatchBytes {
		p.seal(ps)
	}
	rec := schema.Record{Key: r.Key, Value: r.Value, TimestampMs: ts.UnixMilli()}
	if len(r.Headers) > 0 {
		rec.Headers = make([]schema.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			rec.Headers[i] = schema.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	if err := ps.builder.Append(&rec); err != nil {
		return err
	}
	if len(ps.open) == 0 {
		ps.openSince = time.Now()
	}
	ps.open = append(ps.open, pendingRec{cb: cb, bytes: size})
	ps.openBytes += size
	p.bufUsed += size
	p.pending++
	if ps.openBytes >= p.cfg.BatchBytes || p.cfg.LingerMs == 0 {
		p.seal(ps)
		p.nudge()
	} else if len(ps.open) == 1 {
		p.nudge() // the sender arms the linger timer
	}
	return nil
}

// partition returns the state of tp, creating it.
func (p *Producer) partition(tp TopicPartition) (*partState, error) {
	if ps := p.parts[tp]; ps != nil {
		return ps, nil
	}
	// KeepCodec: a batch lz4 cannot shrink still goes as lz4, so that a
	// topic whose compression.type is lz4 takes every batch.
	b, err := schema.NewBatchBuilder(schema.BatchOptions{Compression: p.cfg.Compression, KeepCodec: true, ProducerID: -1, BaseSequence: -1})
	if err != nil {
		return nil, err
	}
	ps := &partState{tp: tp, builder: b}
	p.parts[tp] = ps
	return ps, nil
}

// seal closes ps's open batch into a frame and queues it. Unkeyed records
// of the topic move on to another partition if this one was sticky.
func (p *Producer) seal(ps *partState) {
	if len(ps.open) == 0 {
		return
	}
	buf := bytebufferpool.Get()
	frame, err := ps.builder.AppendTo(buf.B[:0])
	buf.B = frame
	b := &batch{ps: ps, seq: ps.nextSeq, frame: buf, recs: ps.open, bytes: ps.openBytes, created: ps.openSince}
	ps.nextSeq++
	ps.open, ps.openBytes = nil, 0
	if s, ok := p.sticky[ps.tp.Topic]; ok && s == ps.tp.Partition {
		if n := p.partitionCount(ps.tp.Topic); n > 0 {
			p.sticky[ps.tp.Topic] = stickyPartition(s, n)
		}
	}
	if err != nil {
		// The builder refused to seal (cannot happen with records in it);
		// fail the records rather than send a broken frame.
		p.complete(b, -1, err)
		return
	}
	ps.queue = append(ps.queue, b)
}

// partitionCount is the cached partition count of a topic, 0 if unknown.
func (p *Producer) partitionCount(topic string) int32 {
	p.cl.mu.Lock()
	defer p.cl.mu.Unlock()
	return int32(len(p.cl.meta.topics[topic].info.Partitions))
}

// nudge wakes the sender without blocking.
func (p *Producer) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// complete ends a batch: every record's callback is queued with its
// offset (base + index, or -1) or err, and its buffer is freed. Called
// with p.mu held; the callbacks run after it is released
// (runCallbacks), and only then do its records stop counting as pending,
// so that Flush returns after their callbacks.
func (p *Producer) complete(b *batch, base int64, err error) {
	p.deferred = append(p.deferred, completion{b: b, base: base, err: err})
	p.bufUsed -= b.bytes
	if b.frame != nil {
		bytebufferpool.Put(b.frame)
		b.frame = nil
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// Flush sends every batch now and waits until every record sent before it
// has its outcome and its callback has returned, or ctx ends. A callback
// must not call Flush or Close (they would wait for it).
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.flushing++
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	for p.pending > 0 {
		ch := p.changed
		p.mu.Unlock()
		p.nudge()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return nil
}

// Close flushes (bounded by ctx), then stops the producer; records still
// unsent when ctx ends get ErrClosed in their callbacks. Send after Close
// fails with ErrClosed.
func (p *Producer) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return err
	}
	p.closed = true
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(p.quit)
	<-p.done
	return err
}
