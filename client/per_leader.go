package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// A per-partition request sent to each partition's leader (ListOffsets,
// DeleteRecords): the partitions are grouped by leader, one request goes
// to each, and the answers are sorted into the values, the partitions to
// ask again (a retriable code or a lost connection: after a metadata
// refresh where the leader may have moved) and the first error that is not
// retriable.

// leaderParts is the partitions one leader is asked for, with the leader
// epoch the metadata gave each.
type leaderParts struct {
	addr  string
	parts []int32
	epoch map[int32]int32
}

// partitionAnswer is one partition's part of a leader's answer.
type partitionAnswer struct {
	partition int32
	code      fb.ErrorCode
	value     int64
}

// askLeadersOnce asks each partition's leader once through ask, which
// sends one request for l's partitions on conn and returns the answers of
// the topic's partitions (and no answers with an error: a round trip whose
// context ended leaves its answer to the connection's reader, which may
// still be writing it). Values go into out; it returns the partitions
// to ask again with the retriable error that calls for it, or the first
// error that is not retriable. what names a partition's request in errors
// ("list offsets of t/3").
func (c *Client) askLeadersOnce(ctx context.Context, topic string, partitions []int32, out map[int32]int64,
	what func(p int32) string, ask func(ctx context.Context, conn *brokerConn, l *leaderParts) ([]partitionAnswer, error)) ([]int32, error) {
	var leaders []*leaderParts
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
		i := slices.IndexFunc(leaders, func(l *leaderParts) bool { return l.addr == addr })
		if i < 0 {
			leaders = append(leaders, &leaderParts{addr: addr, epoch: map[int32]int32{}})
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
		got, err := ask(ctx, conn, l)
		answered := map[int32]bool{}
		var final error
		if err == nil {
			for _, a := range got {
				if !slices.Contains(l.parts, a.partition) || answered[a.partition] {
					continue
				}
				answered[a.partition] = true
				if a.code == fb.ErrorCodeNone {
					out[a.partition] = a.value
					continue
				}
				perr := fmt.Errorf("%s: %w", what(a.partition), &schema.CodeError{Code: a.code})
				if !schema.ErrorRetriable(a.code) {
					final = errors.Join(final, perr)
					continue
				}
				retryLater([]int32{a.partition}, perr)
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
				return nil, fmt.Errorf("%s: %s gave no answer for the partition", what(p), l.addr)
			}
		}
	}
	if len(again) > 0 {
		return again, againErr
	}
	return nil, nil
}
