package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// senderIdleWait is how long the sender sleeps when nothing is due; any
// Send, response or flush wakes it sooner.
const senderIdleWait = time.Second

// leaderWatchIntervalMaxMs bounds how often the sender asks for the
// metadata while partitions back off from a failed leader (leaderWatch):
// every RetryBackoffMs, but at least this often, so that a long backoff
// still ends soon after the leadership moves.
const leaderWatchIntervalMaxMs = 100

// ErrDeliveryTimeout ends a batch whose ProducerConfig.DeliveryTimeoutMs
// passed before it was delivered; the last error it met is wrapped with it.
var ErrDeliveryTimeout = errors.New("strata client: delivery timeout")

// errBehindRetry is the last error of a batch sent again because an
// earlier batch of its partition was retried.
var errBehindRetry = errors.New("strata client: an earlier batch of the partition is being retried")

// deliveryTimeoutError is the error of a batch whose delivery timeout
// passed: how long, how many tries, and the last cause.
func (p *Producer) deliveryTimeoutError(b *batch) error {
	if b.lastErr == nil {
		return fmt.Errorf("%w (%d ms) before the batch could be sent", ErrDeliveryTimeout, p.cfg.DeliveryTimeoutMs)
	}
	return fmt.Errorf("%w (%d ms) after %d attempts; last error: %w", ErrDeliveryTimeout, p.cfg.DeliveryTimeoutMs, b.attempts, b.lastErr)
}

// produceReq is one produce request: per partition, its batches in order.
type produceReq struct {
	parts []reqPart
}

type reqPart struct {
	ps      *partState
	batches []*batch
}

// run is the sender goroutine: it seals lingering batches, groups ready
// ones by leader and sends them while the connection has slots.
func (p *Producer) run() {
	defer close(p.done)
	timer := time.NewTimer(senderIdleWait)
	defer timer.Stop()
	scratch := make([]byte, 0, batchBytesDefault)
	for {
		wait := p.cycle(&scratch)
		p.runCallbacks()
		timer.Reset(wait)
		select {
		case <-p.wake:
		case <-timer.C:
		case <-p.quit:
			p.shutdown()
			p.runCallbacks()
			return
		}
	}
}

// cycle does one round of the sender and says how long to wait for the
// next deadline (a linger or a retry backoff).
func (p *Producer) cycle(scratch *[]byte) time.Duration {
	now := time.Now()
	wait := senderIdleWait
	linger := time.Duration(p.cfg.LingerMs) * time.Millisecond
	deliveryTimeout := time.Duration(p.cfg.DeliveryTimeoutMs) * time.Millisecond
	var ready, watched []*partState
	p.mu.Lock()
	for _, ps := range p.parts {
		if len(ps.open) > 0 {
			if due := ps.openSince.Add(linger); p.flushing > 0 || !now.Before(due) {
				p.seal(ps)
			} else {
				wait = min(wait, due.Sub(now))
			}
		}
		for len(ps.queue) > 0 && now.Sub(ps.queue[0].created) >= deliveryTimeout {
			b := ps.queue[0]
			ps.queue = ps.queue[1:]
			p.complete(b, -1, p.deliveryTimeoutError(b))
		}
		if len(ps.queue) == 0 || (ps.blocked && ps.inflight > 0) {
			continue
		}
		if now.Before(ps.retryAt) {
			wait = min(wait, ps.retryAt.Sub(now))
			if ps.failedLeader != "" {
				watched = append(watched, ps)
			}
			continue
		}
		ready = append(ready, ps)
	}
	p.mu.Unlock()
	if len(watched) > 0 {
		var w time.Duration
		ready, w = p.leaderWatch(watched, ready, now)
		wait = min(wait, w)
	}
	if len(ready) == 0 {
		return wait
	}

	groups := map[string][]*partState{}
	var unknown []*partState
	for _, ps := range ready {
		if addr, ok := p.cl.leaderAddr(ps.tp.Topic, ps.tp.Partition); ok {
			groups[addr] = append(groups[addr], ps)
		} else {
			unknown = append(unknown, ps)
		}
	}
	if len(unknown) > 0 {
		topics := map[string]bool{}
		var names []string
		for _, ps := range unknown {
			if !topics[ps.tp.Topic] {
				topics[ps.tp.Topic] = true
				names = append(names, ps.tp.Topic)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(p.cl.cfg.DialTimeoutMs)*time.Millisecond)
		_, err := p.cl.fetchMetadataOnce(ctx, names)
		cancel()
		for _, ps := range unknown {
			addr, ok := p.cl.leaderAddr(ps.tp.Topic, ps.tp.Partition)
			if !ok {
				if err == nil {
					err = &schema.CodeError{Code: fb.ErrorCodeLeaderNotAvailable}
				}
				wait = min(wait, p.backOff(ps, "", err))
				continue
			}
			groups[addr] = append(groups[addr], ps)
		}
	}
	for addr, list := range groups {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(p.cl.cfg.DialTimeoutMs)*time.Millisecond)
		conn, err := p.cl.connTo(ctx, addr)
		cancel()
		if err != nil {
			for _, ps := range list {
				if refreshesMetadata(err) {
					p.cl.invalidate(ps.tp.Topic)
				}
				// The leader watch looks for a new leader meanwhile.
				wait = min(wait, p.backOff(ps, addr, err), p.leaderWatchInterval())
			}
			continue
		}
		for conn.tryAcquire() {
			req := p.take(list, conn)
			if req == nil {
				conn.release()
				break
			}
			p.dispatch(conn, req, scratch)
		}
	}
	return wait
}

