package server

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/group"
	"github.com/strata-db/strata/server/metadata"
)

// How a group request reaches its coordinator: the shard that receives it
// reads it into Go values, finds the group's partition of __consumer_offsets
// in the published image, and runs the call on the shard that owns that
// partition (by message, as produce reaches a partition on another shard);
// the answer comes back by message and goes out on the receiving shard.

// The offsets topic's defaults (Kafka's offsets.topic.num.partitions,
// offsets.topic.replication.factor and offsets.topic.segment.bytes).
const (
	OffsetsTopicPartitionsDefault        = 50
	OffsetsTopicReplicationFactorDefault = 3
	offsetsTopicSegmentBytes             = 100 << 20
	// offsetsTopicMaxMessageBytes bounds one coordinator batch: a large
	// group's new target assignment is one batch.
	offsetsTopicMaxMessageBytes = 8 << 20
	// offsetsTopicCreateTimeout bounds the proposal that creates it.
	offsetsTopicCreateTimeout = 30 * time.Second
)

// groupPartition is the offsets partition of a group in the published
// image: COORDINATOR_NOT_AVAILABLE while the topic does not exist (its
// creation is started), INVALID_REQUEST for a group id no coordinator
// accepts.
func (bs *brokerShard) groupPartition(groupID string) (int32, fb.ErrorCode) {
	if groupID == "" || len(groupID) > groupIDBytesMax {
		return -1, fb.ErrorCodeInvalidRequest
	}
	im := bs.b.image.Load()
	t, ok := im.TopicByName(schema.OffsetsTopic)
	if !ok || len(t.Partitions) == 0 {
		bs.b.ensureOffsetsTopic(im)
		return -1, fb.ErrorCodeCoordinatorNotAvailable
	}
	return schema.GroupPartition(groupID, int32(len(t.Partitions))), fb.ErrorCodeNone
}

// groupIDBytesMax is the longest group id (the coordinator's bound).
const groupIDBytesMax = 255

// atCoordinator runs work on the shard owning offsets partition idx, with
// that partition's coordinator or the code saying why there is none. work
// hands its finished answer to reply, which runs send on this shard.
func (bs *brokerShard) atCoordinator(idx int32, work func(obs *brokerShard, h *groupHost, code fb.ErrorCode, reply func(send func(*brokerShard)))) {
	origin := bs.sh
	owner := ownerShard(schema.OffsetsTopic, idx, len(bs.b.shards))
	if owner == bs.id {
		h, code := bs.groupHostFor(idx)
		work(bs, h, code, func(send func(*brokerShard)) { send(bs) })
		return
	}
	reply := func(from *Shard, send func(*brokerShard)) {
		err := origin.PostFrom(from, func(sh *Shard) {
			obs := bs.b.shards[sh.ID()]
			obs.sh = sh
			send(obs)
		})
		if err != nil {
			bs.b.log.Error("group answer not delivered to its shard", "err", err)
		}
	}
	err := bs.b.srv.Shards()[owner].PostFrom(origin, func(osh *Shard) {
		obs := bs.b.shards[osh.ID()]
		obs.sh = osh
		h, code := obs.groupHostFor(idx)
		work(obs, h, code, func(send func(*brokerShard)) { reply(osh, send) })
	})
	if err != nil {
		h := (*groupHost)(nil)
		work(bs, h, fb.ErrorCodeCoordinatorNotAvailable, func(send func(*brokerShard)) { send(bs) })
	}
}

