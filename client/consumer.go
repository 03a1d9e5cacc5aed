package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-db/strata/schema"
)

// ResetPolicy says where a consumer starts in a partition it has no
// position for, or whose position fell outside the log
// (OFFSET_OUT_OF_RANGE).
type ResetPolicy int8

// Reset policies. The zero value is ResetLatest, as in Kafka clients.
const (
	// ResetLatest starts at the log end: only records written from now on.
	ResetLatest ResetPolicy = iota
	// ResetEarliest starts at the log start: everything still kept.
	ResetEarliest
	// ResetNone makes Poll fail instead.
	ResetNone
)

// Defaults of ConsumerConfig.
const (
	maxWaitMsDefault         = 500
	minBytesDefault          = 1
	fetchMaxBytesDefault     = 16 << 20
	partitionMaxBytesDefault = 1 << 20
	// fetchMaxBytesLimit keeps the request's int32 max_bytes meaningful
	// and bounds what one fetch answer may make the client allocate.
	fetchMaxBytesLimit = 256 << 20
)

// ErrNoPosition is Poll's error under ResetNone for a partition without
// a valid position.
var ErrNoPosition = errors.New("strata client: no position and reset policy none")

// ConsumerConfig tunes a Consumer. The zero value of each field takes its
// default.
type ConsumerConfig struct {
	Reset ResetPolicy
	// MaxWaitMs is how long the broker holds a fetch waiting for MinBytes.
	MaxWaitMs int
	// MinBytes is how many bytes of records a fetch waits for.
	MinBytes int
	// MaxBytes bounds the records of one fetch answer (whole frames; one
	// frame larger than it still comes whole, so a consumer progresses).
	MaxBytes int
	// PartitionMaxBytes bounds one partition's share of a fetch answer.
	PartitionMaxBytes int
	// Assignor says which partitions to read; nil: Assign sets them.
	Assignor Assignor
	// ReuseFetchBuffers reads fetch answers into buffers the consumer
	// reuses instead of one freshly allocated (and zeroed) buffer per
	// answer. The Key, Value and header slices of the records a Poll
	// returns are then valid only until the next Poll or Close.
	ReuseFetchBuffers bool
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.MaxWaitMs <= 0 {
		c.MaxWaitMs = maxWaitMsDefault
	}
	if c.MinBytes <= 0 {
		c.MinBytes = minBytesDefault
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = fetchMaxBytesDefault
	}
	c.MaxBytes = min(c.MaxBytes, fetchMaxBytesLimit)
	if c.PartitionMaxBytes <= 0 {
		c.PartitionMaxBytes = partitionMaxBytesDefault
	}
	c.PartitionMaxBytes = min(c.PartitionMaxBytes, c.MaxBytes)
	return c
}

// Consumer reads assigned partitions from their leaders. It keeps fetches
// in flight ahead of the caller: each fetch answer's envelope says where
// every partition's next fetch starts, so the next fetch goes out as soon
// as that envelope is read, while the broker is still sending the frames
// of the first (at most fetchesPerBrokerMax per broker, and one not yet
// answered per partition). It is not safe for
// concurrent use, except that nothing stops another goroutine from
// changing a StaticAssignor it reads.
type Consumer struct {
	cl       *Client
	cfg      ConsumerConfig
	assignor Assignor
	static   *StaticAssignor // set when Assign drives the assignment

	gen    uint64
	synced bool
	parts  map[TopicPartition]*consPart
	order  []*consPart              // parts in a stable order for fetch requests
	seeks  map[TopicPartition]int64 // Seek before the partition was adopted

	inflight map[string]int // fetches in flight per leader address
	reader   schema.BatchReader
	buffers  fetchBuffers
	out      []Record
	// decode holds the regions of the answer just processed: positions
	// move past them first (from the frame headers alone) so the next
	// fetch goes out before their records are decoded.
	decode []pendingRegion

	resMu   sync.Mutex
	results []*fetchResult
	notify  chan struct{}
	closed  bool

	// wake, when set (a GroupConsumer's), ends a Poll waiting for records
	// with errPollWoken, so that the group's partition changes are acted
	// on at once rather than after the next records.
	wake <-chan struct{}
}

