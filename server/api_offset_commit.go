package server

import (
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/group"
)

// OffsetCommit: the coordinator checks the member's epoch and ownership
// and records the offsets; the answer goes out once they are acknowledged.
func (bs *brokerShard) offsetCommit(req *Request) {
	m, err := bs.env.OffsetCommitRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	h, ref, seq, start := bs.header(), req.Conn, req.Seq, bs.reqStart
	answer := func(obs *brokerShard, resp *fb.OffsetCommitResponseT) {
		groupAnswer(obs, h, ref, seq, start, &fb.MessageT{Type: fb.MessageOffsetCommitResponse, Value: resp})
	}
	cr, shape, ok := readCommit(&m)
	if !ok {
		answer(bs, commitResponse(shape, fb.ErrorCodeInvalidRequest, nil))
		return
	}
	idx, code := bs.groupPartition(cr.GroupID)
	if code != fb.ErrorCodeNone {
		answer(bs, commitResponse(shape, code, nil))
		return
	}
	bs.atCoordinator(idx, func(obs *brokerShard, gh *groupHost, code fb.ErrorCode, reply func(func(*brokerShard))) {
		if gh == nil {
			reply(func(o *brokerShard) { answer(o, commitResponse(shape, code, nil)) })
			return
		}
		if commitBatchBytesMax(cr) > gh.p.limits.maxMessageBytes {
			// Refused before the coordinator sees it: a batch the log
			// would refuse drops the coordinator, and a client sending
			// the commit again would have it reload the log each time.
			reply(func(o *brokerShard) { answer(o, commitResponse(shape, fb.ErrorCodeMessageTooLarge, nil)) })
			return
		}
		now := nowMs()
		r, recs := gh.c.CommitOffsets(cr, now)
		obs.writeGroupRecords(gh, recs, now)
		gh.answerAfter(func(code fb.ErrorCode) {
			var resp *fb.OffsetCommitResponseT
			switch {
			case code != fb.ErrorCodeNone:
				resp = commitResponse(shape, code, nil)
			case r.Error != group.ErrNone:
				resp = commitResponse(shape, groupCode(r.Error), nil)
			default:
				resp = commitResponse(shape, fb.ErrorCodeNone, r.Partitions)
			}
			reply(func(o *brokerShard) { answer(o, resp) })
		})
	})
}

// commitShape is the request's topics and partitions, in order, for the
// answer.
type commitShape struct {
	topics []string
	parts  [][]int32
}

// readCommit copies a commit out of the request; ok is false past
// groupPartitionsMax partitions.
func readCommit(m *fb.OffsetCommitRequest) (cr group.CommitRequest, shape commitShape, ok bool) {
	cr = group.CommitRequest{GroupID: string(m.GroupId()), MemberID: string(m.MemberId()), MemberEpoch: m.MemberEpoch()}
	var t fb.OffsetCommitTopic
	var p fb.OffsetCommitPartition
	total := 0
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		total += t.PartitionsLength()
	}
	if total > groupPartitionsMax {
		return cr, shape, false
	}
	cr.Offsets = make([]group.CommitOffset, 0, total)
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		topic := string(t.Name())
		shape.topics = append(shape.topics, topic)
		parts := make([]int32, 0, t.PartitionsLength())
		for j := range t.PartitionsLength() {
			t.Partitions(&p, j)
			parts = append(parts, p.Partition())
			cr.Offsets = append(cr.Offsets, group.CommitOffset{TopicPartition: group.TopicPartition{Topic: topic, Partition: p.Partition()},
				Offset: p.CommittedOffset(), Metadata: string(p.CommittedMetadata())})
		}
		shape.parts = append(shape.parts, parts)
	}
	return cr, shape, true
}

// commitResponse answers every partition of the request: with codes (one
// per partition, in order) or, when codes is nil, with code for all.
func commitResponse(shape commitShape, code fb.ErrorCode, codes []group.ErrorCode) *fb.OffsetCommitResponseT {
	resp := &fb.OffsetCommitResponseT{ErrorCode: code, Topics: []*fb.OffsetCommitTopicResponseT{}}
	k := 0
	for i, topic := range shape.topics {
		tr := &fb.OffsetCommitTopicResponseT{Name: topic, Partitions: []*fb.OffsetCommitPartitionResponseT{}}
		for _, p := range shape.parts[i] {
			c := code
			if codes != nil {
				c = groupCode(codes[k])
			}
			k++
			tr.Partitions = append(tr.Partitions, &fb.OffsetCommitPartitionResponseT{Partition: p, ErrorCode: c})
		}
		resp.Topics = append(resp.Topics, tr)
	}
	return resp
}

// Upper bounds of the encoding of a commit's records (group.AppendKey and
// AppendValue, varints at their longest) and of the batch around them
// (schema.BatchBuilder's per-record and per-body overheads, the frame
// header), so that a commit whose batch could pass the partition's
// max.message.bytes is refused whole.
const (
	commitRecordBytesMax = 96 + 2 + 2 + 2 + 5 + 1 + 10 + 2 + 10
	commitBatchFixedMax  = 64 + 64 + 96 + 2 + 2 + 1 + 5 + 10 + 10 + 10
)

func commitBatchBytesMax(cr group.CommitRequest) int {
	n := commitBatchFixedMax + len(cr.GroupID)
	for _, o := range cr.Offsets {
		n += commitRecordBytesMax + len(cr.GroupID) + len(o.Topic) + len(o.Metadata)
	}
	return n
}