// ensureOffsetsTopic has the controller create __consumer_offsets, once
// at a time: partitions as configured, replicas as configured but no more
// than the live brokers (Kafka waits for enough brokers instead; a single
// broker here gets a working topic of one replica), compacted, with
// min.insync.replicas min(2, replicas).
func (b *Broker) ensureOffsetsTopic(im *metadata.Image) {
	if !b.offsetsCreating.CompareAndSwap(false, true) {
		return
	}
	live := 0
	for _, br := range im.Brokers() {
		if !br.Fenced && !br.ShuttingDown {
			live++
		}
	}
	rf := min(int(b.cfg.OffsetsTopicReplicationFactor), max(live, 1))
	configs := map[string]string{
		metadata.ConfigPartitions:        strconv.Itoa(int(b.cfg.OffsetsTopicPartitions)),
		metadata.ConfigReplicationFactor: strconv.Itoa(rf),
		metadata.ConfigCleanupPolicy:     metadata.CleanupCompact,
		metadata.ConfigMinInsyncReplicas: strconv.Itoa(min(2, rf)),
		metadata.ConfigSegmentBytes:      strconv.Itoa(offsetsTopicSegmentBytes),
		metadata.ConfigMaxMessageBytes:   strconv.Itoa(offsetsTopicMaxMessageBytes),
	}
	session := b.session
	if !session.acquire() {
		b.offsetsCreating.Store(false)
		return
	}
	go func() {
		defer b.offsetsCreating.Store(false)
		defer session.release()
		ctx, cancel := context.WithTimeout(context.Background(), offsetsTopicCreateTimeout)
		defer cancel()
		end, err := session.q.propose(ctx, createTopicRequest(rpcCreateTopic, schema.OffsetsTopic, configs))
		var rej *metadata.Rejection
		switch {
		case err == nil:
			b.log.Info("created the offsets topic", "topic", schema.OffsetsTopic, "partitions", b.cfg.OffsetsTopicPartitions, "replication_factor", rf)
			if _, err := session.waitPublished(ctx, end); err != nil {
				b.log.Warn("offsets topic not yet in this broker's metadata", "err", err)
			}
		case errors.As(err, &rej) && codeOfMeta(err) == fb.ErrorCodeTopicAlreadyExists:
		default:
			b.log.Warn("offsets topic not created", "topic", schema.OffsetsTopic, "err", err)
		}
	}()
}

// groupCode maps a coordinator's refusal onto the wire.
func groupCode(e group.ErrorCode) fb.ErrorCode {
	switch e {
	case group.ErrNone:
		return fb.ErrorCodeNone
	case group.ErrInvalidRequest:
		return fb.ErrorCodeInvalidRequest
	case group.ErrInvalidRegularExpression:
		return fb.ErrorCodeInvalidRegularExpression
	case group.ErrUnknownMemberID:
		return fb.ErrorCodeUnknownMemberId
	case group.ErrFencedMemberEpoch:
		return fb.ErrorCodeFencedMemberEpoch
	case group.ErrUnreleasedInstanceID:
		return fb.ErrorCodeUnreleasedInstanceId
	case group.ErrGroupMaxSizeReached:
		return fb.ErrorCodeGroupMaxSizeReached
	case group.ErrStaleMemberEpoch:
		return fb.ErrorCodeStaleMemberEpoch
	case group.ErrGroupIDNotFound:
		return fb.ErrorCodeGroupIdNotFound
	case group.ErrUnsupportedAssignor:
		return fb.ErrorCodeUnsupportedAssignor
	case group.ErrOffsetMetadataTooLarge:
		return fb.ErrorCodeOffsetMetadataTooLarge
	case group.ErrNonEmptyGroup:
		return fb.ErrorCodeNonEmptyGroup
	}
	return fb.ErrorCodeUnknown
}

// groupPartitionsMax bounds the partitions one group request may list
// in all (the coordinator's own bound on owned and committed partitions),
// checked before anything is copied.
const groupPartitionsMax = 100_000

// readTopicPartitions copies a GroupTopicPartitions list; ok is false past
// groupPartitionsMax partitions in all or for a topic name that is not one.
func readTopicPartitions(n int, at func(*fb.GroupTopicPartitions, int) bool) (out []group.TopicPartition, ok bool) {
	var t fb.GroupTopicPartitions
	total := 0
	for i := range n {
		at(&t, i)
		total += t.PartitionsLength()
	}
	if total > groupPartitionsMax {
		return nil, false
	}
	out = make([]group.TopicPartition, 0, total)
	for i := range n {
		at(&t, i)
		name := t.Topic()
		if metadata.CheckTopicName(name) != nil {
			return nil, false
		}
		topic := string(name)
		for j := range t.PartitionsLength() {
			out = append(out, group.TopicPartition{Topic: topic, Partition: t.Partitions(j)})
		}
	}
	return out, true
}

// topicPartitionsT groups sorted partitions by topic for an answer.
func topicPartitionsT(tps []group.TopicPartition) []*fb.GroupTopicPartitionsT {
	out := []*fb.GroupTopicPartitionsT{}
	for _, tp := range tps {
		if n := len(out); n == 0 || out[n-1].Topic != tp.Topic {
			out = append(out, &fb.GroupTopicPartitionsT{Topic: tp.Topic, Partitions: []int32{}})
		}
		last := out[len(out)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
	return out
}

// groupAnswer sends m as the answer of the request (h, ref, seq) that
// arrived at start, on the shard obs.
func groupAnswer(obs *brokerShard, h schema.EnvelopeHeader, ref ConnRef, seq uint64, start time.Time, m *fb.MessageT) {
	obs.sh.Respond(ref, seq, obs.enc.Encode(&h, m))
	obs.observeAnswer(h.ApiKey, start)
}
