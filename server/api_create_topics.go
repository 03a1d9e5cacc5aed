package server

import (
	"strconv"
	"sync/atomic"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// topicsPerRequestMax bounds the topics one CreateTopics or DeleteTopics
// request may name.
const topicsPerRequestMax = 1000

// CreateTopics: each topic is created by the metadata layer in turn; the
// answer goes out once every shard serves the new partitions.
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
	h := bs.header()
	sh, ref, seq := bs.sh, req.Conn, req.Seq
	answer := func() {
		resp := &fb.CreateTopicsResponseT{}
		for _, w := range wants {
			resp.Topics = append(resp.Topics, w.result)
		}
		if err := sh.Post(func(sh *Shard) {
			bs.sh = sh
			sh.Respond(ref, seq, bs.enc.Encode(&h, &fb.MessageT{Type: fb.MessageCreateTopicsResponse, Value: resp}))
		}); err != nil {
			bs.b.log.Warn("create topics answer not delivered", "err", err)
		}
	}
	if len(wants) == 0 {
		answer()
		return
	}
	var left atomic.Int32 // replies arrive on the metadata goroutine
	left.Store(int32(len(wants)))
	for _, w := range wants {
		err := bs.b.meta.submit(metaCommand{
			run: func(ctl *metadata.Controller, nowMs int64) ([]metadata.Record, error) {
				if validateOnly {
					return nil, validateTopic(ctl, w.name, w.configs)
				}
				return createTopicCommand(w.name, w.configs)(ctl, nowMs)
			},
			reply: func(err error) {
				w.result.ErrorCode = codeOfMeta(err)
				if err != nil {
					w.result.ErrorMessage = err.Error()
				}
				if left.Add(-1) == 0 {
					answer()
				}
			},
		})
		if err != nil {
			w.result.ErrorCode = fb.ErrorCodeRequestTimedOut
			w.result.ErrorMessage = err.Error()
			if left.Add(-1) == 0 {
				answer()
			}
		}
	}
}

// validateTopic checks a creation without making it, on a copy of the
// state, so validate_only leaves nothing behind.
func validateTopic(ctl *metadata.Controller, name string, configs map[string]string) error {
	snap := ctl.State().AppendSnapshot(nil)
	st, err := metadata.Restore(snap)
	if err != nil {
		return &schema.CodeError{Code: fb.ErrorCodeUnknown}
	}
	_, err = createTopicCommand(name, configs)(metadata.NewController(st, metadata.Config{}, 0), 0)
	return err
}
