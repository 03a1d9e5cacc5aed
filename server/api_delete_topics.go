package server

import (
	"context"
	"slices"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// DeleteTopics: each topic is removed by the controller leader; this
// broker's shards close its partitions and delete their folders before
// the answer goes out.
func (bs *brokerShard) deleteTopics(req *Request) {
	m, err := bs.env.DeleteTopicsRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	results, ok := planDeleteTopics(&m, req.Message)
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
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
		eachBounded(len(results), proposalsPerRequestMax, func(i int) {
			r := results[i]
			if r.ErrorCode != fb.ErrorCodeNone {
				return // refused by the walk: never proposed
			}
			end, err := session.q.propose(ctx, &rpcRequest{Kind: rpcDeleteTopic, Topic: r.Name})
			ends[i] = end
			r.ErrorCode = codeOfPropose(err)
			if err != nil {
				r.ErrorMessage = err.Error()
			}
		})
		// Answer once this broker's shards have closed the partitions.
		if end := slices.Max(ends); end > 0 {
			if _, err := session.waitPublished(ctx, end); err != nil {
				bs.b.log.Warn("deleted topics still in this broker's metadata", "err", err)
			}
		}
		answer()
	}()
}

// planDeleteTopics walks a DeleteTopics request (msg, as m reads it): one
// result per name, in the request's order. A name that breaks the naming
// rules is answered INVALID_TOPIC, not copied, and never proposed. ok is
// false when the request breaks the walk's bounds or names a topic twice.
func planDeleteTopics(m *fb.DeleteTopicsRequest, msg []byte) (results []*fb.DeletableTopicResultT, ok bool) {
	w := newRequestWalk(msg)
	for i := range m.TopicNamesLength() {
		raw := m.TopicNames(i)
		name, code, ok := w.topic(vectorSlotBytes, raw)
		if !ok {
			return nil, false
		}
		r := &fb.DeletableTopicResultT{Name: name, ErrorCode: code}
		if code != fb.ErrorCodeNone {
			r.ErrorMessage = metadata.CheckTopicName(raw).Error()
		} else if !w.claimTopic(name) {
			return nil, false
		}
		results = append(results, r)
	}
	return results, true
}
