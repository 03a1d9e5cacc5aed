package server

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// IncrementalAlterConfigs: each topic's changes go to the controller
// leader as one command (metadata.AlterTopicConfigs), which checks them
// as creation checks configs and commits one TopicConfig record, so that
// a topic's changes apply all together or not at all; every broker then
// applies the new configs to the partitions it hosts (reconfigure in
// topic_config.go). validate_only runs the same checks on a copy of the
// leader's state and changes nothing. The answer goes out once this
// broker's shards serve the image that holds the change.
func (bs *brokerShard) incrementalAlterConfigs(req *Request) {
	m, err := bs.env.IncrementalAlterConfigsRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	wants, ok := planAlterConfigs(&m, req.Message)
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	kind := rpcAlterConfigs
	if m.ValidateOnly() {
		kind = rpcValidateAlterConfigs
	}
	cmds := make([]metaCommand, len(wants))
	for i, w := range wants {
		cmds[i] = metaCommand{code: &w.result.ErrorCode, message: &w.result.ErrorMessage}
		if w.result.ErrorCode == fb.ErrorCodeNone {
			cmds[i].req = &rpcRequest{Kind: kind, Topic: w.result.Name, Set: w.set, Delete: w.delete}
		}
	}
	bs.runMetaCommands(req, cmds, m.TimeoutMs(), "alter configs", func() *fb.MessageT {
		resp := &fb.IncrementalAlterConfigsResponseT{}
		for _, w := range wants {
			resp.Topics = append(resp.Topics, w.result)
		}
		return &fb.MessageT{Type: fb.MessageIncrementalAlterConfigsResponse, Value: resp}
	})
}

// alterWant is one topic of an IncrementalAlterConfigs request.
type alterWant struct {
	set    map[string]string
	delete []string
	result *fb.AlterConfigsTopicResultT
}

// planAlterConfigs walks an IncrementalAlterConfigs request: one want per
// topic, in the request's order. A topic whose name breaks the naming
// rules, or that names a key twice or an operation Strata does not know,
// is answered with an error and never proposed. ok is false when the
// request breaks the walk's bounds or names a topic twice.
func planAlterConfigs(m *fb.IncrementalAlterConfigsRequest, msg []byte) (wants []*alterWant, ok bool) {
	w := newRequestWalk(msg)
	var t fb.AlterConfigsTopic
	var c fb.AlterableConfig
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		name, code, ok := w.topic(tableEntryBytes, t.Name())
		if !ok {
			return nil, false
		}
		want := &alterWant{set: map[string]string{}, result: &fb.AlterConfigsTopicResultT{Name: name, ErrorCode: code}}
		wants = append(wants, want)
		if code != fb.ErrorCodeNone {
			want.result.ErrorMessage = metadata.CheckTopicName(t.Name()).Error()
			continue
		}
		if !w.claimTopic(name) {
			return nil, false
		}
		seen := map[string]bool{}
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
			if want.result.ErrorCode != fb.ErrorCodeNone {
				continue
			}
			switch {
			case seen[key]:
				want.result.ErrorCode, want.result.ErrorMessage = fb.ErrorCodeInvalidConfig, fmt.Sprintf("%s is named twice", key)
			case c.Op() == fb.AlterConfigOpSet:
				want.set[key] = value
			case c.Op() == fb.AlterConfigOpDelete:
				want.delete = append(want.delete, key)
			default:
				want.result.ErrorCode = fb.ErrorCodeInvalidConfig
				want.result.ErrorMessage = fmt.Sprintf("%s: operation %d is not set (0) or delete (1)", key, c.Op())
			}
			seen[key] = true
		}
	}
	return wants, true
}

// metaCommand is one controller command of a request, and where its
// outcome goes. A nil req was refused before proposing.
type metaCommand struct {
	req     *rpcRequest
	code    *fb.ErrorCode
	message *string
}

// runMetaCommands proposes a request's commands to the controller leader
// off the shard (each waits for a Raft commit), at most
// proposalsPerRequestMax at a time, then waits until this broker's shards
// serve the image that holds them, so that the caller's next request here
// sees the change, and answers with what response builds.
func (bs *brokerShard) runMetaCommands(req *Request, cmds []metaCommand, timeoutMs int32, what string, response func() *fb.MessageT) {
	timeout := metadataRequestTimeout
	if timeoutMs > 0 {
		timeout = min(timeout, time.Duration(timeoutMs)*time.Millisecond)
	}
	h := bs.header()
	sh, ref, seq, start := bs.sh, req.Conn, req.Seq, bs.reqStart
	answer := func() {
		msg := response()
		if err := sh.Post(func(sh *Shard) {
			bs.sh = sh
			sh.Respond(ref, seq, bs.enc.Encode(&h, msg))
			bs.observeAnswer(h.ApiKey, start)
		}); err != nil {
			bs.b.log.Warn(what+" answer not delivered", "err", err)
		}
	}
	proposed := slices.IndexFunc(cmds, func(c metaCommand) bool { return c.req != nil }) >= 0
	if !proposed {
		answer()
		return
	}
	session := bs.b.session
	if !session.acquire() {
		for _, c := range cmds {
			if c.req != nil {
				*c.code, *c.message = fb.ErrorCodeRequestTimedOut, "too many metadata requests in flight"
			}
		}
		answer()
		return
	}
	go func() {
		defer session.release()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		ends := make([]uint64, len(cmds))
		eachBounded(len(cmds), proposalsPerRequestMax, func(i int) {
			c := cmds[i]
			if c.req == nil {
				return
			}
			end, err := session.q.propose(ctx, c.req)
			ends[i] = end
			*c.code = codeOfPropose(err)
			if err != nil {
				*c.message = err.Error()
			}
		})
		if end := slices.Max(ends); end > 0 {
			if _, err := session.waitPublished(ctx, end); err != nil {
				bs.b.log.Warn(what+": the change is not yet in this broker's metadata", "err", err)
			}
		}
		answer()
	}()
}
