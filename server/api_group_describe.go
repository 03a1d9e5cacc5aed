package server

import (
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// groupsPerRequestMax bounds the groups one ConsumerGroupDescribe or
// DeleteGroups names: each is a message to its coordinator's shard.
const groupsPerRequestMax = 1000

// ConsumerGroupDescribe: each group is described by its coordinator (a
// message to the shard that holds it); the answer goes out once every one
// has answered.
func (bs *brokerShard) groupDescribe(req *Request) {
	m, err := bs.env.ConsumerGroupDescribeRequest()
	if err != nil || m.GroupIdsLength() > groupsPerRequestMax {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	h, ref, seq, start := bs.header(), req.Conn, req.Seq, bs.reqStart
	resp := &fb.ConsumerGroupDescribeResponseT{Groups: make([]*fb.DescribedGroupT, m.GroupIdsLength())}
	left := len(resp.Groups)
	done := func(obs *brokerShard) {
		if left--; left == 0 {
			groupAnswer(obs, h, ref, seq, start, &fb.MessageT{Type: fb.MessageConsumerGroupDescribeResponse, Value: resp})
		}
	}
	if left == 0 {
		left = 1
		done(bs)
		return
	}
	for i := range m.GroupIdsLength() {
		id := string(m.GroupIds(i))
		idx, code := bs.groupPartition(id)
		if code != fb.ErrorCodeNone {
			resp.Groups[i] = &fb.DescribedGroupT{GroupId: id, ErrorCode: code, Members: []*fb.DescribedGroupMemberT{}}
			done(bs)
			continue
		}
		bs.atCoordinator(idx, func(obs *brokerShard, gh *groupHost, code fb.ErrorCode, reply func(func(*brokerShard))) {
			if gh == nil {
				d := &fb.DescribedGroupT{GroupId: id, ErrorCode: code, Members: []*fb.DescribedGroupMemberT{}}
				reply(func(o *brokerShard) { resp.Groups[i] = d; done(o) })
				return
			}
			d := describedGroup(gh, id)
			gh.answerAfter(func(code fb.ErrorCode) {
				if code != fb.ErrorCodeNone {
					d = &fb.DescribedGroupT{GroupId: id, ErrorCode: code, Members: []*fb.DescribedGroupMemberT{}}
				}
				reply(func(o *brokerShard) { resp.Groups[i] = d; done(o) })
			})
		})
	}
}

func describedGroup(gh *groupHost, id string) *fb.DescribedGroupT {
	g, ok := gh.c.DescribeGroup(id)
	if !ok {
		return &fb.DescribedGroupT{GroupId: id, ErrorCode: fb.ErrorCodeGroupIdNotFound, GroupState: schema.GroupStateDead,
			Members: []*fb.DescribedGroupMemberT{}}
	}
	d := &fb.DescribedGroupT{GroupId: id, GroupState: g.State, GroupEpoch: g.Epoch, AssignmentEpoch: g.AssignmentEpoch,
		AssignorName: g.Assignor, Members: []*fb.DescribedGroupMemberT{}}
	for _, mem := range g.Members {
		client := gh.clients[groupMemberKey{id, mem.ID}]
		d.Members = append(d.Members, &fb.DescribedGroupMemberT{MemberId: mem.ID, InstanceId: mem.InstanceID,
			ClientId: client.id, ClientHost: client.host, MemberEpoch: mem.Epoch, SubscribedTopicNames: mem.Topics, SubscribedTopicRegex: mem.Regex,
			ServerAssignor: mem.Assignor, Assignment: topicPartitionsT(mem.Assigned),
			PendingRevocation: topicPartitionsT(mem.Pending), TargetAssignment: topicPartitionsT(mem.Target)})
	}
	return d
}