// backOff delays a partition whose leader (at addr, "" when none is
// known) could not be reached, and returns the delay.
func (p *Producer) backOff(ps *partState, addr string, err error) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps.failedLeader = addr
	attempts := 1
	if len(ps.queue) > 0 {
		b := ps.queue[0]
		b.attempts++
		b.lastErr = err
		attempts = b.attempts
	}
	d := p.cl.cfg.backoff(attempts)
	ps.retryAt = time.Now().Add(d)
	return d
}

// leaderWatch ends the backoff of partitions whose failed leader the
// metadata no longer names: the backoff spares a broker that failed, and
// a new leader has not failed. A killed leader's partitions move once the
// controller fences it; polling finds the new leader within an interval
// of the move, where a doubled backoff would wait up to
// RetryBackoffMaxMs. It asks for the metadata once per RetryBackoffMs
// or leaderWatchIntervalMaxMs, whichever is shorter, on the sender
// (bounded by DialTimeoutMs), and returns ready with the partitions it
// released, and when to poll next.
func (p *Producer) leaderWatch(watched, ready []*partState, now time.Time) ([]*partState, time.Duration) {
	interval := p.leaderWatchInterval()
	if now.Before(p.leaderPollAt) {
		return ready, p.leaderPollAt.Sub(now)
	}
	p.leaderPollAt = now.Add(interval)
	var names []string
	for _, ps := range watched {
		if !slices.Contains(names, ps.tp.Topic) {
			names = append(names, ps.tp.Topic)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(p.cl.cfg.DialTimeoutMs)*time.Millisecond)
	_, err := p.cl.fetchMetadataOnce(ctx, names)
	cancel()
	if err != nil {
		return ready, interval
	}
	p.mu.Lock()
	for _, ps := range watched {
		addr, ok := p.cl.leaderAddr(ps.tp.Topic, ps.tp.Partition)
		if ok && ps.failedLeader != "" && addr != ps.failedLeader && len(ps.queue) > 0 && !(ps.blocked && ps.inflight > 0) {
			ps.retryAt = time.Time{}
			ps.failedLeader = ""
			ready = append(ready, ps)
		}
	}
	p.mu.Unlock()
	return ready, interval
}

// leaderWatchInterval is how often leaderWatch asks for the metadata.
func (p *Producer) leaderWatchInterval() time.Duration {
	return time.Duration(min(p.cl.cfg.RetryBackoffMs, leaderWatchIntervalMaxMs)) * time.Millisecond
}

// take moves the queued batches of the given partitions into one request
// for conn, up to requestFramesBytesMax of frames (at least one batch). A
// partition with batches in flight on another connection waits for their
// answers.
func (p *Producer) take(list []*partState, conn *brokerConn) *produceReq {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var req produceReq
	total := 0
	for _, ps := range list {
		if len(ps.queue) == 0 || now.Before(ps.retryAt) || (ps.inflight > 0 && (ps.blocked || ps.inflightConn != conn)) {
			continue
		}
		ps.blocked = false
		ps.failedLeader = ""
		ps.inflightConn = conn
		rp := reqPart{ps: ps}
		for len(ps.queue) > 0 {
			b := ps.queue[0]
			n := len(b.frame.B)
			if total > 0 && total+n > requestFramesBytesMax {
				break
			}
			if len(rp.batches) > 0 && (b.alone || rp.batches[0].alone) {
				break
			}
			total += n
			rp.batches = append(rp.batches, b)
			ps.queue = ps.queue[1:]
			if b.sends > 0 {
				p.retries.Batches++
				p.retries.Records += int64(len(b.recs))
			}
			b.sends++
		}
		if len(rp.batches) == 0 {
			break
		}
		ps.inflight += len(rp.batches)
		req.parts = append(req.parts, rp)
	}
	if len(req.parts) == 0 {
		return nil
	}
	return &req
}

// dispatch sends req on conn, whose slot the caller holds.
func (p *Producer) dispatch(conn *brokerConn, req *produceReq, scratch *[]byte) {
	acks := p.cfg.Acks.wire()
	timeoutMs := int32(p.cfg.RequestTimeoutMs)
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageProduceRequest, buildProduce(b, req, acks, timeoutMs, scratch)
	}
	if p.cfg.Acks == AcksNone {
		err := conn.sendAcquired(fb.ApiKeyProduce, 0, build, nil)
		p.mu.Lock()
		for _, rp := range req.parts {
			rp.ps.inflight -= len(rp.batches)
			for _, b := range rp.batches {
				if err != nil {
					p.retry(b, err)
				} else {
					p.complete(b, -1, nil)
				}
			}
		}
		p.mu.Unlock()
		return
	}
	err := conn.sendAcquired(fb.ApiKeyProduce, 0, build, func(env *schema.Envelope, _ []byte, err error) {
		p.handleProduce(req, env, err)
	})
	if err != nil {
		p.handleProduce(req, nil, err)
	}
}

