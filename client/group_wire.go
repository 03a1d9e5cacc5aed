package client

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// The consumer-group requests, one round trip each (no retries: the
// group member retries through its state machine, the admin calls
// through retryCall). docs/consumer-groups.md describes the wire.

// coordinatorOnce asks any broker which broker coordinates group.
func (c *Client) coordinatorOnce(ctx context.Context, group string) (string, error) {
	var addr string
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageFindCoordinatorRequest, (&fb.FindCoordinatorRequestT{GroupId: group}).Pack(b)
	}
	err := c.request(ctx, fb.ApiKeyFindCoordinator, build, func(env *schema.Envelope) error {
		r, err := env.FindCoordinatorResponse()
		if err != nil {
			return err
		}
		if r.ErrorCode() != fb.ErrorCodeNone {
			return fmt.Errorf("find the coordinator of group %q: %w", group,
				&schema.CodeError{Code: r.ErrorCode(), Message: string(r.ErrorMessage())})
		}
		if r.NodeId() < 0 || len(r.Host()) == 0 {
			return fmt.Errorf("find the coordinator of group %q: the answer names no broker", group)
		}
		addr = net.JoinHostPort(string(r.Host()), strconv.Itoa(int(r.Port())))
		return nil
	})
	return addr, err
}

// coordinator is coordinatorOnce retried inside RetryTimeoutMs
// (COORDINATOR_NOT_AVAILABLE while the offsets topic is being created, a
// lost connection, ...).
func (c *Client) coordinator(ctx context.Context, group string) (string, error) {
	var addr string
	err := c.retryCall(ctx, "find the coordinator of group "+strconv.Quote(group), func(ctx context.Context) error {
		var err error
		addr, err = c.coordinatorOnce(ctx, group)
		return err
	})
	return addr, err
}

// groupRequest sends one request to a group's coordinator at addr.
func (c *Client) groupRequest(ctx context.Context, addr string, api fb.ApiKey, build buildFunc, parse func(env *schema.Envelope) error) error {
	conn, err := c.connTo(ctx, addr)
	if err != nil {
		return err
	}
	return conn.roundTrip(ctx, api, build, parse)
}

// heartbeatOnce sends one ConsumerGroupHeartbeat.
func (c *Client) heartbeatOnce(ctx context.Context, addr, group string, hb memberHeartbeat) (memberAnswer, error) {
	req := &fb.ConsumerGroupHeartbeatRequestT{GroupId: group, MemberId: hb.memberID, InstanceId: hb.instanceID,
		MemberEpoch: hb.epoch, RebalanceTimeoutMs: hb.rebalanceTimeoutMs, ServerAssignor: hb.assignor,
		OwnedTopicPartitions: groupParts(hb.owned)}
	if hb.epoch >= 0 {
		// The subscription goes whole in every heartbeat: the coordinator
		// compares it with what it has, so a heartbeat after a lost answer
		// needs no memory of what was sent before.
		if hb.regex != "" {
			req.SubscribedTopicRegex = hb.regex
		} else {
			req.SubscribedTopicNames = append([]string{}, hb.topics...)
		}
	}
	var a memberAnswer
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageConsumerGroupHeartbeatRequest, req.Pack(b)
	}
	err := c.groupRequest(ctx, addr, fb.ApiKeyConsumerGroupHeartbeat, build, func(env *schema.Envelope) error {
		r, err := env.ConsumerGroupHeartbeatResponse()
		if err != nil {
			return err
		}
		t := r.UnPack()
		a = memberAnswer{memberID: t.MemberId, epoch: t.MemberEpoch, intervalMs: int64(t.HeartbeatIntervalMs),
			assignment: flatParts(t.Assignment)}
		if t.ErrorCode != fb.ErrorCodeNone {
			a.code = schema.ErrorName(t.ErrorCode)
			a.cause = &schema.CodeError{Code: t.ErrorCode, Message: t.ErrorMessage}
		}
		return nil
	})
	return a, err
}

