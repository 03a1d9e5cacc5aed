package server

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// produceJob is one produce request in progress on the shard that received
// it. Its partitions are appended by their owning shards; the answer goes
// out when the last one reports back. Only the receiving shard touches it.
type produceJob struct {
	bs      *brokerShard
	ref     ConnRef
	seq     uint64
	h       schema.EnvelopeHeader
	acks    fb.Acks
	hold    Hold
	resp    *fb.ProduceResponseT
	results []*fb.ProducePartitionResponseT
	left    int
	start   time.Time
}

// Produce: every partition's frames are checked (length, version, CRC,
// max.message.bytes) without decoding a record, then appended as they are,
// sliced from the receive buffer, by the shard that owns the partition.
func (bs *brokerShard) produce(req *Request) {
	m, err := bs.env.ProduceRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	acks := m.Acks()
	if acks != fb.AcksAll && acks != fb.AcksNone && acks != fb.AcksLeader {
		bs.respondError(req, fb.ErrorCodeInvalidRequiredAcks)
		return
	}
	plan, ok := planProduce(&m, req.Message, bs.b.image.Load(), len(bs.b.shards))
	if !ok {
		bs.refuseProduce(req, acks)
		return
	}
	timeoutMs := int64(m.TimeoutMs())
	job := &produceJob{bs: bs, ref: req.Conn, seq: req.Seq, h: bs.header(), acks: acks, resp: plan.resp, results: plan.results, start: bs.reqStart}
	works := plan.works
	if len(works) == 0 {
		job.finish()
		return
	}
	job.hold = req.Retain()
	job.left = len(works)
	origin := bs.sh
	for _, w := range works {
		if w.owner == bs.id {
			bs.appendFrames(w.topic, w.index, w.frames, acks, timeoutMs, func(code fb.ErrorCode, base, logStart int64, msg string) {
				job.partDone(w.result, code, base, logStart, msg)
			})
			continue
		}
		owner := bs.b.srv.Shards()[w.owner]
		err := owner.PostFrom(origin, func(osh *Shard) {
			obs := bs.b.shards[osh.ID()]
			obs.sh = osh
			obs.appendFrames(w.topic, w.index, w.frames, acks, timeoutMs, func(code fb.ErrorCode, base, logStart int64, msg string) {
				if err := origin.PostFrom(osh, func(*Shard) { job.partDone(w.result, code, base, logStart, msg) }); err != nil {
					bs.b.log.Error("produce result not delivered to its shard", "err", err)
				}
			})
		})
		if err != nil {
			job.partDone(w.result, fb.ErrorCodeRequestTimedOut, -1, -1, "")
		}
	}
}

// refuseProduce answers a produce refused whole with INVALID_REQUEST. A
// producer that sent acks=0 reads no answer, so it gets none: its slot is
// filled empty and the connection closes once the answers before it are
// out, which is how it learns of the refusal (as in Kafka).
func (bs *brokerShard) refuseProduce(req *Request, acks fb.Acks) {
	if acks != fb.AcksNone {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	bs.sh.Respond(req.Conn, req.Seq, nil)
	bs.sh.CloseAfterAnswers(req.Conn)
	bs.observeAnswer(fb.ApiKeyProduce, bs.reqStart)
}

// producePlan is what the walk of a produce request yields: the answer,
// with one entry per partition in the request's order, and the appends.
type producePlan struct {
	resp    *fb.ProduceResponseT
	results []*fb.ProducePartitionResponseT
	works   []produceWork
}

// produceWork is one partition's append.
type produceWork struct {
	owner  int
	topic  string
	index  int32
	frames []byte
	result *fb.ProducePartitionResponseT
}

// planProduce walks a produce request (msg, as m reads it) against the
// image. ok is false when the request breaks the walk's bounds, names a
// partition twice, or has two parts whose frames share a byte (the broker
// patches frames in place: docs/protocol.md, "Request walk"); then nothing
// may be appended and the answer is INVALID_REQUEST.
func planProduce(m *fb.ProduceRequest, msg []byte, im *metadata.Image, shards int) (plan producePlan, ok bool) {
	w := newRequestWalk(msg)
	plan.resp = &fb.ProduceResponseT{}
	var t fb.ProduceTopic
	var p fb.ProducePartition
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		name, code, ok := w.topic(tableEntryBytes, t.Name())
		if !ok {
			return plan, false
		}
		tr := &fb.ProduceTopicResponseT{Name: name}
		plan.resp.Topics = append(plan.resp.Topics, tr)
		info, known := im.TopicByName(name)
		for j := range t.PartitionsLength() {
			if !w.partition() {
				return plan, false
			}
			t.Partitions(&p, j)
			if !w.frames(p.FramesBytes()) {
				return plan, false
			}
			r := &fb.ProducePartitionResponseT{Partition: p.Partition(), ErrorCode: code, BaseOffset: -1, LogAppendTimeMs: -1, LogStartOffset: -1}
			tr.Partitions = append(tr.Partitions, r)
			plan.results = append(plan.results, r)
			if code != fb.ErrorCodeNone {
				continue
			}
			if !w.claimPartition(name, p.Partition()) {
				return plan, false
			}
			if name == schema.OffsetsTopic {
				// Only the group coordinators write the offsets log: a
				// record from elsewhere could not be replayed.
				r.ErrorCode, r.ErrorMessage = fb.ErrorCodeInvalidTopic, "the offsets topic is written by the group coordinators only"
				continue
			}
			if !known || p.Partition() < 0 || int(p.Partition()) >= len(info.Partitions) {
				r.ErrorCode = fb.ErrorCodeUnknownTopicOrPartition
				continue
			}
			plan.works = append(plan.works, produceWork{owner: ownerShard(name, p.Partition(), shards), topic: name, index: p.Partition(), frames: p.FramesBytes(), result: r})
		}
	}
	return plan, w.framesDisjoint()
}