// buildProduce writes the ProduceRequest table: one entry per partition,
// its batches' frames back to back.
func buildProduce(b *flatbuffers.Builder, req *produceReq, acks int8, timeoutMs int32, scratch *[]byte) flatbuffers.UOffsetT {
	// Partitions of one topic share a topic entry; req.parts is grouped by
	// first appearance of each topic.
	type topicEntry struct {
		name  string
		parts []flatbuffers.UOffsetT
	}
	var topics []topicEntry
	for _, rp := range req.parts {
		frames := rp.batches[0].frame.B
		if len(rp.batches) > 1 {
			buf := (*scratch)[:0]
			for _, bt := range rp.batches {
				buf = append(buf, bt.frame.B...)
			}
			*scratch = buf
			frames = buf
		}
		vec := b.CreateByteVector(frames)
		fb.ProducePartitionStart(b)
		fb.ProducePartitionAddPartition(b, rp.ps.tp.Partition)
		fb.ProducePartitionAddFrames(b, vec)
		off := fb.ProducePartitionEnd(b)
		i := slices.IndexFunc(topics, func(t topicEntry) bool { return t.name == rp.ps.tp.Topic })
		if i < 0 {
			topics = append(topics, topicEntry{name: rp.ps.tp.Topic})
			i = len(topics) - 1
		}
		topics[i].parts = append(topics[i].parts, off)
	}
	topicOffs := make([]flatbuffers.UOffsetT, len(topics))
	for i, t := range topics {
		name := b.CreateString(t.name)
		fb.ProduceTopicStartPartitionsVector(b, len(t.parts))
		for j := len(t.parts) - 1; j >= 0; j-- {
			b.PrependUOffsetT(t.parts[j])
		}
		parts := b.EndVector(len(t.parts))
		fb.ProduceTopicStart(b)
		fb.ProduceTopicAddName(b, name)
		fb.ProduceTopicAddPartitions(b, parts)
		topicOffs[i] = fb.ProduceTopicEnd(b)
	}
	fb.ProduceRequestStartTopicsVector(b, len(topicOffs))
	for i := len(topicOffs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(topicOffs[i])
	}
	vec := b.EndVector(len(topicOffs))
	fb.ProduceRequestStart(b)
	fb.ProduceRequestAddAcks(b, fb.Acks(acks))
	fb.ProduceRequestAddTimeoutMs(b, timeoutMs)
	fb.ProduceRequestAddTopics(b, vec)
	return fb.ProduceRequestEnd(b)
}

