package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
)

// Group consumption's timings.
const (
	// groupCommitInterval is how often consume --group commits the offsets
	// after the records it printed (Kafka's auto.commit.interval.ms).
	groupCommitInterval = 5 * time.Second
	// groupCloseTimeout bounds the last commit and the leave at exit.
	groupCloseTimeout = 10 * time.Second
)

// groupConsumeFlags checks the flags that mean something else for a
// group member: the coordinator picks the partitions and the committed
// offsets place them.
func groupConsumeFlags(cmd *cobra.Command, o *consumeOptions) error {
	switch {
	case cmd.Flags().Changed("partition"):
		return usageError{errors.New("--partition with --group: the group's coordinator assigns the partitions")}
	case o.exitAtEnd:
		return usageError{errors.New("--exit-at-end with --group: a member reads the partitions it is given for as long as it holds them; stop with --count or Ctrl-C")}
	case o.at.kind != "earliest" && o.at.kind != "latest":
		return usageError{errors.New("--from with --group takes earliest or latest: where partitions without a committed offset start")}
	}
	return nil
}

// consumeGroup reads o.topic as a member of o.group and commits the
// offsets after the records it printed: exactly those, so that --count
// leaves the next member at the first record not printed.
func consumeGroup(ctx context.Context, cl *client.Client, w io.Writer, o *consumeOptions) error {
	if _, err := cl.Partitions(ctx, o.topic); err != nil {
		return err // a topic that does not exist fails now, not never
	}
	reset := client.ResetLatest
	if o.at.kind == "earliest" {
		reset = client.ResetEarliest
	}
	printed := map[client.TopicPartition]int64{} // next offset after the last printed record
	var gc *client.GroupConsumer
	commit := func(ctx context.Context, parts []client.TopicPartition) {
		offs := map[client.TopicPartition]int64{}
		for _, tp := range parts {
			if off, ok := printed[tp]; ok {
				offs[tp] = off
			}
		}
		if err := gc.CommitOffsets(ctx, offs); err != nil {
			fmt.Fprintf(o.warn, "strata: %v\n", err)
		}
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	cfg := client.GroupConfig{GroupID: o.group, Topics: []string{o.topic}, Reset: reset, DisableAutoCommit: true,
		OnRevoked: func(ctx context.Context, parts []client.TopicPartition) {
			bw.Flush()
			cctx, cancel := context.WithTimeout(ctx, groupCloseTimeout)
			defer cancel()
			commit(cctx, parts)
			for _, tp := range parts {
				delete(printed, tp)
			}
		}}
	gc, err := client.NewGroupConsumer(cl, cfg)
	if err != nil {
		return err
	}
	defer func() {
		// The interrupt ended ctx; the last commit and the leave get a
		// bound of their own.
		cctx, cancel := context.WithTimeout(context.Background(), groupCloseTimeout)
		defer cancel()
		gc.Close(cctx)
	}()
	pollCtx, stopWatch := watchTopic(ctx, cl, o.topic)
	defer stopWatch()
	lastCommit := time.Now()
	var n int64
	for {
		// Each Poll waits at most until the next commit is due, so that
		// what was printed is committed even while nothing more comes.
		tctx, cancel := context.WithDeadline(pollCtx, lastCommit.Add(groupCommitInterval))
		recs, err := gc.Poll(tctx)
		cancel()
		if err != nil && pollCtx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
		if err != nil {
			if cause := context.Cause(pollCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
				err = cause
			}
			return err
		}
		for i := range recs {
			r := &recs[i]
			if err := o.printer.print(bw, r); err != nil {
				return err
			}
			printed[client.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
			if n++; o.count > 0 && n >= o.count {
				return bw.Flush() // Close commits through OnRevoked
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if time.Since(lastCommit) >= groupCommitInterval {
			commit(ctx, gc.Assignment())
			lastCommit = time.Now()
		}
	}
}
