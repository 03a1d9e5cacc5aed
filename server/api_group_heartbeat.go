package server

import (
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/group"
)

// heartbeatSubscribedNamesSlot is the vtable slot of
// ConsumerGroupHeartbeatRequest.subscribed_topic_names: absent means the
// subscription is unchanged, present and empty subscribes to nothing.
const heartbeatSubscribedNamesSlot = 14

// ConsumerGroupHeartbeat: one step of a member (join, leave, report what it
// owns, learn its assignment), run by the group's coordinator; the answer
// goes out once the records of the step, and every batch written before
// it, are acknowledged.
func (bs *brokerShard) groupHeartbeat(req *Request) {
	m, err := bs.env.ConsumerGroupHeartbeatRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	h, ref, seq, start := bs.header(), req.Conn, req.Seq, bs.reqStart
	client := groupClient{id: string(bs.env.ClientId()), host: req.PeerHost()}
	answer := func(obs *brokerShard, resp *fb.ConsumerGroupHeartbeatResponseT) {
		groupAnswer(obs, h, ref, seq, start, &fb.MessageT{Type: fb.MessageConsumerGroupHeartbeatResponse, Value: resp})
	}
	hb, ok := readHeartbeat(&m)
	if !ok {
		answer(bs, &fb.ConsumerGroupHeartbeatResponseT{ErrorCode: fb.ErrorCodeInvalidRequest})
		return
	}
	idx, code := bs.groupPartition(hb.GroupID)
	if code != fb.ErrorCodeNone {
		answer(bs, &fb.ConsumerGroupHeartbeatResponseT{ErrorCode: code})
		return
	}
	bs.atCoordinator(idx, func(obs *brokerShard, gh *groupHost, code fb.ErrorCode, reply func(func(*brokerShard))) {
		if gh == nil {
			reply(func(o *brokerShard) { answer(o, &fb.ConsumerGroupHeartbeatResponseT{ErrorCode: code}) })
			return
		}
		now := nowMs()
		r, recs := gh.c.Heartbeat(hb, now)
		obs.writeGroupRecords(gh, recs, now)
		if r.Error == group.ErrNone {
			gh.noteClient(hb.GroupID, r.MemberID, client)
		}
		resp := &fb.ConsumerGroupHeartbeatResponseT{ErrorCode: groupCode(r.Error), MemberId: r.MemberID,
			MemberEpoch: r.MemberEpoch, HeartbeatIntervalMs: int32(r.HeartbeatIntervalMs)}
		if r.Error == group.ErrNone {
			resp.Assignment = topicPartitionsT(r.Assignment)
		}
		gh.answerAfter(func(code fb.ErrorCode) {
			if code != fb.ErrorCodeNone {
				resp = &fb.ConsumerGroupHeartbeatResponseT{ErrorCode: code}
			}
			reply(func(o *brokerShard) { answer(o, resp) })
		})
	})
}

// readHeartbeat copies a heartbeat out of the request; ok is false for one
// that lists more partitions than a member may own or names a topic that
// cannot exist.
func readHeartbeat(m *fb.ConsumerGroupHeartbeatRequest) (hb group.HeartbeatRequest, ok bool) {
	hb = group.HeartbeatRequest{GroupID: string(m.GroupId()), MemberID: string(m.MemberId()),
		InstanceID: string(m.InstanceId()), MemberEpoch: m.MemberEpoch(), ServerAssignor: string(m.ServerAssignor()),
		RebalanceTimeoutMs: int64(m.RebalanceTimeoutMs())}
	t := m.Table()
	names, regex := t.Offset(heartbeatSubscribedNamesSlot) != 0, len(m.SubscribedTopicRegex()) > 0
	if names || regex {
		if m.SubscribedTopicNamesLength() > groupPartitionsMax {
			return hb, false
		}
		sub := &group.Subscription{Regex: string(m.SubscribedTopicRegex()), Topics: []string{}}
		for i := range m.SubscribedTopicNamesLength() {
			sub.Topics = append(sub.Topics, string(m.SubscribedTopicNames(i)))
		}
		hb.Subscription = sub
	}
	owned, ok := readTopicPartitions(m.OwnedTopicPartitionsLength(), m.OwnedTopicPartitions)
	if !ok {
		return hb, false
	}
	if len(owned) > 0 {
		hb.Owned = owned
	}
	return hb, true
}