// partDone records one partition's result; the last one answers.
func (job *produceJob) partDone(r *fb.ProducePartitionResponseT, code fb.ErrorCode, base, logStart int64, msg string) {
	r.ErrorCode, r.BaseOffset, r.LogStartOffset, r.ErrorMessage = code, base, logStart, msg
	if job.left--; job.left == 0 {
		job.hold.Release()
		job.finish()
	}
}

func (job *produceJob) finish() {
	bs := job.bs
	defer bs.observeAnswer(fb.ApiKeyProduce, job.start)
	if job.acks == fb.AcksNone {
		// acks=0: the producer reads no answer; the slot is filled empty
		// so later answers keep their order.
		bs.sh.Respond(job.ref, job.seq, nil)
		return
	}
	bs.sh.Respond(job.ref, job.seq, bs.enc.Encode(&job.h, &fb.MessageT{Type: fb.MessageProduceResponse, Value: job.resp}))
}

// appendFrames checks one partition's frames on its owning shard and hands
// them to the log; done runs on that shard when they are durable under the
// flush policy (or at once, for an error).
func (bs *brokerShard) appendFrames(topic string, index int32, frames []byte, acks fb.Acks, timeoutMs int64,
	done func(code fb.ErrorCode, base, logStart int64, msg string)) {
	p := bs.leaderAt(topic, index)
	if p == nil {
		done(bs.missingPartitionCode(topic, index), -1, -1, "")
		return
	}
	if p.offline() {
		done(bs.storageErrorCode(p), -1, -1, "")
		return
	}
	if bs.b.disk.full() {
		// Refused before the replica machine gives it offsets: nothing
		// of it is appended (disk_space.go).
		code, msg := bs.b.disk.refusal()
		done(code, -1, -1, msg)
		return
	}
	if len(frames) == 0 {
		done(fb.ErrorCodeCorruptMessage, -1, -1, "")
		return
	}
	// Check every frame before appending any, so a bad frame leaves the
	// log untouched.
	var records uint32
	for rest := frames; len(rest) > 0; {
		if len(rest) >= 4 && int64(binary.LittleEndian.Uint32(rest)) > int64(p.limits.maxMessageBytes) {
			done(fb.ErrorCodeMessageTooLarge, -1, -1, "")
			return
		}
		n, err := schema.PeekFrameLength(rest, p.limits.maxMessageBytes)
		if err != nil || n > len(rest) {
			done(fb.ErrorCodeCorruptMessage, -1, -1, "")
			return
		}
		h, err := schema.CheckFrame(rest[:n])
		if err != nil {
			done(fb.ErrorCodeCorruptMessage, -1, -1, "")
			return
		}
		if c := p.limits.compression; c >= 0 && int(h.Compression()) != c {
			// compression.type names a codec, and the broker never
			// recompresses: a batch in another is refused whole.
			done(fb.ErrorCodeUnsupportedCompressionType, -1, -1, "")
			return
		}
		if p.limits.compacted {
			if msg := keylessRecord(rest[:n], topic, index); msg != "" {
				done(fb.ErrorCodeCorruptMessage, -1, -1, msg)
				return
			}
		}
		records += h.RecordCount
		rest = rest[n:]
	}
	p.startAppend(frames, records, acks, timeoutMs, done)
}

// keylessRecord decodes a checked frame's records for a compacted topic
// and names the first without a key, or returns "". Kafka refuses such a
// batch whole with INVALID_RECORD ("Compacted topic cannot accept message
// without key"); Strata answers CORRUPT_MESSAGE, its code for a record the
// broker will not store, with the reason, and appends nothing of the
// request's frames for the partition. The cleaner would keep a keyless
// record for ever: nothing can supersede it.
func keylessRecord(frame []byte, topic string, index int32) string {
	if h, err := schema.ParseFrameHeader(frame); err == nil && h.Compression() != schema.CompressionNone {
		// The broker does not decompress on the produce path: a
		// compressed frame vouches for its keys with AttrKeyed.
		if h.Attributes&schema.AttrKeyed == 0 {
			return fmt.Sprintf("a compressed record batch to %s/%d does not declare every record keyed (frame attribute 0x40); "+
				"a topic with cleanup.policy=compact keeps the latest record of each key, so every record needs one", topic, index)
		}
		return ""
	}
	var br schema.BatchReader
	if err := br.ResetCRCChecked(frame); err != nil {
		return fmt.Sprintf("record batch to %s/%d cannot be decoded: %v", topic, index, err)
	}
	var v schema.RecordView
	for i := 0; br.Next(&v); i++ {
		if v.Key == nil {
			return fmt.Sprintf("record %d of the batch to %s/%d has no key; a topic with cleanup.policy=compact keeps the latest record of each key, so every record needs one", i, topic, index)
		}
	}
	return ""
}

// nowMs is the broker's wall clock.
func nowMs() int64 { return time.Now().UnixMilli() }
