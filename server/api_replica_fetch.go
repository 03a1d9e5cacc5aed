package server

import (
	"github.com/strata-db/strata/replica"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/metadata"
)

// ReplicaFetch, the leader's side: a follower's fetch of one window of one
// partition goes to the partition's owning shard, where its replica
// machine answers it at once or parks it (a long poll); the answer, with
// the frames of the window spliced from the segment files, goes out on the
// connection it came in on, as soon as it is ready, not in request order
// (docs/replication.md, "The broker").

// replicaFetchBytesMax bounds the frame bytes of one answer, whatever the
// follower asks: the follower's receive buffer holds it whole.
const replicaFetchBytesMax = 8 << 20

// replicaFetchCtx is one follower fetch being served: where its answer goes.
type replicaFetchCtx struct {
	origin   *brokerShard // the shard that received it
	ref      ConnRef
	seq      uint64
	h        schema.EnvelopeHeader
	maxBytes int
}

func (bs *brokerShard) replicaFetch(req *Request) {
	m, err := bs.env.ReplicaFetchRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	req.AnswerUnordered()
	ctx := &replicaFetchCtx{origin: bs, ref: req.Conn, seq: req.Seq, h: bs.header(),
		maxBytes: int(min(max(int64(m.MaxBytes()), 1), replicaFetchBytesMax))}
	topic := m.Topic()
	var id metadata.TopicID
	if err := metadata.CheckTopicName(string(topic)); err != nil || m.ReplicaId() < 0 ||
		m.TopicIdLength() != 0 && m.TopicIdLength() != len(id) {
		ctx.respondError(bs, fb.ErrorCodeInvalidRequest, m.Gen(), m.Seq())
		return
	}
	copy(id[:], m.TopicIdBytes())
	name := string(topic)
	fr := replica.FetchRequest{To: bs.b.cfg.NodeID, ReplicaID: m.ReplicaId(), CurrentLeaderEpoch: m.CurrentLeaderEpoch(),
		Gen: m.Gen(), Seq: m.Seq(), LogEnd: m.LogEnd(), LastFetchedEpoch: m.LastFetchedEpoch(), DurableEnd: m.DurableEnd(),
		WindowStart: m.WindowStart(), WindowEnd: m.WindowEnd(), MaxWaitMs: int64(max(m.MaxWaitMs(), 0))}
	fr.MaxWaitMs = min(fr.MaxWaitMs, fetchWaitMaxMs)
	index, logStart := m.Partition(), m.LogStartOffset()
	owner := ownerShard(name, index, len(bs.b.shards))
	if owner == bs.id {
		bs.serveReplicaFetch(ctx, name, id, index, fr, m.LogStartOffset())
		return
	}
	err = bs.b.srv.Shards()[owner].PostFrom(bs.sh, func(osh *Shard) {
		obs := bs.b.shards[osh.ID()]
		obs.sh = osh
		obs.serveReplicaFetch(ctx, name, id, index, fr, logStart)
	})
	if err != nil {
		ctx.respondError(bs, fb.ErrorCodeRequestTimedOut, fr.Gen, fr.Seq)
	}
}

// serveReplicaFetch steps the fetch into the partition's machine, on its
// owning shard, and notes the log start the follower reported.
func (bs *brokerShard) serveReplicaFetch(ctx *replicaFetchCtx, topic string, id metadata.TopicID, index int32, fr replica.FetchRequest, logStart int64) {
	p := bs.partitionAt(topic, index)
	switch {
	case p == nil || p.rep == nil:
		ctx.respondError(bs, bs.missingPartitionCode(topic, index), fr.Gen, fr.Seq)
		return
	case !id.IsZero() && id != p.rep.topicID:
		ctx.respondError(bs, fb.ErrorCodeUnknownTopicOrPartition, fr.Gen, fr.Seq)
		return
	case p.offline():
		ctx.respondError(bs, bs.storageErrorCode(p), fr.Gen, fr.Seq)
		return
	}
	p.noteFollowerStart(fr.ReplicaID, logStart)
	p.noteLogStart()
	p.rep.serving[replicaFetchKey{fr.ReplicaID, fr.Gen, fr.Seq}] = ctx
	p.stepReplica(fr)
}