// handleProduce settles a request's batches from its answer (env) or the
// connection's failure (err). It runs on the connection's reader.
func (p *Producer) handleProduce(req *produceReq, env *schema.Envelope, err error) {
	if err == nil {
		err = env.Err()
	}
	type outcome struct {
		code fb.ErrorCode
		base int64
		msg  string
		seen bool
	}
	outs := make([]outcome, len(req.parts))
	if err == nil {
		r, rerr := env.ProduceResponse()
		if rerr != nil {
			err = rerr
		} else {
			var t fb.ProduceTopicResponse
			var pr fb.ProducePartitionResponse
			for i := 0; i < r.TopicsLength(); i++ {
				r.Topics(&t, i)
				name := t.Name()
				for j := 0; j < t.PartitionsLength(); j++ {
					t.Partitions(&pr, j)
					for k := range req.parts {
						tp := req.parts[k].ps.tp
						if !outs[k].seen && tp.Partition == pr.Partition() && string(name) == tp.Topic {
							outs[k] = outcome{code: pr.ErrorCode(), base: pr.BaseOffset(), msg: string(pr.ErrorMessage()), seen: true}
							break
						}
					}
				}
			}
		}
	}
	p.mu.Lock()
	for k, rp := range req.parts {
		ps := rp.ps
		ps.inflight -= len(rp.batches)
		o := outs[k]
		perr := err
		if perr == nil && !o.seen {
			perr = fmt.Errorf("strata client: no answer for %s/%d", rp.ps.tp.Topic, rp.ps.tp.Partition)
		}
		if perr == nil && o.code != fb.ErrorCodeNone {
			ce := &schema.CodeError{Code: o.code, Message: o.msg}
			perr = ce
			if o.code == fb.ErrorCodeMessageTooLarge {
				perr = &BatchTooLargeError{TopicPartition: rp.ps.tp, Bytes: largestFrame(rp.batches), Err: ce}
			}
		}
		if perr != nil && refreshesMetadata(perr) {
			p.cl.invalidate(ps.tp.Topic)
			if ps.inflightConn != nil {
				ps.failedLeader = ps.inflightConn.addr
			}
		}
		// The broker checks every frame of a partition entry before it
		// appends any, and answers one code for the entry: when a frame
		// is refused (MESSAGE_TOO_LARGE, CORRUPT_MESSAGE) and the entry
		// had several, each is sent again alone to learn which one it was.
		split := len(rp.batches) > 1 && (ErrorCode(perr) == fb.ErrorCodeMessageTooLarge || ErrorCode(perr) == fb.ErrorCodeCorruptMessage)
		base := o.base
		for _, b := range rp.batches {
			switch {
			case split:
				b.alone = true
				p.retryBehind(b, perr)
			case ps.blocked:
				// An earlier batch of the partition went back for a retry
				// (answers come in sequence order, so it was earlier):
				// this one follows it, even if it was written, so that
				// nothing is acknowledged ahead of it.
				if perr == nil {
					p.retries.Superseded++
				}
				p.retryBehind(b, perr)
			case perr != nil:
				p.retry(b, perr)
			default:
				p.complete(b, base, nil)
			}
			base += int64(frameRecordCount(b))
		}
	}
	p.mu.Unlock()
	p.runCallbacks()
	p.nudge()
}

