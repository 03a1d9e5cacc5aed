package server

import (
	"errors"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment/ringlog"
	"github.com/strata-db/strata/server/metadata"
)

// DeleteRecords (KIP-107): per partition, the leader moves its log start to
// the given offset (-1: the high watermark; never past it), which deletes
// the segments wholly below it and makes a fetch below it answer
// OFFSET_OUT_OF_RANGE. The log start is in the log's checkpoint, so it
// survives a restart. Followers take the leader's log start from every
// fetch answer and move their own to it (as far as their log reaches), and
// report theirs in every fetch; the leader answers once the low watermark,
// the smallest log start of itself and the ISR's followers, reaches the
// offset, or at the request's timeout with REQUEST_TIMED_OUT (the leader's
// log start has moved either way). docs/storage.md, "Deleting records".

const (
	// deleteRecordsTimeoutMaxMs bounds how long one request may wait for
	// the replicas, whatever it asks.
	deleteRecordsTimeoutMaxMs = 5 * 60_000
	// deleteRecordsWaitsMax bounds the partitions of one shard waiting for
	// their low watermark; past it a partition is answered at once
	// (REQUEST_TIMED_OUT with the low watermark as it is).
	deleteRecordsWaitsMax = 1 << 14
)

// deleteRecords plans the request against the image, moves each
// partition's log start on its owning shard and answers once every
// partition's wait is over.
func (bs *brokerShard) deleteRecords(req *Request) {
	m, err := bs.env.DeleteRecordsRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	resp, works, ok := planDeleteRecords(&m, req.Message, bs.b.image.Load(), len(bs.b.shards))
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	deadlineMs := nowMs() + int64(min(max(m.TimeoutMs(), 0), deleteRecordsTimeoutMaxMs))
	h, ref, seq, start := bs.header(), req.Conn, req.Seq, bs.reqStart
	left := len(works)
	answer := func(sh *Shard) {
		sh.Respond(ref, seq, bs.enc.Encode(&h, &fb.MessageT{Type: fb.MessageDeleteRecordsResponse, Value: resp}))
		bs.observeAnswer(h.ApiKey, start)
	}
	if left == 0 {
		answer(bs.sh)
		return
	}
	for _, w := range works {
		w.deadlineMs = deadlineMs
		bs.onOwnerLater(w.owner, func(obs *brokerShard, done func()) {
			w.done = done
			obs.startDeleteRecords(w)
		}, func() {
			if left--; left == 0 {
				answer(bs.sh)
			}
		})
	}
}

// deleteRecordsWait is one partition's deletion, from the request to its
// answer.
type deleteRecordsWait struct {
	owner      int
	topic      string
	index      int32
	offset     int64 // as asked (-1: the high watermark), then as applied
	topicID    metadata.TopicID
	deadlineMs int64
	result     *fb.DeleteRecordsPartitionResponseT
	done       func() // on the owning shard, once
}

// planDeleteRecords walks a delete-records request (msg, as m reads it)
// against the image: the answer, in the request's order, and the
// partitions to trim. ok is false when the request breaks the walk's
// bounds.
func planDeleteRecords(m *fb.DeleteRecordsRequest, msg []byte, im *metadata.Image, shards int) (resp *fb.DeleteRecordsResponseT, works []*deleteRecordsWait, ok bool) {
	w := newRequestWalk(msg)
	resp = &fb.DeleteRecordsResponseT{}
	var t fb.DeleteRecordsTopic
	var p fb.DeleteRecordsPartition
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		name, code, ok := w.topic(tableEntryBytes, t.Name())
		if !ok {
			return nil, nil, false
		}
		tr := &fb.DeleteRecordsTopicResponseT{Name: name}
		resp.Topics = append(resp.Topics, tr)
		info, known := im.TopicByName(name)
		for j := range t.PartitionsLength() {
			if !w.partition() {
				return nil, nil, false
			}
			t.Partitions(&p, j)
			r := &fb.DeleteRecordsPartitionResponseT{Partition: p.Partition(), LowWatermark: -1, ErrorCode: code}
			tr.Partitions = append(tr.Partitions, r)
			if code != fb.ErrorCodeNone {
				continue
			}
			if !known || p.Partition() < 0 || int(p.Partition()) >= len(info.Partitions) {
				r.ErrorCode = fb.ErrorCodeUnknownTopicOrPartition
				continue
			}
			if p.Offset() < 0 && p.Offset() != -1 {
				r.ErrorCode = fb.ErrorCodeOffsetOutOfRange
				continue
			}
			works = append(works, &deleteRecordsWait{owner: ownerShard(name, p.Partition(), shards), topic: name,
				index: p.Partition(), offset: p.Offset(), result: r})
		}
	}
	return resp, works, true
}

// startDeleteRecords moves one partition's log start on its owning shard
// and answers at once when the low watermark is there already, or waits.
func (bs *brokerShard) startDeleteRecords(w *deleteRecordsWait) {
	r := w.result
	p := bs.leaderAt(w.topic, w.index)
	if p == nil {
		r.ErrorCode = bs.missingPartitionCode(w.topic, w.index)
		w.done()
		return
	}
	if p.offline() {
		r.ErrorCode = bs.storageErrorCode(p)
		w.done()
		return
	}
	hw := p.highWatermark()
	if w.offset == -1 {
		w.offset = hw
	}
	if w.offset > hw {
		// Kafka's rule: only committed records may be deleted, so that no
		// replica is asked to move its log start past what it may never
		// get.
		r.ErrorCode = fb.ErrorCodeOffsetOutOfRange
		w.done()
		return
	}
	w.topicID = p.rep.topicID
	p.trimTo = max(p.trimTo, w.offset)
	bs.applyTrim(p)
	if p.offline() {
		r.ErrorCode = bs.storageErrorCode(p)
		w.done()
		return
	}
	if bs.finishDeleteWait(w, nowMs(), len(bs.deleteWaits) >= deleteRecordsWaitsMax) {
		return
	}
	bs.deleteWaits = append(bs.deleteWaits, w)
}

