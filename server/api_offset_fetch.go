package server

import (
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/group"
	"github.com/strata-db/strata/server/metadata"
)

// Vtable slots of the OffsetFetch fields whose absence means "all".
const (
	offsetFetchTopicsSlot    = 10
	topicPartitionsPartsSlot = 6
)

// OffsetFetch reads committed offsets (-1 where none). It writes nothing,
// yet its answer waits, like every coordinator answer, until what the
// coordinator wrote before it is acknowledged.
func (bs *brokerShard) offsetFetch(req *Request) {
	m, err := bs.env.OffsetFetchRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	h, ref, seq, start := bs.header(), req.Conn, req.Seq, bs.reqStart
	answer := func(obs *brokerShard, resp *fb.OffsetFetchResponseT) {
		groupAnswer(obs, h, ref, seq, start, &fb.MessageT{Type: fb.MessageOffsetFetchResponse, Value: resp})
	}
	fr, whole, ok := readOffsetFetch(&m)
	if !ok {
		answer(bs, &fb.OffsetFetchResponseT{ErrorCode: fb.ErrorCodeInvalidRequest})
		return
	}
	idx, code := bs.groupPartition(fr.GroupID)
	if code != fb.ErrorCodeNone {
		answer(bs, &fb.OffsetFetchResponseT{ErrorCode: code})
		return
	}
	bs.atCoordinator(idx, func(obs *brokerShard, gh *groupHost, code fb.ErrorCode, reply func(func(*brokerShard))) {
		if gh == nil {
			reply(func(o *brokerShard) { answer(o, &fb.OffsetFetchResponseT{ErrorCode: code}) })
			return
		}
		resp := fetchOffsets(gh.c, fr, whole)
		gh.answerAfter(func(code fb.ErrorCode) {
			if code != fb.ErrorCodeNone {
				resp = &fb.OffsetFetchResponseT{ErrorCode: code}
			}
			reply(func(o *brokerShard) { answer(o, resp) })
		})
	})
}

// readOffsetFetch copies a fetch out of the request. fr.Partitions is nil
// when the topic list is absent (every offset); whole lists the topics
// named without partitions (every offset of each).
func readOffsetFetch(m *fb.OffsetFetchRequest) (fr group.FetchRequest, whole []string, ok bool) {
	fr = group.FetchRequest{GroupID: string(m.GroupId()), MemberID: string(m.MemberId()), MemberEpoch: m.MemberEpoch()}
	if tbl := m.Table(); tbl.Offset(offsetFetchTopicsSlot) == 0 {
		return fr, nil, true
	}
	var t fb.GroupTopicPartitions
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		if tbl := t.Table(); tbl.Offset(topicPartitionsPartsSlot) == 0 {
			if metadata.CheckTopicName(t.Topic()) != nil {
				return fr, nil, false
			}
			whole = append(whole, string(t.Topic()))
		}
	}
	fr.Partitions, ok = readTopicPartitions(m.TopicsLength(), m.Topics)
	return fr, whole, ok
}

// fetchOffsets answers a fetch from the coordinator's state.
func fetchOffsets(c *group.Coordinator, fr group.FetchRequest, whole []string) *fb.OffsetFetchResponseT {
	got, code := c.FetchOffsets(fr)
	if code != group.ErrNone {
		return &fb.OffsetFetchResponseT{ErrorCode: groupCode(code)}
	}
	if len(whole) > 0 {
		all, _ := c.FetchOffsets(group.FetchRequest{GroupID: fr.GroupID, MemberID: fr.MemberID, MemberEpoch: fr.MemberEpoch})
		wanted := map[string]bool{}
		for _, t := range whole {
			wanted[t] = true
		}
		for _, o := range all {
			if wanted[o.Topic] {
				got = append(got, o)
			}
		}
	}
	resp := &fb.OffsetFetchResponseT{Topics: []*fb.OffsetFetchTopicResponseT{}}
	byTopic := map[string]*fb.OffsetFetchTopicResponseT{}
	for _, o := range got {
		tr := byTopic[o.Topic]
		if tr == nil {
			tr = &fb.OffsetFetchTopicResponseT{Name: o.Topic, Partitions: []*fb.OffsetFetchPartitionResponseT{}}
			byTopic[o.Topic] = tr
			resp.Topics = append(resp.Topics, tr)
		}
		tr.Partitions = append(tr.Partitions, &fb.OffsetFetchPartitionResponseT{Partition: o.Partition,
			CommittedOffset: o.Offset, CommittedMetadata: o.Metadata})
	}
	return resp
}
