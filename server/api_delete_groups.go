package server

import (
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/group"
)

// DeleteGroups: each group's coordinator deletes it and its offsets (a
// group with members is refused with NON_EMPTY_GROUP); the answer goes out
// once every deletion is acknowledged.
func (bs *brokerShard) deleteGroups(req *Request) {
	m, err := bs.env.DeleteGroupsRequest()
	if err != nil || m.GroupIdsLength() > groupsPerRequestMax {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	h, ref, seq, start := bs.header(), req.Conn, req.Seq, bs.reqStart
	resp := &fb.DeleteGroupsResponseT{Results: make([]*fb.DeletableGroupResultT, m.GroupIdsLength())}
	left := len(resp.Results)
	done := func(obs *brokerShard) {
		if left--; left == 0 {
			groupAnswer(obs, h, ref, seq, start, &fb.MessageT{Type: fb.MessageDeleteGroupsResponse, Value: resp})
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
			resp.Results[i] = &fb.DeletableGroupResultT{GroupId: id, ErrorCode: code}
			done(bs)
			continue
		}
		bs.atCoordinator(idx, func(obs *brokerShard, gh *groupHost, code fb.ErrorCode, reply func(func(*brokerShard))) {
			if gh == nil {
				reply(func(o *brokerShard) {
					resp.Results[i] = &fb.DeletableGroupResultT{GroupId: id, ErrorCode: code}
					done(o)
				})
				return
			}
			now := nowMs()
			gcode, recs := gh.c.DeleteGroup(id)
			obs.writeGroupRecords(gh, recs, now)
			gh.answerAfter(func(code fb.ErrorCode) {
				if code == fb.ErrorCodeNone && gcode != group.ErrNone {
					code = groupCode(gcode)
				}
				reply(func(o *brokerShard) {
					resp.Results[i] = &fb.DeletableGroupResultT{GroupId: id, ErrorCode: code}
					done(o)
				})
			})
		})
	}
}
