package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/controller"
	"github.com/strata-db/strata/server/metadata"
)

// proposalsPerRequestMax bounds the metadata commands one CreateTopics or
// DeleteTopics request has in flight at the controller: each waits for a
// Raft commit, and a request naming thousands of topics needs no more
// goroutines than this to keep the controller busy.
const proposalsPerRequestMax = 16

// CreateTopics: each topic is created by the controller leader (this
// broker's voter, or the leader it forwards to); the answer goes out once
// this broker's shards serve the image that holds the new topics.
func (bs *brokerShard) createTopics(req *Request) {
	m, err := bs.env.CreateTopicsRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	wants, ok := planCreateTopics(&m, req.Message)
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
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
	if bs.b.disk.full() && !validateOnly {
		// Its logs could not grow: refused rather than "created" with
		// partitions that take no writes (disk_space.go).
		code, msg := bs.b.disk.refusal()
		for _, w := range wants {
			if w.result.ErrorCode == fb.ErrorCodeNone {
				w.result.ErrorCode, w.result.ErrorMessage = code, msg
			}
		}
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
		eachBounded(len(wants), proposalsPerRequestMax, func(i int) {
			w := wants[i]
			if w.result.ErrorCode != fb.ErrorCodeNone {
				return // refused by the walk: never proposed
			}
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

// topicWant is one topic of a CreateTopics request and its result.
type topicWant struct {
	name    string
	configs map[string]string
	result  *fb.CreatableTopicResultT
}

// planCreateTopics walks a CreateTopics request (msg, as m reads it): one
// want per topic, in the request's order. A topic whose name breaks the
// naming rules is answered INVALID_TOPIC, its name not copied, and never
// proposed. ok is false when the request breaks the walk's bounds or names
// a topic twice: it changes metadata, so no topic of it may be created.
func planCreateTopics(m *fb.CreateTopicsRequest, msg []byte) (wants []*topicWant, ok bool) {
	w := newRequestWalk(msg)
	var t fb.CreatableTopic
	var c fb.TopicConfig
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		name, code, ok := w.topic(tableEntryBytes, t.Name())
		if !ok {
			return nil, false
		}
		want := &topicWant{name: name}
		want.result = &fb.CreatableTopicResultT{Name: name, ErrorCode: code, NumPartitions: t.NumPartitions(), ReplicationFactor: t.ReplicationFactor()}
		wants = append(wants, want)
		if code != fb.ErrorCodeNone {
			want.result.ErrorMessage = metadata.CheckTopicName(t.Name()).Error()
			continue
		}
		want.configs = map[string]string{}
		if !w.claimTopic(name) {
			return nil, false
		}
		for j := range t.ConfigsLength() {
			if !w.entry() {
				return nil, false
			}
			t.Configs(&c, j)
			key, ok := w.str(c.Name())
			if !ok {
				return nil, false
			}
			value, ok := w.str(c.Value())
			if !ok {
				return nil, false
			}
			want.configs[key] = value
		}
		if n := t.NumPartitions(); n != -1 {
			want.configs[metadata.ConfigPartitions] = strconv.Itoa(int(n))
		}
		if rf := t.ReplicationFactor(); rf != -1 {
			want.configs[metadata.ConfigReplicationFactor] = strconv.Itoa(int(rf))
		}
	}
	return wants, true
}

// eachBounded runs fn(0) to fn(n-1) on at most limit goroutines at a time
// and returns when every call has.
func eachBounded(n, limit int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, limit) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
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
