package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// Special timestamps of ListOffsets.
const (
	// OffsetEarliest asks for a partition's log start offset.
	OffsetEarliest = schema.ListOffsetsEarliest
	// OffsetLatest asks for a partition's log end offset: the offset the
	// next record will get.
	OffsetLatest = schema.ListOffsetsLatest
)

// ListOffsets asks each partition's leader for an offset: OffsetEarliest,
// OffsetLatest, or a time in unix milliseconds for the first record at or
// after it (the log end when there is none). The answer maps partition to
// offset. Partitions whose leader answers a retriable error (NOT_LEADER,
// LEADER_NOT_AVAILABLE, a lost connection, ...) are asked again, after a
// metadata refresh and a backoff, inside Config.RetryTimeoutMs; the first
// error that is not retriable fails the call.
func (c *Client) ListOffsets(ctx context.Context, topic string, partitions []int32, ts int64) (map[int32]int64, error) {
	out := make(map[int32]int64, len(partitions))
	left := partitions
	err := c.retryCall(ctx, "list offsets of "+topic, func(ctx context.Context) error {
		var err error
		left, err = c.listOffsetsOnce(ctx, topic, left, ts, out)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listOffsetsOnce asks each partition's leader once and puts the answers
// in out. It returns the partitions to ask again with the retriable error
// that calls for it, or the first error that is not retriable.
func (c *Client) listOffsetsOnce(ctx context.Context, topic string, partitions []int32, ts int64, out map[int32]int64) ([]int32, error) {
	type leader struct {
		addr  string
		parts []int32
		epoch map[int32]int32
	}
	var leaders []*leader
	var again []int32
	var againErr error
	retryLater := func(parts []int32, err error) {
		again = append(again, parts...)
		againErr = err
		if refreshesMetadata(err) {
			c.invalidate(topic)
		}
	}
	for _, p := range partitions {
		addr, epoch, err := c.leaderFor(ctx, topic, p)
		if err != nil {
			if !retriable(err) {
				return nil, err
			}
			retryLater([]int32{p}, err)
			continue
		}
		i := slices.IndexFunc(leaders, func(l *leader) bool { return l.addr == addr })
		if i < 0 {
			leaders = append(leaders, &leader{addr: addr, epoch: map[int32]int32{}})
			i = len(leaders) - 1
		}
		leaders[i].parts = append(leaders[i].parts, p)
		leaders[i].epoch[p] = epoch
	}
	for _, l := range leaders {
		conn, err := c.connTo(ctx, l.addr)
		if err != nil {
			if !retriable(err) {
				return nil, err
			}
			retryLater(l.parts, err)
			continue
		}
		build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
			t := &fb.ListOffsetsTopicT{Name: topic}
			for _, p := range l.parts {
				t.Partitions = append(t.Partitions, &fb.ListOffsetsPartitionT{Partition: p, CurrentLeaderEpoch: l.epoch[p], Timestamp: ts})
			}
			req := &fb.ListOffsetsRequestT{ReplicaId: -1, Topics: []*fb.ListOffsetsTopicT{t}}
			return fb.MessageListOffsetsRequest, req.Pack(b)
		}
		// The answer is taken apart on the connection's reader; it is read
		// here only once roundTrip returned it (a call whose context ended
		// first leaves it to the reader alone).
		var got []*fb.ListOffsetsPartitionResponseT
		err = conn.roundTrip(ctx, fb.ApiKeyListOffsets, build, func(env *schema.Envelope) error {
			r, err := env.ListOffsetsResponse()
			if err != nil {
				return err
			}
			for _, t := range r.UnPack().Topics {
				if t.Name == topic {
					got = append(got, t.Partitions...)
				}
			}
			return nil
		})
		answered := map[int32]bool{}
		var final error
		if err == nil {
			for _, p := range got {
				if !slices.Contains(l.parts, p.Partition) || answered[p.Partition] {
					continue
				}
				answered[p.Partition] = true
				if p.ErrorCode == fb.ErrorCodeNone {
					out[p.Partition] = p.Offset
					continue
				}
				perr := fmt.Errorf("list offsets of %s/%d: %w", topic, p.Partition, &schema.CodeError{Code: p.ErrorCode})
				if !schema.ErrorRetriable(p.ErrorCode) {
					final = errors.Join(final, perr)
					continue
				}
				retryLater([]int32{p.Partition}, perr)
			}
		}
		if final != nil {
			return nil, final
		}
		if err != nil {
			if !retriable(err) {
				return nil, err
			}
			var unanswered []int32
			for _, p := range l.parts {
				if !answered[p] {
					unanswered = append(unanswered, p)
				}
			}
			retryLater(unanswered, err)
			continue
		}
		for _, p := range l.parts {
			if !answered[p] {
				return nil, fmt.Errorf("list offsets of %s/%d: %s gave no answer for the partition", topic, p, l.addr)
			}
		}
	}
	if len(again) > 0 {
		return again, againErr
	}
	return nil, nil
}

// TimeOffsets is ListOffsets by time: the first offset at or after t.
func (c *Client) TimeOffsets(ctx context.Context, topic string, partitions []int32, t time.Time) (map[int32]int64, error) {
	return c.ListOffsets(ctx, topic, partitions, t.UnixMilli())
}

// Partitions lists a topic's partition ids.
func (c *Client) Partitions(ctx context.Context, topic string) ([]int32, error) {
	t, err := c.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make([]int32, len(t.Partitions))
	for i, p := range t.Partitions {
		out[i] = p.Partition
	}
	return out, nil
}
