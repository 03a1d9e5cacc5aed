package server

import (
	"fmt"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// CreatePartitions: each topic grows to its count through the controller
// leader (metadata.CreatePartitions), which places the new partitions'
// replicas as creation does; the brokers that host them open them when
// their image shows them, and producers see the new count at their next
// metadata refresh. A count below the topic's is INVALID_PARTITIONS: a
// partition is never removed.
func (bs *brokerShard) createPartitions(req *Request) {
	m, err := bs.env.CreatePartitionsRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	results, counts, ok := planCreatePartitions(&m, req.Message)
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	kind := rpcCreatePartitions
	if m.ValidateOnly() {
		kind = rpcValidateCreatePartitions
	}
	cmds := make([]metaCommand, len(results))
	for i, r := range results {
		cmds[i] = metaCommand{code: &r.ErrorCode, message: &r.ErrorMessage}
		if r.ErrorCode == fb.ErrorCodeNone {
			c := createTopicRequest(kind, r.Name, nil) // draws the placement seed
			c.Count = counts[i]
			cmds[i].req = c
		}
	}
	bs.runMetaCommands(req, cmds, m.TimeoutMs(), "create partitions", func() *fb.MessageT {
		return &fb.MessageT{Type: fb.MessageCreatePartitionsResponse, Value: &fb.CreatePartitionsResponseT{Topics: results}}
	})
}

// planCreatePartitions walks a CreatePartitions request: one result (and
// count) per topic, in the request's order. ok is false when the request
// breaks the walk's bounds or names a topic twice.
func planCreatePartitions(m *fb.CreatePartitionsRequest, msg []byte) (results []*fb.CreatePartitionsTopicResultT, counts []int, ok bool) {
	w := newRequestWalk(msg)
	var t fb.CreatePartitionsTopic
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		name, code, ok := w.topic(tableEntryBytes, t.Name())
		if !ok {
			return nil, nil, false
		}
		r := &fb.CreatePartitionsTopicResultT{Name: name, ErrorCode: code}
		results = append(results, r)
		counts = append(counts, int(t.Count()))
		switch {
		case code != fb.ErrorCodeNone:
			r.ErrorMessage = metadata.CheckTopicName(t.Name()).Error()
		case !w.claimTopic(name):
			return nil, nil, false
		case t.Count() < 1:
			r.ErrorCode, r.ErrorMessage = fb.ErrorCodeInvalidPartitions, fmt.Sprintf("count %d is not a partition count", t.Count())
		}
	}
	return results, counts, true
}
