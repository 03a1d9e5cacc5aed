package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/controller"
	"github.com/strata-db/strata/server/metadata"
)

// topicsPerRequestMax bounds the topics one CreateTopics or DeleteTopics
// request may name.
const topicsPerRequestMax = 1000

// CreateTopics: each topic is created by the controller leader (this
// broker's voter, or the leader it forwards to); the answer goes out once
// this broker's shards serve the image that holds the new topics.
func (bs *brokerShard) createTopics(req *Request) {
	m, err := bs.env.CreateTopicsRequest()
	if err != nil || m.TopicsLength() > topicsPerRequestMax {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	type want struct {
		name    string
		configs map[string]string
		result  *fb.CreatableTopicResultT
	}
	wants := make([]*want, m.TopicsLength())
	var t fb.CreatableTopic
	var c fb.TopicConfig
	for i := range wants {
		m.Topics(&t, i)
		w := &want{name: string(t.Name()), configs: map[string]string{}}
		w.result = &fb.CreatableTopicResultT{Name: w.name, NumPartitions: t.NumPartitions(), ReplicationFactor: t.ReplicationFactor()}
		for j := range t.ConfigsLength() {
			t.Configs(&c, j)
			w.configs[string(c.Name())] = string(c.Value())
		}
		if n := t.NumPartitions(); n != -1 {
			w.configs[metadata.ConfigPartitions] = strconv.Itoa(int(n))
		}
		if rf := t.ReplicationFactor(); rf != -1 {
			w.configs[metadata.ConfigReplicationFactor] = strconv.Itoa(int(rf))
		}
		wants[i] = w
	}
	validateOnly := m.ValidateOnly()
	timeout := metadataRequestTimeout
	if ms := m.TimeoutMs(); ms > 0 {
		timeout = min(timeout, time.Duration(ms)*time.Millisecond)
	}
	h := bs.header()
	sh, ref, seq, start := bs.sh, req.Conn, req.Seq, bs.reqStart
	answer := func() {
		resp := &fb.CreateTopicsResponseT{}
		for _, w := range wants {
			resp.Topics = append(resp.Topics, w.result)
		}
		if err := sh.Post(func(sh *Shard) {
			bs.sh = sh
			sh.Respond(ref, seq, bs.enc.Encode(&h, &fb.MessageT{Type: fb.MessageCreateTopicsResponse, Value: resp}))
			bs.observeAnswer(h.ApiKey, start)
		}); err != nil {
			bs.b.log.Warn("create topics answer not delivered", "err", err)
		}
	}
	if len(wants) == 0 {
		answer()
		return
	}
	session := bs.b.session
	if !session.acquire() {
		for _, w := range wants {
			w.result.ErrorCode, w.result.ErrorMessage = fb.ErrorCodeRequestTimedOut, "too many metadata requests in flight"
		}
		answer()
		return
	}
	// The commands go to the controller leader, off the shard: each waits
	// for a Raft commit.
	go func() {
		defer session.release()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		ends := make([]uint64, len(wants))
		var wg sync.WaitGroup
		for i, w := range wants {
			wg.Go(func() {
				kind := rpcCreateTopic
				if validateOnly {
					kind = rpcValidateCreateTopic
				}
				end, err := session.q.propose(ctx, createTopicRequest(kind, w.name, w.configs))
				ends[i] = end
				w.result.ErrorCode = codeOfPropose(err)
				if err != nil {
					w.result.ErrorMessage = err.Error()
				}
			})
		}
		wg.Wait()
		// Answer once this broker serves what was created, so that the
		// client's next Metadata here shows it.
		if end := slices.Max(ends); end > 0 {
			if _, err := session.waitPublished(ctx, end); err != nil {
				bs.b.log.Warn("created topics not yet in this broker's metadata", "err", err)
			}
		}
		answer()
	}()
}

// createTopicRequest draws the topic's id and placement seed: random, so
// that a topic deleted and created again gets a new id, and drawn here,
// so that the controller's apply stays deterministic.
func createTopicRequest(kind, name string, configs map[string]string) *rpcRequest {
	req := &rpcRequest{Kind: kind, Topic: name, Configs: configs}
	rand.Read(req.TopicID[:])
	var seed [4]byte
	rand.Read(seed[:])
	req.StartIndex = binary.LittleEndian.Uint32(seed[:])
	return req
}

// codeOfPropose maps the outcome of a metadata command to its wire error
// code.
func codeOfPropose(err error) fb.ErrorCode {
	var rej *metadata.Rejection
	var nl *controller.NotLeaderError
	switch {
	case err == nil:
		return fb.ErrorCodeNone
	case errors.As(err, &rej):
		return codeOfMeta(err)
	case errors.As(err, &nl):
		return fb.ErrorCodeNotController
	case errors.Is(err, controller.ErrOutcomeUnknown), errors.Is(err, controller.ErrBusy),
		errors.Is(err, context.DeadlineExceeded):
		return fb.ErrorCodeRequestTimedOut
	}
	return fb.ErrorCodeUnknown
}
