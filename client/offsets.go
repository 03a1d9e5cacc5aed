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
	what := func(p int32) string { return fmt.Sprintf("list offsets of %s/%d", topic, p) }
	return c.askLeadersOnce(ctx, topic, partitions, out, what, func(ctx context.Context, conn *brokerConn, l *leaderParts) ([]partitionAnswer, error) {
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
		var got []partitionAnswer
		err := conn.roundTrip(ctx, fb.ApiKeyListOffsets, build, func(env *schema.Envelope) error {
			r, err := env.ListOffsetsResponse()
			if err != nil {
				return err
			}
			for _, t := range r.UnPack().Topics {
				if t.Name == topic {
					for _, p := range t.Partitions {
						got = append(got, partitionAnswer{partition: p.Partition, code: p.ErrorCode, value: p.Offset})
					}
				}
			}
			return nil
		})
		if err != nil {
			// The reader may still be filling got: leave it alone.
			return nil, err
		}
		return got, nil
	})
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
