package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// errNoLeaderKnown: the metadata, refreshed once this round, names no
// leader for the partition.
var errNoLeaderKnown = errors.New("strata client: no leader known")

// errPollWoken ends a Poll that Consumer.wake interrupted.
var errPollWoken = errors.New("strata client: poll woken")

// pollIdleWait bounds a Poll's sleep when no fetch could be sent (all
// partitions backing off); a fetch answer wakes it sooner.
const pollIdleWait = 100 * time.Millisecond

// fetchesPerBrokerMax bounds the fetches a consumer has in flight to one
// broker: one being answered and the next, sent when the first answer's
// envelope said where it starts. More would only queue behind them on the
// connection.
const fetchesPerBrokerMax = 2

// fetchReq is one fetch in flight: the partitions it asked for, with the
// seek epoch and offset each had when it was sent.
type fetchReq struct {
	addr  string
	parts []fetchRef
	// check is the answer's frame check, run by the connection's reader
	// while the trailing bytes arrive; Poll reads it once the answer is
	// queued.
	check frameCheck
}

type fetchRef struct {
	cp     *consPart
	epoch  uint64
	offset int64
	// leaderEpoch is the partition's leader epoch in the metadata the
	// fetch was sent by: the request's current_leader_epoch.
	leaderEpoch int32
	// announced is set when the answer's envelope gave the partition's
	// next fetch offset (next) ahead of its frames.
	announced bool
	next      int64
}

// fetchResult is a fetch's answer, taken apart on the connection's
// reader: per partition entry its code, high watermark and region of the
// trailing bytes. An announcement is the same answer's envelope alone,
// queued before its trailing bytes are read, with each entry's next fetch
// offset and no regions.
type fetchResult struct {
	req      *fetchReq
	err      error
	parts    []partResult
	announce bool
	buf      []byte // the trailing bytes the regions lie in
	// checkedEnd is the offset in the trailing bytes up to which every
	// whole frame's CRC was checked as it arrived.
	checkedEnd int64
}

type partResult struct {
	topic     string
	partition int32
	code      fb.ErrorCode
	hw        int64
	next      int64
	region    []byte
	base      int64 // offset of region in the trailing bytes
}