// consPart is one assigned partition's position.
type consPart struct {
	tp  TopicPartition
	pos int64 // next offset to return; -1: unknown
	// fetchPos is where the partition's next fetch starts: pos, or past it
	// by the answers whose envelopes were read and whose frames were not.
	fetchPos int64
	epoch    uint64 // bumped by each seek, to drop answers to older fetches
	hw       int64
	retryAt  time.Time
	attempts int
	// unanswered is the fetch in flight whose envelope has not been read
	// (nil: none); the partition's next fetch waits for it.
	unanswered *fetchReq
}

// moveTo sets the partition's position and drops the answers of fetches
// in flight for it.
func (cp *consPart) moveTo(offset int64) {
	cp.pos, cp.fetchPos = offset, offset
	cp.epoch++
}

// NewConsumer returns a consumer reading through cl; cl stays open when
// the consumer is closed.
func NewConsumer(cl *Client, cfg ConsumerConfig) *Consumer {
	cfg = cfg.withDefaults()
	c := &Consumer{cl: cl, cfg: cfg, assignor: cfg.Assignor, parts: map[TopicPartition]*consPart{},
		seeks: map[TopicPartition]int64{}, inflight: map[string]int{}, notify: make(chan struct{}, 1)}
	if c.assignor == nil {
		c.static = &StaticAssignor{}
		c.assignor = c.static
	}
	return c
}

// ErrAssignorSet is Assign's error when the configuration names an
// Assignor: the assignment is then not the application's to set.
var ErrAssignorSet = errors.New("strata client: partitions come from the configured Assignor")

// Assign sets which partitions of topic to read (none: all of them),
// replacing any earlier assignment of that topic. New partitions start
// at the reset policy's end unless Seek places them.
func (c *Consumer) Assign(topic string, partitions ...int32) error {
	if c.static == nil {
		return ErrAssignorSet
	}
	c.static.Set(topic, partitions...)
	return nil
}

// Seek sets the next offset to read from a partition. It applies to
// partitions assigned now or later.
func (c *Consumer) Seek(topic string, partition int32, offset int64) {
	tp := TopicPartition{Topic: topic, Partition: partition}
	if cp := c.parts[tp]; cp != nil {
		cp.moveTo(offset)
		cp.retryAt = time.Time{}
		return
	}
	c.seeks[tp] = offset
}

// SeekToEarliest moves the given partitions of topic (none: every assigned
// partition of it) to their log start.
func (c *Consumer) SeekToEarliest(ctx context.Context, topic string, partitions ...int32) error {
	return c.seekTo(ctx, topic, partitions, OffsetEarliest)
}

// SeekToLatest moves them to their log end.
func (c *Consumer) SeekToLatest(ctx context.Context, topic string, partitions ...int32) error {
	return c.seekTo(ctx, topic, partitions, OffsetLatest)
}

// SeekToTime moves them to the first record at or after t (the log end
// where there is none).
func (c *Consumer) SeekToTime(ctx context.Context, topic string, t time.Time, partitions ...int32) error {
	return c.seekTo(ctx, topic, partitions, t.UnixMilli())
}

func (c *Consumer) seekTo(ctx context.Context, topic string, partitions []int32, ts int64) error {
	if len(partitions) == 0 {
		if err := c.syncAssignment(ctx); err != nil {
			return err
		}
		for _, cp := range c.order {
			if cp.tp.Topic == topic {
				partitions = append(partitions, cp.tp.Partition)
			}
		}
		if len(partitions) == 0 {
			return fmt.Errorf("strata client: no partition of %q is assigned", topic)
		}
	}
	offs, err := c.cl.ListOffsets(ctx, topic, partitions, ts)
	if err != nil {
		return err
	}
	for p, off := range offs {
		c.Seek(topic, p, off)
	}
	return nil
}

