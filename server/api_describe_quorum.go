package server

import (
	"context"
	"errors"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/controller"
)

// DescribeQuorum: the controller quorum as its leader sees it (term,
// commit index, each voter's log end and lag), asked of the leader when
// this broker's voter does not lead. It answers NOT_CONTROLLER when no
// leader is known before the request times out.
func (bs *brokerShard) describeQuorum(req *Request) {
	if _, err := bs.env.DescribeQuorumRequest(); err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	h := bs.header()
	sh, ref, seq, start := bs.sh, req.Conn, req.Seq, bs.reqStart
	session := bs.b.session
	answer := func(resp *fb.DescribeQuorumResponseT) {
		if err := sh.Post(func(sh *Shard) {
			bs.sh = sh
			sh.Respond(ref, seq, bs.enc.Encode(&h, &fb.MessageT{Type: fb.MessageDescribeQuorumResponse, Value: resp}))
			bs.observeAnswer(h.ApiKey, start)
		}); err != nil {
			bs.b.log.Warn("describe quorum answer not delivered", "err", err)
		}
	}
	if !session.acquire() {
		answer(&fb.DescribeQuorumResponseT{ErrorCode: fb.ErrorCodeRequestTimedOut, LeaderId: -1})
		return
	}
	go func() {
		defer session.release()
		ctx, cancel := context.WithTimeout(context.Background(), metadataRequestTimeout)
		defer cancel()
		st, err := bs.b.quorum.status(ctx)
		answer(quorumResponse(st, err, bs.b.quorum.addrs == nil, bs.b.cfg.NodeID))
	}()
}

// quorumResponse builds the answer from the leader's status. A lone voter
// is the broker itself, so it reports the broker's node id.
func quorumResponse(st controller.Status, err error, lone bool, self int32) *fb.DescribeQuorumResponseT {
	var nl *controller.NotLeaderError
	switch {
	case errors.As(err, &nl):
		return &fb.DescribeQuorumResponseT{ErrorCode: fb.ErrorCodeNotController, LeaderId: -1}
	case err != nil:
		return &fb.DescribeQuorumResponseT{ErrorCode: codeOfPropose(err), LeaderId: -1}
	}
	voterID := func(id uint64) int32 {
		if lone {
			return self
		}
		return int32(id)
	}
	resp := &fb.DescribeQuorumResponseT{LeaderId: voterID(st.Leader), Term: st.Term, CommitIndex: st.Commit,
		LogEnd: st.LastIndex, MetadataOffset: st.MetadataOffset}
	for _, v := range st.Voters {
		resp.Voters = append(resp.Voters, &fb.QuorumVoterT{VoterId: voterID(v.ID), LogEnd: v.LogEnd, Lag: v.Lag, Active: v.Active})
	}
	return resp
}
