package server

import (
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
	"sync/atomic"
)

// DeleteTopics: each topic is removed by the metadata layer; its
// partitions are closed and their folders deleted by their shards before
// the answer goes out.
func (bs *brokerShard) deleteTopics(req *Request) {
	m, err := bs.env.DeleteTopicsRequest()
	if err != nil || m.TopicNamesLength() > topicsPerRequestMax {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	results := make([]*fb.DeletableTopicResultT, m.TopicNamesLength())
	for i := range results {
		results[i] = &fb.DeletableTopicResultT{Name: string(m.TopicNames(i))}
	}
	h := bs.header()
	sh, ref, seq := bs.sh, req.Conn, req.Seq
	answer := func() {
		if err := sh.Post(func(sh *Shard) {
			bs.sh = sh
			resp := &fb.DeleteTopicsResponseT{Topics: results}
			sh.Respond(ref, seq, bs.enc.Encode(&h, &fb.MessageT{Type: fb.MessageDeleteTopicsResponse, Value: resp}))
		}); err != nil {
			bs.b.log.Warn("delete topics answer not delivered", "err", err)
		}
	}
	if len(results) == 0 {
		answer()
		return
	}
	var left atomic.Int32 // replies arrive on the metadata goroutine
	left.Store(int32(len(results)))
	for _, r := range results {
		done := func(err error) {
			r.ErrorCode = codeOfMeta(err)
			if err != nil {
				r.ErrorMessage = err.Error()
			}
			if left.Add(-1) == 0 {
				answer()
			}
		}
		if err := bs.b.meta.submit(metaCommand{
			run: func(ctl *metadata.Controller, nowMs int64) ([]metadata.Record, error) {
				return deleteTopicCommand(r.Name)(ctl, nowMs)
			},
			reply: done,
		}); err != nil {
			r.ErrorCode = fb.ErrorCodeRequestTimedOut
			r.ErrorMessage = err.Error()
			if left.Add(-1) == 0 {
				answer()
			}
		}
	}
}
