package server

import (
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// Metadata: the unfenced brokers, the controller leader, and for the asked topics
// (all when the list is absent) their partitions with leader, epoch,
// replicas, ISR, ELR and offline replicas, from the image this broker's shards serve.
func (bs *brokerShard) metadata(req *Request) {
	m, err := bs.env.MetadataRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	resp, ok := metadataAnswer(&m, req.Message, bs.b.image.Load(), bs.b.quorum.leaderID(bs.b.cfg.NodeID))
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	bs.respond(req, bs.header(), &fb.MessageT{Type: fb.MessageMetadataResponse, Value: resp})
}

// metadataAnswer is the answer to a metadata request (msg, as m reads it)
// from the image. Asked topics are walked like every request's; a name
// asked twice is answered once, so the answer is bounded by the request
// and the image together. ok is false when the request breaks the walk's
// bounds.
func metadataAnswer(m *fb.MetadataRequest, msg []byte, im *metadata.Image, controllerID int32) (*fb.MetadataResponseT, bool) {
	resp := &fb.MetadataResponseT{ControllerId: controllerID, ClusterId: clusterID}
	for _, br := range im.Brokers() {
		if len(br.Listeners) == 0 {
			continue
		}
		l := br.Listeners[0]
		resp.Brokers = append(resp.Brokers, &fb.BrokerT{NodeId: br.ID, Host: l.Host, Port: l.Port, Rack: br.Rack,
			Fenced: br.Fenced || br.ShuttingDown})
	}
	if m.TopicsLength() == 0 && !hasTopicList(m) {
		for _, t := range im.Topics() {
			resp.Topics = append(resp.Topics, topicMetadata(im, t))
		}
		return resp, true
	}
	w := newRequestWalk(msg)
	for i := range m.TopicsLength() {
		name, code, ok := w.topic(vectorSlotBytes, m.Topics(i))
		if !ok {
			return nil, false
		}
		if code != fb.ErrorCodeNone {
			resp.Topics = append(resp.Topics, &fb.TopicMetadataT{Name: name, ErrorCode: code})
			continue
		}
		if !w.claimTopic(name) {
			continue
		}
		t, ok := im.TopicByName(name)
		if !ok {
			resp.Topics = append(resp.Topics, &fb.TopicMetadataT{Name: name, ErrorCode: fb.ErrorCodeUnknownTopicOrPartition})
			continue
		}
		resp.Topics = append(resp.Topics, topicMetadata(im, t))
	}
	return resp, true
}

// clusterID names the cluster. Every cluster has this one name until the
// controller quorum records one at formation.
const clusterID = "strata-local"

// hasTopicList tells an absent topic list (every topic) from an empty one
// (none).
func hasTopicList(m *fb.MetadataRequest) bool {
	t := m.Table()
	return t.Offset(4) != 0
}

func topicMetadata(im *metadata.Image, t metadata.TopicInfo) *fb.TopicMetadataT {
	tm := &fb.TopicMetadataT{Name: t.Name}
	for _, p := range t.Partitions {
		tm.Partitions = append(tm.Partitions, &fb.PartitionMetadataT{
			Partition: p.Partition, LeaderId: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: p.Replicas, Isr: p.ISR, Elr: p.ELR, LastKnownElr: p.LastKnownELR,
			OfflineReplicas: offlineReplicas(im, p.Replicas),
		})
	}
	return tm
}

// offlineReplicas are the replicas whose brokers are not live: fenced,
// shutting down, or not registered. Such a replica neither leads nor
// follows, whatever the ISR still says.
func offlineReplicas(im *metadata.Image, replicas []int32) []int32 {
	var out []int32
	for _, id := range replicas {
		if b, ok := im.Broker(id); !ok || b.Fenced || b.ShuttingDown {
			out = append(out, id)
		}
	}
	return out
}