// groupParts is partitions (sorted) as the wire groups them by topic.
func groupParts(parts []TopicPartition) []*fb.GroupTopicPartitionsT {
	var out []*fb.GroupTopicPartitionsT
	for _, tp := range parts {
		if n := len(out); n > 0 && out[n-1].Topic == tp.Topic {
			out[n-1].Partitions = append(out[n-1].Partitions, tp.Partition)
			continue
		}
		out = append(out, &fb.GroupTopicPartitionsT{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	return out
}

// flatParts is the wire's partitions by topic as a sorted list.
func flatParts(in []*fb.GroupTopicPartitionsT) []TopicPartition {
	var out []TopicPartition
	for _, t := range in {
		for _, p := range t.Partitions {
			out = append(out, TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	slices.SortFunc(out, compareTP)
	return slices.Compact(out)
}

// groupMember names the member a commit or offset fetch is made for; the
// zero value is an admin request (no member, epoch -1).
type groupMember struct {
	id    string
	epoch int32
}

func (m groupMember) wireEpoch() int32 {
	if m.id == "" {
		return -1
	}
	return m.epoch
}

// commitOnce sends one OffsetCommit and returns each partition's error
// (nil where it was accepted); err is an error of the whole request.
func (c *Client) commitOnce(ctx context.Context, addr, group string, m groupMember, offsets map[TopicPartition]int64) (map[TopicPartition]error, error) {
	parts := make([]TopicPartition, 0, len(offsets))
	for tp := range offsets {
		parts = append(parts, tp)
	}
	slices.SortFunc(parts, compareTP)
	req := &fb.OffsetCommitRequestT{GroupId: group, MemberId: m.id, MemberEpoch: m.wireEpoch()}
	for _, tp := range parts {
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Name != tp.Topic {
			req.Topics = append(req.Topics, &fb.OffsetCommitTopicT{Name: tp.Topic})
		}
		t := req.Topics[len(req.Topics)-1]
		t.Partitions = append(t.Partitions, &fb.OffsetCommitPartitionT{Partition: tp.Partition, CommittedOffset: offsets[tp]})
	}
	out := make(map[TopicPartition]error, len(parts))
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageOffsetCommitRequest, req.Pack(b)
	}
	err := c.groupRequest(ctx, addr, fb.ApiKeyOffsetCommit, build, func(env *schema.Envelope) error {
		r, err := env.OffsetCommitResponse()
		if err != nil {
			return err
		}
		t := r.UnPack()
		if t.ErrorCode != fb.ErrorCodeNone {
			return &schema.CodeError{Code: t.ErrorCode, Message: t.ErrorMessage}
		}
		for _, rt := range t.Topics {
			for _, rp := range rt.Partitions {
				tp := TopicPartition{Topic: rt.Name, Partition: rp.Partition}
				if _, asked := offsets[tp]; asked {
					out[tp] = codeErr(rp.ErrorCode)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, tp := range parts {
		if _, ok := out[tp]; !ok {
			out[tp] = fmt.Errorf("commit %s/%d: the coordinator gave no answer for the partition", tp.Topic, tp.Partition)
		}
	}
	return out, nil
}

// committedOffset is one partition's committed offset: -1 when nothing is
// committed.
type committedOffset struct {
	offset int64
	err    error
}

// fetchOffsetsOnce sends one OffsetFetch for parts (nil: every committed
// offset of the group).
func (c *Client) fetchOffsetsOnce(ctx context.Context, addr, group string, m groupMember, parts []TopicPartition) (map[TopicPartition]committedOffset, error) {
	req := &fb.OffsetFetchRequestT{GroupId: group, MemberId: m.id, MemberEpoch: m.wireEpoch()}
	if parts != nil {
		sorted := slices.Clone(parts)
		slices.SortFunc(sorted, compareTP)
		req.Topics = groupParts(sorted)
		if req.Topics == nil {
			req.Topics = []*fb.GroupTopicPartitionsT{}
		}
	}
	out := map[TopicPartition]committedOffset{}
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageOffsetFetchRequest, req.Pack(b)
	}
	err := c.groupRequest(ctx, addr, fb.ApiKeyOffsetFetch, build, func(env *schema.Envelope) error {
		r, err := env.OffsetFetchResponse()
		if err != nil {
			return err
		}
		t := r.UnPack()
		if t.ErrorCode != fb.ErrorCodeNone {
			return &schema.CodeError{Code: t.ErrorCode, Message: t.ErrorMessage}
		}
		for _, rt := range t.Topics {
			for _, rp := range rt.Partitions {
				out[TopicPartition{Topic: rt.Name, Partition: rp.Partition}] = committedOffset{offset: rp.CommittedOffset, err: codeErr(rp.ErrorCode)}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, tp := range parts {
		if _, ok := out[tp]; !ok {
			out[tp] = committedOffset{offset: -1}
		}
	}
	return out, nil
}

// coordinatorErr reports whether err says the group's coordinator moved
// or is not ready: look it up again.
func coordinatorErr(err error) bool {
	switch ErrorCode(err) {
	case fb.ErrorCodeNotCoordinator, fb.ErrorCodeCoordinatorNotAvailable, fb.ErrorCodeCoordinatorLoadInProgress:
		return true
	}
	return isConnErr(err)
}
