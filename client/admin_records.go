package client

import (
	"context"
	"errors"
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
	type leader struct {
		addr  string
		parts []int32
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
		addr, _, err := c.leaderFor(ctx, topic, p)
		if err != nil {
			if !retriable(err) {
				return nil, err
			}
			retryLater([]int32{p}, err)
			continue
		}
		i := slices.IndexFunc(leaders, func(l *leader) bool { return l.addr == addr })
		if i < 0 {
			leaders = append(leaders, &leader{addr: addr})
			i = len(leaders) - 1
		}
		leaders[i].parts = append(leaders[i].parts, p)
	}
	waitMs := int32(min(deleteRecordsWaitMsMax, c.cfg.ResponseTimeoutMs*2/3))
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
			t := &fb.DeleteRecordsTopicT{Name: topic}
			for _, p := range l.parts {
				t.Partitions = append(t.Partitions, &fb.DeleteRecordsPartitionT{Partition: p, Offset: before[p]})
			}
			req := &fb.DeleteRecordsRequestT{Topics: []*fb.DeleteRecordsTopicT{t}, TimeoutMs: waitMs}
			return fb.MessageDeleteRecordsRequest, req.Pack(b)
		}
		// Read only once roundTrip returned it, as ListOffsets does.
		var got []*fb.DeleteRecordsPartitionResponseT
		err = conn.roundTrip(ctx, fb.ApiKeyDeleteRecords, build, func(env *schema.Envelope) error {
			r, err := env.DeleteRecordsResponse()
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
					out[p.Partition] = p.LowWatermark
					continue
				}
				perr := fmt.Errorf("delete records of %s/%d before %d: %w", topic, p.Partition, before[p.Partition],
					&schema.CodeError{Code: p.ErrorCode})
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
				return nil, fmt.Errorf("delete records of %s/%d: %s gave no answer for the partition", topic, p, l.addr)
			}
		}
	}
	if len(again) > 0 {
		return again, againErr
	}
	return nil, nil
}
