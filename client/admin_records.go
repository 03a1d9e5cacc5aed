package client

import (
	"context"
	"fmt"
	"slices"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// DeleteRecordsHighWatermark, as a DeleteRecords offset, deletes every
// committed record of the partition (up to its high watermark).
const DeleteRecordsHighWatermark int64 = -1

// deleteRecordsWaitMsMax bounds how long one DeleteRecords asks the leader
// to wait for its replicas; it is kept below the connection's response
// timeout, so that the leader's answer (REQUEST_TIMED_OUT at worst) comes
// before the connection gives up on it.
const deleteRecordsWaitMsMax = 30_000

// DeleteRecords moves the log start of partitions of a topic forward: for
// each partition in before, the records below its offset are deleted (a
// fetch below the new log start is OFFSET_OUT_OF_RANGE; consumers that
// start from the earliest offset start there). An offset above the
// partition's high watermark is refused with OFFSET_OUT_OF_RANGE;
// DeleteRecordsHighWatermark deletes everything committed. Each leader
// answers once every in-sync replica has moved its log start too; the
// answer maps partition to that low watermark. An offset below the log
// start changes nothing and answers the log start. Retriable errors
// (NOT_LEADER, a lost connection, REQUEST_TIMED_OUT while replicas catch
// up, ...) are retried inside Config.RetryTimeoutMs; deleting is
// idempotent.
func (a *Admin) DeleteRecords(ctx context.Context, topic string, before map[int32]int64) (map[int32]int64, error) {
	c := a.cl
	out := make(map[int32]int64, len(before))
	left := make([]int32, 0, len(before))
	for p := range before {
		left = append(left, p)
	}
	slices.Sort(left)
	err := c.retryCall(ctx, "delete records of "+topic, func(ctx context.Context) error {
		var err error
		left, err = a.deleteRecordsOnce(ctx, topic, left, before, out)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deleteRecordsOnce asks each partition's leader once and puts the
// answers in out. It returns the partitions to ask again with the
// retriable error that calls for it, or the first error that is not
// retriable.
func (a *Admin) deleteRecordsOnce(ctx context.Context, topic string, partitions []int32, before map[int32]int64, out map[int32]int64) ([]int32, error) {
	c := a.cl
	what := func(p int32) string { return fmt.Sprintf("delete records of %s/%d before %d", topic, p, before[p]) }
	waitMs := int32(min(deleteRecordsWaitMsMax, c.cfg.ResponseTimeoutMs*2/3))
	return c.askLeadersOnce(ctx, topic, partitions, out, what, func(ctx context.Context, conn *brokerConn, l *leaderParts) ([]partitionAnswer, error) {
		build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
			t := &fb.DeleteRecordsTopicT{Name: topic}
			for _, p := range l.parts {
				t.Partitions = append(t.Partitions, &fb.DeleteRecordsPartitionT{Partition: p, Offset: before[p]})
			}
			req := &fb.DeleteRecordsRequestT{Topics: []*fb.DeleteRecordsTopicT{t}, TimeoutMs: waitMs}
			return fb.MessageDeleteRecordsRequest, req.Pack(b)
		}
		// Read only once roundTrip returned it, as ListOffsets does.
		var got []partitionAnswer
		err := conn.roundTrip(ctx, fb.ApiKeyDeleteRecords, build, func(env *schema.Envelope) error {
			r, err := env.DeleteRecordsResponse()
			if err != nil {
				return err
			}
			for _, t := range r.UnPack().Topics {
				if t.Name == topic {
					for _, p := range t.Partitions {
						got = append(got, partitionAnswer{partition: p.Partition, code: p.ErrorCode, value: p.LowWatermark})
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
