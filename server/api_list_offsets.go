package server

import (
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// ListOffsets: per partition, the log start (-2), the log end (-1), or the
// first offset whose record timestamp is at or after the given time.
func (bs *brokerShard) listOffsets(req *Request) {
	m, err := bs.env.ListOffsetsRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	resp, works, ok := planListOffsets(&m, req.Message, bs.b.image.Load(), len(bs.b.shards))
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	h, ref, seq, start := bs.header(), req.Conn, req.Seq, bs.reqStart
	left := len(works)
	answer := func(sh *Shard) {
		sh.Respond(ref, seq, bs.enc.Encode(&h, &fb.MessageT{Type: fb.MessageListOffsetsResponse, Value: resp}))
		bs.observeAnswer(h.ApiKey, start)
	}
	if left == 0 {
		answer(bs.sh)
		return
	}
	for _, w := range works {
		bs.onOwner(w.owner, func(obs *brokerShard) {
			obs.lookupOffset(w.topic, w.index, w.ts, w.epoch, w.result)
		}, func() {
			if left--; left == 0 {
				answer(bs.sh)
			}
		})
	}
}

// listOffsetsWork is one partition's lookup.
type listOffsetsWork struct {
	owner  int
	topic  string
	index  int32
	ts     int64
	epoch  int32 // the caller's leader epoch (KIP-320), -1: unknown
	result *fb.ListOffsetsPartitionResponseT
}

// planListOffsets walks a list-offsets request (msg, as m reads it)
// against the image: the answer, in the request's order, and the lookups.
// ok is false when the request breaks the walk's bounds.
func planListOffsets(m *fb.ListOffsetsRequest, msg []byte, im *metadata.Image, shards int) (resp *fb.ListOffsetsResponseT, works []listOffsetsWork, ok bool) {
	w := newRequestWalk(msg)
	resp = &fb.ListOffsetsResponseT{}
	var t fb.ListOffsetsTopic
	var p fb.ListOffsetsPartition
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		name, code, ok := w.topic(tableEntryBytes, t.Name())
		if !ok {
			return nil, nil, false
		}
		tr := &fb.ListOffsetsTopicResponseT{Name: name}
		resp.Topics = append(resp.Topics, tr)
		info, known := im.TopicByName(name)
		for j := range t.PartitionsLength() {
			if !w.partition() {
				return nil, nil, false
			}
			t.Partitions(&p, j)
			r := &fb.ListOffsetsPartitionResponseT{Partition: p.Partition(), ErrorCode: code, Timestamp: -1, Offset: -1, LeaderEpoch: -1}
			tr.Partitions = append(tr.Partitions, r)
			if code != fb.ErrorCodeNone {
				continue
			}
			if !known || p.Partition() < 0 || int(p.Partition()) >= len(info.Partitions) {
				r.ErrorCode = fb.ErrorCodeUnknownTopicOrPartition
				continue
			}
			r.LeaderEpoch = info.Partitions[p.Partition()].LeaderEpoch
			works = append(works, listOffsetsWork{owner: ownerShard(name, p.Partition(), shards), topic: name, index: p.Partition(), ts: p.Timestamp(),
				epoch: p.CurrentLeaderEpoch(), result: r})
		}
	}
	return resp, works, true
}

// lookupOffset answers one partition on its owning shard.
func (bs *brokerShard) lookupOffset(topic string, index int32, ts int64, epoch int32, r *fb.ListOffsetsPartitionResponseT) {
	p := bs.leaderAt(topic, index)
	if p == nil {
		r.ErrorCode = bs.missingPartitionCode(topic, index)
		return
	}
	if p.offline() {
		r.ErrorCode = bs.storageErrorCode(p)
		return
	}
	if code := p.checkLeaderEpoch(epoch); code != fb.ErrorCodeNone {
		r.ErrorCode = code
		return
	}
	r.LeaderEpoch = p.rep.m.LeaderEpoch()
	switch ts {
	case schema.ListOffsetsEarliest:
		r.Offset = p.log.LogStart()
		return
	case schema.ListOffsetsLatest:
		r.Offset = p.highWatermark()
		return
	}
	if ts < 0 {
		r.ErrorCode = fb.ErrorCodeInvalidTimestamp
		return
	}
	// The time index finds the first frame whose newest record is at or
	// after ts; its records are then read to find the first such record.
	// This reads one frame into memory: a control operation, not the data
	// path.
	end := p.highWatermark()
	spans, err := p.log.ReadByTime(ts, 1, end)
	if err != nil {
		r.ErrorCode = fb.ErrorCodeStorageError
		return
	}
	if len(spans) == 0 {
		r.Offset = end // no record that late: the end, as Kafka answers
		return
	}
	buf, err := p.log.ReadSpans(nil, spans[:1])
	if err != nil {
		r.ErrorCode = fb.ErrorCodeStorageError
		return
	}
	var br schema.BatchReader
	if err := br.Reset(buf); err != nil {
		r.ErrorCode = fb.ErrorCodeCorruptMessage
		return
	}
	var v schema.RecordView
	for br.Next(&v) {
		if v.TimestampMs >= ts {
			r.Offset, r.Timestamp = v.Offset, v.TimestampMs
			return
		}
	}
	r.Offset = spans[0].NextOffset
}

// onOwner runs fn on the shard that owns a partition (here, or there and
// back by message), then then on this shard.
func (bs *brokerShard) onOwner(owner int, fn func(obs *brokerShard), then func()) {
	if owner == bs.id {
		fn(bs)
		then()
		return
	}
	origin := bs.sh
	err := bs.b.srv.Shards()[owner].PostFrom(origin, func(osh *Shard) {
		obs := bs.b.shards[osh.ID()]
		obs.sh = osh
		fn(obs)
		if err := origin.PostFrom(osh, func(*Shard) { then() }); err != nil {
			bs.b.log.Error("result not delivered to its shard", "err", err)
		}
	})
	if err != nil {
		then()
	}
}