// largestFrame is the size of the largest frame among batches.
func largestFrame(batches []*batch) int {
	n := 0
	for _, b := range batches {
		n = max(n, b.frame.Len())
	}
	return n
}

// frameRecordCount is how many offsets a batch's frame takes.
func frameRecordCount(b *batch) int {
	return len(b.recs)
}

// retry puts a batch back in its partition's queue, in sequence order, or
// ends it when the error is final or the delivery timeout has passed.
// Called with p.mu held.
func (p *Producer) retry(b *batch, err error) {
	b.attempts++
	b.lastErr = err
	switch {
	case !retriable(err):
		p.complete(b, -1, err)
	case p.closed:
		p.complete(b, -1, fmt.Errorf("%w: %w", ErrClosed, err))
	case time.Since(b.created) >= time.Duration(p.cfg.DeliveryTimeoutMs)*time.Millisecond:
		p.complete(b, -1, p.deliveryTimeoutError(b))
	default:
		p.requeue(b)
	}
}

// retryBehind puts back a batch that was in flight after one that is being
// retried: its own answer (err, nil when it was written) does not end it,
// and its attempts do not grow. Called with p.mu held.
func (p *Producer) retryBehind(b *batch, err error) {
	switch {
	case err != nil:
		b.lastErr = err
	case b.lastErr == nil:
		b.lastErr = errBehindRetry
	}
	switch {
	case p.closed:
		p.complete(b, -1, fmt.Errorf("%w: %w", ErrClosed, b.lastErr))
	case time.Since(b.created) >= time.Duration(p.cfg.DeliveryTimeoutMs)*time.Millisecond:
		p.complete(b, -1, p.deliveryTimeoutError(b))
	default:
		p.requeue(b)
	}
}

// requeue inserts b into its partition's queue by sequence and holds the
// partition back (blocked) until its batches in flight are back too.
// Called with p.mu held.
func (p *Producer) requeue(b *batch) {
	ps := b.ps
	i, _ := slices.BinarySearchFunc(ps.queue, b.seq, func(q *batch, seq uint64) int {
		switch {
		case q.seq < seq:
			return -1
		case q.seq > seq:
			return 1
		}
		return 0
	})
	ps.queue = slices.Insert(ps.queue, i, b)
	ps.blocked = true
	ps.retryAt = time.Now().Add(p.cl.cfg.backoff(max(ps.queue[0].attempts, 1)))
}

// runCallbacks calls the callbacks of completed batches, in completion
// order, outside p.mu.
func (p *Producer) runCallbacks() {
	p.cbMu.Lock()
	defer p.cbMu.Unlock()
	for {
		p.mu.Lock()
		list := p.deferred
		p.deferred = nil
		p.mu.Unlock()
		if len(list) == 0 {
			return
		}
		done := 0
		for _, c := range list {
			for i, r := range c.b.recs {
				done++
				if r.cb == nil {
					continue
				}
				off := int64(-1)
				if c.err == nil && c.base >= 0 {
					off = c.base + int64(i)
				}
				r.cb(c.b.ps.tp.Partition, off, c.err)
			}
		}
		p.mu.Lock()
		p.pending -= done
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// shutdown ends every batch not in flight with ErrClosed.
func (p *Producer) shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ps := range p.parts {
		p.seal(ps)
		for _, b := range ps.queue {
			p.complete(b, -1, ErrClosed)
		}
		ps.queue = nil
	}
}
