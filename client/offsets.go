package client

import (
	"context"
	"fmt"
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
// offset; the first partition error fails the call.
func (c *Client) ListOffsets(ctx context.Context, topic string, partitions []int32, ts int64) (map[int32]int64, error) {
	byLeader := map[string][]int32{}
	for _, p := range partitions {
		addr, err := c.leaderFor(ctx, topic, p)
		if err != nil {
			return nil, err
		}
		byLeader[addr] = append(byLeader[addr], p)
	}
	out := make(map[int32]int64, len(partitions))
	for addr, parts := range byLeader {
		conn, err := c.connTo(ctx, addr)
		if err != nil {
			return nil, err
		}
		build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
			t := &fb.ListOffsetsTopicT{Name: topic}
			for _, p := range parts {
				t.Partitions = append(t.Partitions, &fb.ListOffsetsPartitionT{Partition: p, CurrentLeaderEpoch: -1, Timestamp: ts})
			}
			req := &fb.ListOffsetsRequestT{ReplicaId: -1, Topics: []*fb.ListOffsetsTopicT{t}}
			return fb.MessageListOffsetsRequest, req.Pack(b)
		}
		err = conn.roundTrip(ctx, fb.ApiKeyListOffsets, build, func(env *schema.Envelope) error {
			r, err := env.ListOffsetsResponse()
			if err != nil {
				return err
			}
			for _, t := range r.UnPack().Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode != fb.ErrorCodeNone {
						return fmt.Errorf("list offsets of %s/%d: %w", topic, p.Partition, &schema.CodeError{Code: p.ErrorCode})
					}
					out[p.Partition] = p.Offset
				}
			}
			return nil
		})
		if err != nil {
			if code := ErrorCode(err); needsMetadata(code) {
				c.invalidate(topic)
			}
			return nil, err
		}
	}
	return out, nil
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