// Poll returns the next records from the assigned partitions, waiting
// until there are some or ctx ends. The returned slice is reused by the
// next Poll; the byte slices of the records are not, and stay valid.
func (c *Consumer) Poll(ctx context.Context) ([]Record, error) {
	c.out = c.out[:0]
	c.buffers.reclaim()
	for {
		c.resMu.Lock()
		closed := c.closed
		c.resMu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if err := c.syncAssignment(ctx); err != nil {
			return nil, err
		}
		if err := c.resolve(ctx); err != nil {
			return nil, err
		}
		c.fetchAll(ctx)
		if r := c.popResult(); r != nil {
			if r.announce {
				c.processAnnouncement(r)
				continue
			}
			err := c.process(r)
			// The next fetch goes out before these records are decoded,
			// so the broker sends while this side decodes.
			c.fetchAll(ctx)
			if err == nil {
				err = c.decodePending()
			}
			if err != nil || len(c.out) > 0 {
				return c.out, err
			}
			continue
		}
		t := time.NewTimer(pollIdleWait)
		select {
		case <-c.notify:
		case <-t.C:
		case <-c.wake:
			t.Stop()
			return nil, errPollWoken
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// fetchAll sends a fetch to every leader that has positioned partitions
// without an unanswered fetch, up to fetchesPerBrokerMax per leader.
func (c *Consumer) fetchAll(ctx context.Context) {
	now := time.Now()
	var reqs map[string]*fetchReq
	var refreshed map[string]bool
	for _, cp := range c.order {
		if cp.fetchPos < 0 || cp.unanswered != nil || now.Before(cp.retryAt) {
			continue
		}
		addr, epoch, ok := c.cl.leaderOf(cp.tp.Topic, cp.tp.Partition)
		var err error
		switch {
		case ok:
		case refreshed[cp.tp.Topic]:
			// One refresh per topic and round: the partitions it left
			// without a leader wait for their backoff.
			err = errNoLeaderKnown
		default:
			if refreshed == nil {
				refreshed = map[string]bool{}
			}
			refreshed[cp.tp.Topic] = true
			addr, epoch, err = c.cl.leaderFor(ctx, cp.tp.Topic, cp.tp.Partition)
		}
		if err != nil {
			c.backOff(cp)
			continue
		}
		if c.inflight[addr] >= fetchesPerBrokerMax {
			continue
		}
		if reqs == nil {
			reqs = map[string]*fetchReq{}
		}
		r := reqs[addr]
		if r == nil {
			r = &fetchReq{addr: addr}
			reqs[addr] = r
		}
		r.parts = append(r.parts, fetchRef{cp: cp, epoch: cp.epoch, offset: cp.fetchPos, leaderEpoch: epoch})
	}
	for addr, r := range reqs {
		c.send(ctx, addr, r)
	}
}

// send puts one fetch on the wire.
func (c *Consumer) send(ctx context.Context, addr string, r *fetchReq) {
	fail := func(err error) {
		c.cl.invalidateAll(r.parts)
		for _, ref := range r.parts {
			c.backOff(ref.cp)
		}
	}
	conn, err := c.cl.connTo(ctx, addr)
	if err == nil {
		err = conn.acquire(ctx)
	}
	if err != nil {
		fail(err)
		return
	}
	maxBytes := int32(c.cfg.MaxBytes)
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageFetchRequest, c.buildFetch(b, r, maxBytes)
	}
	// A frame larger than the byte limits still comes whole (so that a
	// consumer always progresses), so the trailing bytes may pass
	// MaxBytes by up to one frame.
	trailingMax := int64(c.cfg.MaxBytes) + schema.MaxFrameBytes
	for _, ref := range r.parts {
		ref.cp.unanswered = r
	}
	c.inflight[addr]++
	hooks := &trailingHooks{
		envelope: func(env *schema.Envelope) { c.announce(r, env) },
		progress: r.check.advance,
	}
	if c.cfg.ReuseFetchBuffers {
		hooks.buffer = c.buffers.get
	}
	call := &call{api: fb.ApiKeyFetch, trailingMax: trailingMax, trailing: hooks,
		done: func(env *schema.Envelope, trailing []byte, err error) { c.deliver(r, env, trailing, err) }}
	err = conn.sendCall(call, build)
	if err != nil {
		c.deliver(r, nil, nil, err)
	}
}

// buildFetch writes the FetchRequest table for r.
func (c *Consumer) buildFetch(b *flatbuffers.Builder, r *fetchReq, maxBytes int32) flatbuffers.UOffsetT {
	var topicOffs []flatbuffers.UOffsetT
	for i := 0; i < len(r.parts); {
		topic := r.parts[i].cp.tp.Topic
		j := i
		for j < len(r.parts) && r.parts[j].cp.tp.Topic == topic {
			j++
		}
		parts := make([]flatbuffers.UOffsetT, 0, j-i)
		for _, ref := range r.parts[i:j] {
			fb.FetchPartitionStart(b)
			fb.FetchPartitionAddPartition(b, ref.cp.tp.Partition)
			fb.FetchPartitionAddCurrentLeaderEpoch(b, ref.leaderEpoch)
			fb.FetchPartitionAddFetchOffset(b, ref.offset)
			fb.FetchPartitionAddLogStartOffset(b, -1)
			fb.FetchPartitionAddPartitionMaxBytes(b, int32(c.cfg.PartitionMaxBytes))
			parts = append(parts, fb.FetchPartitionEnd(b))
		}
		name := b.CreateString(topic)
		fb.FetchTopicStartPartitionsVector(b, len(parts))
		for k := len(parts) - 1; k >= 0; k-- {
			b.PrependUOffsetT(parts[k])
		}
		vec := b.EndVector(len(parts))
		fb.FetchTopicStart(b)
		fb.FetchTopicAddName(b, name)
		fb.FetchTopicAddPartitions(b, vec)
		topicOffs = append(topicOffs, fb.FetchTopicEnd(b))
		i = j
	}
	fb.FetchRequestStartTopicsVector(b, len(topicOffs))
	for k := len(topicOffs) - 1; k >= 0; k-- {
		b.PrependUOffsetT(topicOffs[k])
	}
	vec := b.EndVector(len(topicOffs))
	fb.FetchRequestStart(b)
	fb.FetchRequestAddReplicaId(b, -1)
	fb.FetchRequestAddMaxWaitMs(b, int32(c.cfg.MaxWaitMs))
	fb.FetchRequestAddMinBytes(b, int32(c.cfg.MinBytes))
	fb.FetchRequestAddMaxBytes(b, maxBytes)
	fb.FetchRequestAddTopics(b, vec)
	return fb.FetchRequestEnd(b)
}

// announce queues a fetch answer's envelope (on the connection's reader,
// before the trailing bytes are read) so that Poll can send the next fetch
// from the offsets it names while the frames are still arriving, and gives
// the answer's frame check its regions.
func (c *Consumer) announce(r *fetchReq, env *schema.Envelope) {
	if env.Err() != nil {
		return
	}
	fr, err := env.FetchResponse()
	if err != nil {
		return
	}
	res := &fetchResult{req: r, announce: true}
	r.check.begin()
	var t fb.FetchTopicResponse
	var p fb.FetchPartitionResponse
	for i := range fr.TopicsLength() {
		fr.Topics(&t, i)
		for j := range t.PartitionsLength() {
			t.Partitions(&p, j)
			r.check.addRegion(int64(p.FramesBytes()))
			if p.ErrorCode() != fb.ErrorCodeNone || p.NextFetchOffset() < 0 {
				continue
			}
			res.parts = append(res.parts, partResult{topic: string(t.Name()), partition: p.Partition(),
				code: p.ErrorCode(), hw: p.HighWatermark(), next: p.NextFetchOffset()})
		}
	}
	if len(res.parts) > 0 {
		c.queue(res)
	}
}

// deliver takes a fetch answer apart (on the connection's reader, while
// env is valid) and queues it for Poll.
func (c *Consumer) deliver(r *fetchReq, env *schema.Envelope, trailing []byte, err error) {
	res := &fetchResult{req: r, err: err, checkedEnd: r.check.checkedEnd}
	if c.cfg.ReuseFetchBuffers {
		res.buf = trailing
	}
	if err == nil {
		res.err = env.Err()
	}
	if res.err == nil {
		fr, ferr := env.FetchResponse()
		var regions schema.FetchRegions
		if ferr == nil {
			ferr = regions.Reset(&fr, trailing)
		}
		if ferr != nil {
			res.err = ferr
		} else {
			var p fb.FetchPartitionResponse
			var base int64
			for {
				topic, region, ok := regions.Next(&p)
				if !ok {
					break
				}
				res.parts = append(res.parts, partResult{topic: string(topic), partition: p.Partition(),
					code: p.ErrorCode(), hw: p.HighWatermark(), region: region, base: base})
				base += int64(len(region))
			}
		}
	}
	c.queue(res)
}

// queue hands a result to Poll.
func (c *Consumer) queue(res *fetchResult) {
	c.resMu.Lock()
	if !c.closed {
		c.results = append(c.results, res)
	}
	c.resMu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *Consumer) popResult() *fetchResult {
	c.resMu.Lock()
	defer c.resMu.Unlock()
	if len(c.results) == 0 {
		return nil
	}
	r := c.results[0]
	c.results[0] = nil
	c.results = c.results[1:]
	return r
}

// processAnnouncement moves the partitions named in an answer's envelope
// to their next fetch offsets, so the next fetch can go out.
func (c *Consumer) processAnnouncement(r *fetchResult) {
	for i := range r.parts {
		pr := &r.parts[i]
		ref := r.req.find(pr.topic, pr.partition)
		if ref == nil {
			continue
		}
		cp := ref.cp
		if pr.next < ref.offset {
			continue // not a next offset; the whole answer decides
		}
		ref.announced, ref.next = true, pr.next
		if cp.unanswered == r.req {
			cp.unanswered = nil
		}
		if c.parts[cp.tp] == cp && cp.epoch == ref.epoch && cp.fetchPos == ref.offset {
			cp.fetchPos = pr.next
		}
	}
}

// process turns a fetch answer into records and new positions.
func (c *Consumer) process(r *fetchResult) error {
	if n := c.inflight[r.req.addr] - 1; n > 0 {
		c.inflight[r.req.addr] = n
	} else {
		delete(c.inflight, r.req.addr)
	}
	for _, ref := range r.req.parts {
		if ref.cp.unanswered == r.req {
			ref.cp.unanswered = nil
		}
	}
	c.buffers.lend(r.buf)
	if r.err != nil {
		if !retriable(r.err) {
			return r.err
		}
		c.cl.invalidateAll(r.req.parts)
		for _, ref := range r.req.parts {
			cp := ref.cp
			if c.parts[cp.tp] == cp && cp.epoch == ref.epoch && cp.pos >= 0 {
				// The envelope may have moved the next fetch past frames
				// that never arrived: fetch again from the position (on
				// whichever broker leads by then), dropping answers to
				// fetches sent from beyond it.
				cp.moveTo(cp.pos)
			}
			c.backOff(cp)
		}
		return nil
	}
	for i := range r.parts {
		pr := &r.parts[i]
		ref := r.req.find(pr.topic, pr.partition)
		if ref == nil {
			continue
		}
		cp := ref.cp
		if c.parts[cp.tp] != cp || cp.epoch != ref.epoch {
			continue // sought elsewhere or unassigned since the fetch was sent
		}
		if cp.pos != ref.offset {
			// An answer ahead of the one before it, which can happen only
			// when the partition's leader moved between the two fetches:
			// drop both and fetch again from the position.
			cp.moveTo(cp.pos)
			continue
		}
		switch {
		case pr.code == fb.ErrorCodeNone:
			cp.hw = pr.hw
			cp.attempts = 0
			from := cp.pos
			next, err := advance(cp, pr.region)
			if err != nil {
				return err
			}
			if ref.announced && next != ref.next {
				// The frames end elsewhere than the envelope said: drop
				// the fetch sent from there and fetch again from here.
				cp.epoch++
			}
			if !ref.announced || next != ref.next {
				cp.fetchPos = next
			}
			cp.pos = next
			c.decode = append(c.decode, pendingRegion{cp: cp, epoch: cp.epoch, from: from, region: pr.region,
				checked: max(min(r.checkedEnd-pr.base, int64(len(pr.region))), 0)})
		case pr.code == fb.ErrorCodeOffsetOutOfRange:
			if c.cfg.Reset == ResetNone {
				return fmt.Errorf("%w: %s/%d offset %d: %w", ErrNoPosition, cp.tp.Topic, cp.tp.Partition, cp.pos, &schema.CodeError{Code: pr.code})
			}
			cp.moveTo(-1)
		case schema.ErrorRetriable(pr.code):
			if needsMetadata(pr.code) {
				c.cl.invalidate(cp.tp.Topic)
			}
			c.backOff(cp)
		default:
			return fmt.Errorf("fetch %s/%d: %w", cp.tp.Topic, cp.tp.Partition, &schema.CodeError{Code: pr.code})
		}
	}
	return nil
}

// find returns the request's entry for a partition, nil if it has none.
func (r *fetchReq) find(topic string, partition int32) *fetchRef {
	for i := range r.parts {
		if ref := &r.parts[i]; ref.cp.tp.Partition == partition && ref.cp.tp.Topic == topic {
			return ref
		}
	}
	return nil
}

// pendingRegion is a partition's region of an answer whose records are
// still to be decoded: those at or after from.
type pendingRegion struct {
	cp     *consPart
	epoch  uint64
	from   int64
	region []byte
	// checked is how many bytes from the region's start hold whole frames
	// whose CRCs were checked as they arrived.
	checked int64
}

// advance returns the position after the last whole frame of a region that
// holds offsets at or after cp's position, reading frame headers only (no
// CRC, no records): enough to send the next fetch.
func advance(cp *consPart, region []byte) (int64, error) {
	next := cp.pos
	for len(region) > 0 {
		frame, rest, err := schema.NextFrame(region)
		if err == schema.ErrFramePartial {
			break // the cut-short last frame: fetched again next time
		}
		if err != nil {
			return 0, fmt.Errorf("fetch %s/%d: %w", cp.tp.Topic, cp.tp.Partition, err)
		}
		region = rest
		h, err := schema.ParseFrameHeader(frame)
		if err != nil {
			return 0, fmt.Errorf("fetch %s/%d: %w", cp.tp.Topic, cp.tp.Partition, err)
		}
		if h.NextOffset() > next {
			next = h.NextOffset()
		}
	}
	return next, nil
}

// decodePending decodes the regions process left, in order, into c.out.
func (c *Consumer) decodePending() error {
	defer func() { clear(c.decode); c.decode = c.decode[:0] }()
	for _, p := range c.decode {
		if p.cp.epoch != p.epoch || c.parts[p.cp.tp] != p.cp {
			continue // sought elsewhere or unassigned meanwhile
		}
		if err := c.records(p.cp, p.from, p.region, p.checked); err != nil {
			return err
		}
	}
	return nil
}

// records appends the records at or after from of a region. A frame that
// fails its checks puts the partition's position back at that frame (the
// fetch already sent past it is then dropped when it answers), so the bad
// frame is not skipped silently.
func (c *Consumer) records(cp *consPart, from int64, region []byte, checked int64) error {
	var v schema.RecordView
	var at int64 // offset of the frame in the region
	for len(region) > 0 {
		frame, rest, err := schema.NextFrame(region)
		if err == schema.ErrFramePartial {
			return nil
		}
		if err != nil {
			return fmt.Errorf("fetch %s/%d: %w", cp.tp.Topic, cp.tp.Partition, err)
		}
		region = rest
		at += int64(len(frame))
		// The frame's CRC was checked on arrival when it ends within the
		// region's checked bytes.
		crcChecked := at <= checked
		h, err := schema.ParseFrameHeader(frame)
		if err != nil {
			return fmt.Errorf("fetch %s/%d: %w", cp.tp.Topic, cp.tp.Partition, err)
		}
		if h.NextOffset() <= from {
			continue // a frame before the position (the fetch started mid-frame)
		}
		br := &c.reader
		if h.Compression() != schema.CompressionNone {
			// The records of a compressed frame point into the reader's
			// scratch buffer; a fresh reader keeps them valid after Poll.
			br = new(schema.BatchReader)
		}
		if crcChecked {
			err = br.ResetCRCChecked(frame)
		} else {
			err = br.Reset(frame)
		}
		if err != nil {
			cp.moveTo(max(h.BaseOffset, from))
			return fmt.Errorf("fetch %s/%d at offset %d: %w", cp.tp.Topic, cp.tp.Partition, h.BaseOffset, err)
		}
		for br.Next(&v) {
			if v.Offset < from {
				continue
			}
			rec := Record{Topic: cp.tp.Topic, Partition: cp.tp.Partition, Offset: v.Offset,
				Key: v.Key, Value: v.Value, Timestamp: time.UnixMilli(v.TimestampMs)}
			if n := v.HeadersLen(); n > 0 {
				rec.Headers = make([]Header, n)
				for i := range n {
					rec.Headers[i].Key, rec.Headers[i].Value = v.Header(i)
				}
			}
			c.out = append(c.out, rec)
		}
	}
	return nil
}

// invalidateAll marks the topics of a fetch's partitions for a metadata
// refresh.
func (c *Client) invalidateAll(refs []fetchRef) {
	for _, ref := range refs {
		c.invalidate(ref.cp.tp.Topic)
	}
}
