package server

import (
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// FindCoordinator: the group's coordinator is the leader of its partition
// of __consumer_offsets in the published image. The first lookup that
// finds the topic missing has it created; until its partition has a live
// leader the answer is COORDINATOR_NOT_AVAILABLE (retriable).
func (bs *brokerShard) findCoordinator(req *Request) {
	m, err := bs.env.FindCoordinatorRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	resp := &fb.FindCoordinatorResponseT{NodeId: -1}
	idx, code := bs.groupPartition(string(m.GroupId()))
	if code == fb.ErrorCodeNone {
		code = coordinatorOf(bs.b.image.Load(), idx, resp)
	}
	resp.ErrorCode = code
	bs.respond(req, bs.header(), &fb.MessageT{Type: fb.MessageFindCoordinatorResponse, Value: resp})
}

// coordinatorOf fills resp with the leader of offsets partition idx.
func coordinatorOf(im *metadata.Image, idx int32, resp *fb.FindCoordinatorResponseT) fb.ErrorCode {
	pi, ok := im.Partition(schema.OffsetsTopic, idx)
	if !ok || pi.Leader == metadata.NoLeader {
		return fb.ErrorCodeCoordinatorNotAvailable
	}
	br, ok := im.Broker(pi.Leader)
	if !ok || br.Fenced || len(br.Listeners) == 0 {
		return fb.ErrorCodeCoordinatorNotAvailable
	}
	l := br.Listeners[0]
	resp.NodeId, resp.Host, resp.Port = br.ID, l.Host, l.Port
	return fb.ErrorCodeNone
}