// answerReplicaFetch sends the machine's answer to a follower's fetch, or
// holds it while its window starts past what the log has written.
func (p *partition) answerReplicaFetch(resp replica.FetchResponse) {
	key := replicaFetchKey{resp.To, resp.Gen, resp.Seq}
	ctx := p.rep.serving[key]
	if ctx == nil {
		return // a fetch whose connection is gone (its follower restarted)
	}
	if resp.Err == replica.ErrNone && resp.Diverging == nil && resp.Limit > resp.WindowStart && resp.WindowStart >= p.log.End() {
		p.rep.held = append(p.rep.held, resp)
		return
	}
	delete(p.rep.serving, key)
	p.sendReplicaFetch(ctx, resp)
}

// releaseHeld sends the held answers whose frames the log has now written,
// or every one of them (force: on the tick, so that none waits longer).
func (p *partition) releaseHeld(force bool) {
	r := p.rep
	end := p.log.End()
	if len(r.held) == 0 || (!force && end == r.writtenSeen) {
		r.writtenSeen = end
		return
	}
	r.writtenSeen = end
	kept := r.held[:0]
	for _, resp := range r.held {
		if !force && resp.WindowStart >= end && !p.offline() {
			kept = append(kept, resp)
			continue
		}
		key := replicaFetchKey{resp.To, resp.Gen, resp.Seq}
		if ctx := r.serving[key]; ctx != nil {
			delete(r.serving, key)
			p.sendReplicaFetch(ctx, resp)
		}
	}
	clear(r.held[len(kept):])
	r.held = kept
}

// sendReplicaFetch fills the answer with the frames whose base offset lies
// in [WindowStart, Limit), as far as the log has written them and the
// byte bound allows, lowers Limit to where they stop, and sends it.
func (p *partition) sendReplicaFetch(ctx *replicaFetchCtx, resp replica.FetchResponse) {
	out := &fb.ReplicaFetchResponseT{ErrorCode: produceCode(resp.Err), LeaderEpoch: resp.LeaderEpoch,
		Gen: resp.Gen, Seq: resp.Seq, DivergingEpoch: -1, DivergingEndOffset: -1,
		HighWatermark: resp.HighWatermark, LogStartOffset: p.log.LogStart(), LogEnd: resp.LogEnd,
		WindowStart: resp.WindowStart, WindowEnd: resp.WindowEnd, Limit: resp.Limit}
	if d := resp.Diverging; d != nil {
		out.HasDiverging, out.DivergingEpoch, out.DivergingEndOffset = true, d.Epoch, d.EndOffset
	}
	if resp.Err == replica.ErrOffsetOutOfRange {
		// Where a follower below it starts again: a frame boundary.
		out.LogStartOffset = resp.LogStart
	}
	var files []FileSpan
	var hold *spanHold
	if resp.Err == replica.ErrNone && resp.Diverging == nil && resp.Limit > resp.WindowStart && !p.offline() {
		var err error
		files, hold, out.Limit, err = p.readWindow(resp.WindowStart, resp.Limit, ctx.maxBytes)
		if err != nil {
			p.bs.b.log.Warn("replica fetch read", "topic", p.topic, "partition", p.index, "window", resp.WindowStart, "err", err)
			out.ErrorCode, out.Limit = fb.ErrorCodeOffsetOutOfRange, resp.WindowStart
			out.LogStartOffset = p.servableStart()
			if p.offline() {
				out.ErrorCode = fb.ErrorCodeStorageError
			}
		}
		for _, f := range files {
			out.FramesBytes += uint32(f.Len)
		}
		if p.metrics != nil && out.FramesBytes > 0 {
			p.metrics.sent(p.bs.id, int64(out.FramesBytes))
		}
	}
	ctx.respond(p.bs, out, files, hold)
}