// finishDeleteWait answers a wait whose partition's low watermark reached
// its offset, whose partition went away or lost its lead, or (force, or
// past its deadline) with REQUEST_TIMED_OUT; it reports whether it did.
func (bs *brokerShard) finishDeleteWait(w *deleteRecordsWait, now int64, force bool) bool {
	r := w.result
	p := bs.partitionAt(w.topic, w.index)
	switch {
	case p == nil || p.rep == nil || p.rep.topicID != w.topicID || p.closing:
		r.ErrorCode = bs.missingPartitionCode(w.topic, w.index)
	case p.offline():
		r.ErrorCode = bs.storageErrorCode(p)
	case !p.leads():
		r.ErrorCode = fb.ErrorCodeNotLeader
	default:
		lw := p.lowWatermark()
		switch {
		case lw >= w.offset:
			r.ErrorCode, r.LowWatermark = fb.ErrorCodeNone, lw
		case force || now >= w.deadlineMs:
			r.ErrorCode, r.LowWatermark = fb.ErrorCodeRequestTimedOut, lw
		default:
			return false
		}
	}
	w.done()
	return true
}

// tickDeleteWaits answers the waits that are over (all of them when the
// shard is stopping) and keeps the rest.
func (bs *brokerShard) tickDeleteWaits(now int64, force bool) {
	if len(bs.deleteWaits) == 0 {
		return
	}
	kept := bs.deleteWaits[:0]
	for _, w := range bs.deleteWaits {
		if !bs.finishDeleteWait(w, now, force) {
			kept = append(kept, w)
		}
	}
	clear(bs.deleteWaits[len(kept):])
	bs.deleteWaits = kept
}

// applyTrim moves a partition's log start towards trimTo: as far as its
// log reaches, and on a leader never past the high watermark. A log that
// refuses for now (a roll's syncs are in flight) is tried again on the
// next tick, as retention is.
func (bs *brokerShard) applyTrim(p *partition) {
	start := p.log.LogStart()
	if p.trimTo <= start || p.closing || p.offline() {
		return
	}
	to := min(p.trimTo, p.log.End())
	if p.leads() {
		to = min(to, p.highWatermark())
	}
	if to <= start {
		return
	}
	err := p.log.DeleteRecordsBefore(to)
	if errors.Is(err, ringlog.ErrBusy) {
		return
	}
	if err != nil {
		bs.b.log.Warn("delete records", "topic", p.topic, "partition", p.index, "to", to, "err", err)
		bs.checkStorage(p)
		return
	}
	bs.b.log.Debug("log start moved", "topic", p.topic, "partition", p.index, "from", start, "to", p.log.LogStart(),
		"leader", p.leads())
}

// followLeaderLogStart is a follower's side (Kafka's
// maybeIncrementLogStartOffset): a fetch answer's log start above this
// replica's moves this replica's, up to its own log end.
func (bs *brokerShard) followLeaderLogStart(p *partition, leaderStart int64) {
	if p.rep == nil || p.leads() || leaderStart <= p.log.LogStart() {
		return
	}
	p.trimTo = max(p.trimTo, leaderStart)
	bs.applyTrim(p)
}

// lowWatermark is the smallest log start of the leader and the followers
// in its ISR, as each last reported it in a fetch (-1 while one has not).
func (p *partition) lowWatermark() int64 {
	lw := p.log.LogStart()
	p.rep.followersBuf = p.rep.m.AppendFollowers(p.rep.followersBuf[:0])
	for _, f := range p.rep.followersBuf {
		if !f.InISR {
			continue
		}
		s, ok := p.rep.followerStart[f.ID]
		if !ok {
			return -1
		}
		lw = min(lw, s)
	}
	return lw
}

// noteFollowerStart records the log start a follower reported in a fetch,
// for replicas of the partition only (the map stays as small as the
// replica set, whatever ids requests carry).
func (p *partition) noteFollowerStart(id int32, start int64) {
	if p.rep == nil || !p.leads() || start < 0 {
		return
	}
	p.rep.followersBuf = p.rep.m.AppendFollowers(p.rep.followersBuf[:0])
	for _, f := range p.rep.followersBuf {
		if f.ID == id {
			if p.rep.followerStart == nil {
				p.rep.followerStart = map[int32]int64{}
			}
			p.rep.followerStart[id] = start
			return
		}
	}
}

// onOwnerLater runs fn on the shard that owns a partition (here, or there
// by message); fn calls done, on that shard, when it has finished, now or
// later, and then runs on this shard.
func (bs *brokerShard) onOwnerLater(owner int, fn func(obs *brokerShard, done func()), then func()) {
	if owner == bs.id {
		fn(bs, then)
		return
	}
	origin := bs.sh
	err := bs.b.srv.Shards()[owner].PostFrom(origin, func(osh *Shard) {
		obs := bs.b.shards[osh.ID()]
		obs.sh = osh
		fn(obs, func() {
			if err := origin.PostFrom(obs.sh, func(*Shard) { then() }); err != nil {
				bs.b.log.Error("result not delivered to its shard", "err", err)
			}
		})
	})
	if err != nil {
		then()
	}
}
