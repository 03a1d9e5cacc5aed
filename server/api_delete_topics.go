package server

import (
	"context"
	"slices"
	"sync"

	"github.com/strata-db/strata/schema/fb"
)

// DeleteTopics: each topic is removed by the controller leader; this
// broker's shards close its partitions and delete their folders before
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
	sh, ref, seq, start := bs.sh, req.Conn, req.Seq, bs.reqStart
	answer := func() {
		if err := sh.Post(func(sh *Shard) {
			bs.sh = sh
			resp := &fb.DeleteTopicsResponseT{Topics: results}
			sh.Respond(ref, seq, bs.enc.Encode(&h, &fb.MessageT{Type: fb.MessageDeleteTopicsResponse, Value: resp}))
			bs.observeAnswer(h.ApiKey, start)
		}); err != nil {
			bs.b.log.Warn("delete topics answer not delivered", "err", err)
		}
	}
	if len(results) == 0 {
		answer()
		return
	}
	session := bs.b.session
	if !session.acquire() {
		for _, r := range results {
			r.ErrorCode, r.ErrorMessage = fb.ErrorCodeRequestTimedOut, "too many metadata requests in flight"
		}
		answer()
		return
	}
	go func() {
		defer session.release()
		ctx, cancel := context.WithTimeout(context.Background(), metadataRequestTimeout)
		defer cancel()
		ends := make([]uint64, len(results))
		var wg sync.WaitGroup
		for i, r := range results {
			wg.Go(func() {
				end, err := session.q.propose(ctx, &rpcRequest{Kind: rpcDeleteTopic, Topic: r.Name})
				ends[i] = end
				r.ErrorCode = codeOfPropose(err)
				if err != nil {
					r.ErrorMessage = err.Error()
				}
			})
		}
		wg.Wait()
		// Answer once this broker's shards have closed the partitions.
		if end := slices.Max(ends); end > 0 {
			if _, err := session.waitPublished(ctx, end); err != nil {
				bs.b.log.Warn("deleted topics still in this broker's metadata", "err", err)
			}
		}
		answer()
	}()
}