// Position is the next offset Poll returns from a partition; ok is false
// when it has none yet.
func (c *Consumer) Position(topic string, partition int32) (offset int64, ok bool) {
	tp := TopicPartition{Topic: topic, Partition: partition}
	if off, ok := c.seeks[tp]; ok {
		return off, true
	}
	cp := c.parts[tp]
	if cp == nil || cp.pos < 0 {
		return -1, false
	}
	return cp.pos, true
}

// Assigned lists the partitions the consumer has adopted, resolving the
// assignment (AllPartitions needs metadata) if it changed.
func (c *Consumer) Assigned(ctx context.Context) ([]TopicPartition, error) {
	if err := c.syncAssignment(ctx); err != nil {
		return nil, err
	}
	out := make([]TopicPartition, len(c.order))
	for i, cp := range c.order {
		out[i] = cp.tp
	}
	return out, nil
}

// Close stops the consumer; fetches in flight are dropped when they land.
func (c *Consumer) Close() error {
	c.resMu.Lock()
	c.closed = true
	c.results = nil
	c.resMu.Unlock()
	c.buffers.close()
	return nil
}

// syncAssignment adopts the assignor's current set if it changed.
func (c *Consumer) syncAssignment(ctx context.Context) error {
	gen, want := c.assignor.Assignment()
	if c.synced && gen == c.gen {
		return nil
	}
	var tps []TopicPartition
	for _, tp := range want {
		if tp.Partition != AllPartitions {
			tps = append(tps, tp)
			continue
		}
		ps, err := c.cl.Partitions(ctx, tp.Topic)
		if err != nil {
			return err
		}
		for _, p := range ps {
			tps = append(tps, TopicPartition{Topic: tp.Topic, Partition: p})
		}
	}
	next := make(map[TopicPartition]*consPart, len(tps))
	order := make([]*consPart, 0, len(tps))
	for _, tp := range tps {
		if next[tp] != nil {
			continue
		}
		cp := c.parts[tp]
		if cp == nil {
			cp = &consPart{tp: tp, pos: -1, fetchPos: -1, hw: -1}
		}
		if off, ok := c.seeks[tp]; ok {
			cp.moveTo(off)
			delete(c.seeks, tp)
		}
		next[tp] = cp
		order = append(order, cp)
	}
	for tp, cp := range c.parts {
		if next[tp] == nil {
			cp.epoch++ // answers in flight for it are dropped
		}
	}
	c.parts, c.order, c.gen, c.synced = next, order, gen, true
	return nil
}

// resolve gives unpositioned partitions a position by the reset policy.
func (c *Consumer) resolve(ctx context.Context) error {
	var byTopic map[string][]int32
	now := time.Now()
	for _, cp := range c.order {
		if cp.pos >= 0 || now.Before(cp.retryAt) {
			continue
		}
		if c.cfg.Reset == ResetNone {
			return fmt.Errorf("%w: %s/%d", ErrNoPosition, cp.tp.Topic, cp.tp.Partition)
		}
		if byTopic == nil {
			byTopic = map[string][]int32{}
		}
		byTopic[cp.tp.Topic] = append(byTopic[cp.tp.Topic], cp.tp.Partition)
	}
	ts := OffsetLatest
	if c.cfg.Reset == ResetEarliest {
		ts = OffsetEarliest
	}
	for topic, ps := range byTopic {
		// One try: the partitions it leaves wait for their backoff, so
		// that Poll goes on reading the others meanwhile.
		offs := make(map[int32]int64, len(ps))
		again, err := c.cl.listOffsetsOnce(ctx, topic, ps, ts, offs)
		if err != nil && !retriable(err) {
			return err
		}
		for _, p := range again {
			c.backOff(c.parts[TopicPartition{Topic: topic, Partition: p}])
		}
		for p, off := range offs {
			if cp := c.parts[TopicPartition{Topic: topic, Partition: p}]; cp != nil && cp.pos < 0 {
				cp.moveTo(off)
				cp.attempts = 0
			}
		}
	}
	return nil
}

// backOff delays a partition's next fetch or lookup.
func (c *Consumer) backOff(cp *consPart) {
	cp.attempts++
	cp.retryAt = time.Now().Add(c.cl.cfg.backoff(cp.attempts))
}
