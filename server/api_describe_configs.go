package server

import (
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// DescribeConfigs: every topic config key of the asked topics (absent:
// every topic), from this broker's metadata image: the topic's value where
// it sets one, else the default with is_default, and read_only for the
// keys IncrementalAlterConfigs refuses. The image is the one the broker's
// partitions run by, so what it answers is what this broker applies.
func (bs *brokerShard) describeConfigs(req *Request) {
	m, err := bs.env.DescribeConfigsRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	resp, ok := planDescribeConfigs(&m, req.Message, bs.b.image.Load())
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	h := bs.header()
	bs.sh.Respond(req.Conn, req.Seq, bs.enc.Encode(&h, &fb.MessageT{Type: fb.MessageDescribeConfigsResponse, Value: resp}))
	bs.observeAnswer(h.ApiKey, bs.reqStart)
}

// planDescribeConfigs answers a DescribeConfigs request from im, topics in
// the request's order (a name asked twice answered once). ok is false
// when the request breaks the walk's bounds.
func planDescribeConfigs(m *fb.DescribeConfigsRequest, msg []byte, im *metadata.Image) (resp *fb.DescribeConfigsResponseT, ok bool) {
	resp = &fb.DescribeConfigsResponseT{Topics: []*fb.DescribeConfigsTopicT{}}
	if t := m.Table(); t.Offset(4) == 0 { // absent: every topic
		for _, t := range im.Topics() {
			resp.Topics = append(resp.Topics, describeTopicConfigs(t))
		}
		return resp, true
	}
	w := newRequestWalk(msg)
	for i := range m.TopicsLength() {
		raw := m.Topics(i)
		name, code, ok := w.topic(vectorSlotBytes, raw)
		if !ok {
			return nil, false
		}
		if code != fb.ErrorCodeNone {
			resp.Topics = append(resp.Topics, &fb.DescribeConfigsTopicT{Name: name, ErrorCode: code,
				ErrorMessage: metadata.CheckTopicName(raw).Error()})
			continue
		}
		if !w.claimTopic(name) {
			continue
		}
		t, known := im.TopicByName(name)
		if !known {
			resp.Topics = append(resp.Topics, &fb.DescribeConfigsTopicT{Name: name, ErrorCode: fb.ErrorCodeUnknownTopicOrPartition,
				ErrorMessage: "topic " + name + " does not exist"})
			continue
		}
		resp.Topics = append(resp.Topics, describeTopicConfigs(t))
	}
	return resp, true
}

// describeTopicConfigs lists every key for one topic, in key order.
func describeTopicConfigs(t metadata.TopicInfo) *fb.DescribeConfigsTopicT {
	keys := metadata.TopicConfigKeys()
	out := &fb.DescribeConfigsTopicT{Name: t.Name, Configs: make([]*fb.DescribedConfigT, 0, len(keys))}
	for _, k := range keys {
		c := &fb.DescribedConfigT{Name: k, ReadOnly: metadata.TopicConfigReadOnly(k)}
		if v, set := t.Configs[k]; set {
			c.Value = v
		} else {
			c.Value, _ = metadata.TopicConfigDefault(k)
			c.IsDefault = true
		}
		out.Configs = append(out.Configs, c)
	}
	return out
}
