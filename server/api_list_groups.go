package server

import (
	"slices"

	"github.com/strata-db/strata/schema/fb"
)

// ListGroups: the groups this broker coordinates, gathered from every
// shard's coordinators (a message to each); each coordinator's part waits
// until what it wrote before is acknowledged.
func (bs *brokerShard) listGroups(req *Request) {
	m, err := bs.env.ListGroupsRequest()
	if err != nil || m.StatesFilterLength() > groupsPerRequestMax {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	states := map[string]bool{}
	for i := range m.StatesFilterLength() {
		states[string(m.StatesFilter(i))] = true
	}
	h, ref, seq, start := bs.header(), req.Conn, req.Seq, bs.reqStart
	resp := &fb.ListGroupsResponseT{Groups: []*fb.ListedGroupT{}}
	shards := bs.b.srv.Shards()
	left := len(shards)
	done := func(obs *brokerShard, part []*fb.ListedGroupT) {
		resp.Groups = append(resp.Groups, part...)
		if left--; left == 0 {
			slices.SortFunc(resp.Groups, func(a, b *fb.ListedGroupT) int {
				if a.GroupId < b.GroupId {
					return -1
				}
				if a.GroupId > b.GroupId {
					return 1
				}
				return 0
			})
			groupAnswer(obs, h, ref, seq, start, &fb.MessageT{Type: fb.MessageListGroupsResponse, Value: resp})
		}
	}
	origin := bs.sh
	for _, sh := range shards {
		back := func(from *Shard, part []*fb.ListedGroupT) {
			if from == origin {
				done(bs, part)
				return
			}
			if err := origin.PostFrom(from, func(osh *Shard) {
				obs := bs.b.shards[osh.ID()]
				obs.sh = osh
				done(obs, part)
			}); err != nil {
				bs.b.log.Error("group list not delivered to its shard", "err", err)
			}
		}
		run := func(osh *Shard) {
			obs := bs.b.shards[osh.ID()]
			obs.sh = osh
			obs.listShardGroups(states, func(part []*fb.ListedGroupT) { back(osh, part) })
		}
		if sh == origin {
			run(origin)
			continue
		}
		if err := sh.PostFrom(origin, run); err != nil {
			done(bs, nil)
		}
	}
}

// listShardGroups lists the groups of this shard's coordinators, once
// each coordinator's earlier writes are acknowledged.
func (bs *brokerShard) listShardGroups(states map[string]bool, done func([]*fb.ListedGroupT)) {
	var part []*fb.ListedGroupT
	left := len(bs.groups) + 1
	finish := func() {
		if left--; left == 0 {
			done(part)
		}
	}
	for _, gh := range bs.groups {
		if gh.c == nil {
			finish()
			continue
		}
		var mine []*fb.ListedGroupT
		for _, g := range gh.c.ListGroups() {
			if len(states) == 0 || states[g.State] {
				mine = append(mine, &fb.ListedGroupT{GroupId: g.ID, GroupState: g.State})
			}
		}
		gh.answerAfter(func(code fb.ErrorCode) {
			if code == fb.ErrorCodeNone {
				part = append(part, mine...)
			}
			finish()
		})
	}
	finish()
}