// readWindow returns the spans of the frames whose base offset is in
// [start, limit), whole frames up to maxBytes (at least one frame), and
// the end of the last frame included (limit when that frame runs past it;
// start when none is).
func (p *partition) readWindow(start, limit int64, maxBytes int) ([]FileSpan, *spanHold, int64, error) {
	written := p.log.End()
	if start >= written {
		return nil, nil, start, nil
	}
	from := start
	// A frame that holds start but begins before it belongs to the
	// window before, which sent it.
	first, err := p.log.Read(start, 1, -1)
	if err != nil {
		return nil, nil, start, err
	}
	if len(first) > 0 && first[0].FirstOffset < start {
		from = first[0].NextOffset
	}
	var spans []segment.Span
	total := int64(0)
	if from < min(limit, written) {
		got, err := p.log.Read(from, maxBytes, min(limit, written))
		if err != nil {
			return nil, nil, start, err
		}
		spans = append(spans, got...)
		for _, s := range got {
			total += s.Len
		}
	}
	next := from
	if n := len(spans); n > 0 {
		next = spans[n-1].NextOffset
	}
	if next < limit && next < written {
		// The frame that begins before limit and ends past it.
		got, err := p.log.Read(next, 1, -1)
		if err != nil {
			return nil, nil, start, err
		}
		if len(got) > 0 && got[0].FirstOffset == next && (total == 0 || total+got[0].Len <= int64(maxBytes)) {
			spans = append(spans, got[0])
			next = got[0].NextOffset
		}
	}
	end := min(next, limit)
	if len(spans) == 0 {
		return nil, nil, min(from, limit), nil
	}
	files := make([]FileSpan, 0, len(spans))
	hold := &spanHold{}
	var last *segment.Segment
	for _, s := range spans {
		fd, err := p.log.Fd(s.Segment)
		if err != nil {
			return nil, nil, start, err
		}
		if n := len(files); n > 0 && files[n-1].FD == fd && files[n-1].Pos+files[n-1].Len == s.Pos {
			files[n-1].Len += s.Len
		} else {
			files = append(files, FileSpan{FD: fd, Pos: s.Pos, Len: s.Len})
		}
		if s.Segment != last {
			hold.holds = append(hold.holds, p.holdOf(s.Segment))
			last = s.Segment
		}
	}
	for _, h := range hold.holds {
		h.take()
	}
	return files, hold, end, nil
}

// spanHold keeps the segment files of one answer's spans open until they
// are sent (FileHold).
type spanHold struct{ holds []*segmentHold }

func (h *spanHold) Release() {
	for _, s := range h.holds {
		s.release()
	}
	h.holds = nil
}

// respondError answers with only an error code.
func (ctx *replicaFetchCtx) respondError(from *brokerShard, code fb.ErrorCode, gen, seq uint64) {
	ctx.respond(from, &fb.ReplicaFetchResponseT{ErrorCode: code, LeaderEpoch: -1, Gen: gen, Seq: seq,
		DivergingEpoch: -1, DivergingEndOffset: -1, HighWatermark: -1, LogStartOffset: -1, LogEnd: -1}, nil, nil)
}

// respond encodes the answer on the shard that has it and sends it on the
// shard that received the request.
func (ctx *replicaFetchCtx) respond(from *brokerShard, out *fb.ReplicaFetchResponseT, files []FileSpan, hold *spanHold) {
	msg := from.enc.Encode(&ctx.h, &fb.MessageT{Type: fb.MessageReplicaFetchResponse, Value: out})
	send := func(o *brokerShard, msg []byte) {
		if len(files) == 0 {
			if hold != nil {
				hold.Release()
			}
			o.sh.RespondFiles(ctx.ref, ctx.seq, msg, nil, nil)
		} else {
			o.sh.RespondFiles(ctx.ref, ctx.seq, msg, files, hold)
		}
	}
	if ctx.origin == from {
		send(from, msg)
		return
	}
	msg = append([]byte(nil), msg...)
	o := ctx.origin
	if err := o.sh.PostFrom(from.sh, func(sh *Shard) { o.sh = sh; send(o, msg) }); err != nil {
		if hold != nil {
			hold.Release()
		}
		from.b.log.Warn("replica fetch answer not delivered to its shard", "err", err)
	}
}
