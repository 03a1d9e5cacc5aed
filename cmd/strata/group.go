package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema/fb"
)

func groupCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{Use: "group", Short: "List, describe, reset the offsets of and delete consumer groups"}
	addClientFlags(cmd, &f, timeoutAdminUse)
	cmd.AddCommand(groupListCommand(&f), groupDescribeCommand(&f), groupResetCommand(&f), groupDeleteCommand(&f))
	explainTimeouts(cmd, &f)
	return cmd
}

func groupListCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the consumer groups with their state",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			groups, err := client.NewAdmin(cl).ListGroups(ctx)
			if err != nil {
				return failedOp("list groups", err)
			}
			w := newTable(cmd.OutOrStdout())
			fmt.Fprintln(w, "GROUP\tSTATE")
			for _, g := range groups {
				fmt.Fprintf(w, "%s\t%s\n", g.GroupID, g.State)
			}
			return w.Flush()
		},
	}
}

func groupDescribeCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's state, its members with their partitions, and each partition's committed offset, log end and lag",
		Long: `Show a consumer group: its state (Empty, Assigning, Reconciling or Stable),
epoch and assignor; each member with its instance id (static members), client
id and host (from its last heartbeat; "-" until its first after a
coordinator's failover), member epoch, the partitions assigned to it and
those it is revoking; and each partition the group has committed an offset
for or a member holds: the committed offset ("-" for none), the log end (the
offset the next record gets), the lag between them, and the member holding
it.`,
		Args: args(1, "the group id"),
		RunE: func(cmd *cobra.Command, a []string) error {
			group := a[0]
			op := fmt.Sprintf("describe group %q", group)
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			admin := client.NewAdmin(cl)
			desc, err := admin.DescribeGroup(ctx, group)
			if err != nil {
				return failedOp(op, groupRemedy(err))
			}
			offsets, offErr := admin.GroupOffsets(ctx, group, desc)
			if offsets == nil && offErr != nil {
				return failedOp(op+": offsets", offErr)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "group: %s\nstate: %s\nepoch: %d (assignment epoch %d)\nassignor: %s\ncoordinator: %s\n",
				desc.GroupID, desc.State, desc.GroupEpoch, desc.AssignmentEpoch, cellOr(desc.Assignor), desc.Coordinator)
			fmt.Fprintf(out, "\nmembers: %d\n", len(desc.Members))
			w := newTable(out)
			fmt.Fprintln(w, "MEMBER\tINSTANCE\tCLIENT\tHOST\tEPOCH\tASSIGNED\tREVOKING")
			for _, m := range desc.Members {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.MemberID, cellOr(m.InstanceID), cellOr(m.ClientID),
					cellOr(m.ClientHost), m.Epoch, partsCell(m.Assignment), partsCell(m.PendingRevocation))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(out)
			w = newTable(out)
			fmt.Fprintln(w, "TOPIC\tPARTITION\tCOMMITTED\tLOG END\tLAG\tMEMBER")
			for _, o := range offsets {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", o.Topic, o.Partition, knownCell(o.Committed),
					knownCell(o.LogEnd), knownCell(o.Lag), cellOr(o.Member))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if offErr != nil {
				return failedOp(op+": log ends", offErr)
			}
			return nil
		},
	}
}

// resetTarget is where reset-offsets moves the partitions.
type resetTarget struct {
	kind   string // "earliest", "latest", "offset", "time"
	offset int64
	time   time.Time
}

func groupResetCommand(f *clientFlags) *cobra.Command {
	var topic, toTime string
	var toEarliest, toLatest, dryRun bool
	var toOffset int64
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic TOPIC (--to-earliest | --to-latest | --to-offset N | --to-time TIME)",
		Short: "Set a group's committed offsets for every partition of a topic (only while the group has no members)",
		Long: `Set the committed offset of GROUP for every partition of TOPIC: to the log
start (--to-earliest), the log end (--to-latest), an offset (--to-offset,
moved into the log when it lies outside it), or the first record at or after
a time (--to-time, RFC 3339 or unix milliseconds; the log end where there is
none). The group's consumers start there when they next join. The coordinator
accepts this only while the group has no members: stop its consumers first.
--dry-run prints the offsets and commits nothing.`,
		Example: `  strata group reset-offsets analytics-group --topic events --to-earliest
  strata group reset-offsets analytics-group --topic events --to-time 2026-12-01T00:00:00Z --dry-run`,
		Args: args(1, "the group id"),
		RunE: func(cmd *cobra.Command, a []string) error {
			group := a[0]
			var to resetTarget
			set := 0
			if toEarliest {
				to.kind, set = "earliest", set+1
			}
			if toLatest {
				to.kind, set = "latest", set+1
			}
			if cmd.Flags().Changed("to-offset") {
				if toOffset < 0 {
					return usageError{fmt.Errorf("--to-offset %d: must not be negative", toOffset)}
				}
				to.kind, to.offset, set = "offset", toOffset, set+1
			}
			if toTime != "" {
				t, err := parseTime(toTime)
				if err != nil {
					return usageError{fmt.Errorf("--to-time %q: want RFC 3339 time or unix milliseconds", toTime)}
				}
				to.kind, to.time, set = "time", t, set+1
			}
			if set != 1 {
				return usageError{errors.New("give exactly one of --to-earliest, --to-latest, --to-offset N and --to-time TIME")}
			}
			if topic == "" {
				return usageError{errors.New("--topic is required")}
			}
			op := fmt.Sprintf("reset the offsets of group %q", group)
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			admin := client.NewAdmin(cl)
			desc, err := admin.DescribeGroup(ctx, group)
			if err != nil && client.ErrorCode(err) != fb.ErrorCodeGroupIdNotFound {
				return failedOp(op, err)
			}
			members := len(desc.Members)
			if members > 0 && !dryRun {
				return failedOp(op, notEmpty(group, members))
			}
			plan, err := resetPlan(ctx, cl, cmd.ErrOrStderr(), topic, to)
			if err != nil {
				return failed(op, topic, err)
			}
			old, err := admin.CommittedOffsets(ctx, group)
			if err != nil {
				return failedOp(op, err)
			}
			out := cmd.OutOrStdout()
			w := newTable(out)
			fmt.Fprintln(w, "TOPIC\tPARTITION\tOLD\tNEW")
			for _, tp := range sortedParts(plan) {
				oldCell := "-"
				if off, ok := old[tp]; ok {
					oldCell = fmt.Sprint(off)
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%d\n", tp.Topic, tp.Partition, oldCell, plan[tp])
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if dryRun {
				if members > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "strata: %v: the reset would be refused now\n", notEmpty(group, members))
				}
				fmt.Fprintln(out, "dry run: nothing committed")
				return nil
			}
			if err := admin.ResetOffsets(ctx, group, plan); err != nil {
				if client.ErrorCode(err) == fb.ErrorCodeNonEmptyGroup {
					return failedOp(op, notEmpty(group, 0)) // members joined meanwhile
				}
				return failedOp(op, err)
			}
			fmt.Fprintf(out, "reset the offsets of group %s for %d partitions of %s\n", group, len(plan), topic)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&topic, "topic", "", "the `TOPIC` whose partitions are reset (all of them)")
	fl.BoolVar(&toEarliest, "to-earliest", false, "reset to each partition's log start")
	fl.BoolVar(&toLatest, "to-latest", false, "reset to each partition's log end")
	fl.Int64Var(&toOffset, "to-offset", 0, "reset every partition to `N` (moved into the log when outside it)")
	fl.StringVar(&toTime, "to-time", "", "reset to the first record at or after `TIME` (RFC 3339 or unix ms)")
	fl.BoolVar(&dryRun, "dry-run", false, "print the new offsets and commit nothing")
	return cmd
}

// notEmpty is the refusal of a reset or delete of a group with members,
// with what to do about it.
func notEmpty(group string, members int) error {
	has := "has members"
	switch {
	case members == 1:
		has = "has 1 member"
	case members > 1:
		has = fmt.Sprintf("has %d members", members)
	}
	return fmt.Errorf("group %s %s; stop its consumers first (`strata group describe %s` lists them)", group, has, group)
}

// groupRemedy adds what to do to a group's errors that call for it.
func groupRemedy(err error) error {
	switch client.ErrorCode(err) {
	case fb.ErrorCodeGroupIdNotFound:
		return fmt.Errorf("%w; `strata group list` lists the groups", err)
	}
	return err
}

// resetPlan is the new offset of every partition of topic.
func resetPlan(ctx context.Context, cl *client.Client, warn io.Writer, topic string, to resetTarget) (map[client.TopicPartition]int64, error) {
	parts, err := cl.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	var offs map[int32]int64
	switch to.kind {
	case "earliest":
		offs, err = cl.ListOffsets(ctx, topic, parts, client.OffsetEarliest)
	case "latest":
		offs, err = cl.ListOffsets(ctx, topic, parts, client.OffsetLatest)
	case "time":
		offs, err = cl.TimeOffsets(ctx, topic, parts, to.time)
		if err == nil {
			// No record at or after the time: the log end.
			var ends map[int32]int64
			if ends, err = cl.ListOffsets(ctx, topic, parts, client.OffsetLatest); err == nil {
				for _, p := range parts {
					if off, ok := offs[p]; !ok || off < 0 {
						offs[p] = ends[p]
					}
				}
			}
		}
	case "offset":
		var starts, ends map[int32]int64
		if starts, ends, err = logRanges(ctx, cl, topic, parts); err == nil {
			offs = map[int32]int64{}
			for _, p := range parts {
				off := to.offset
				switch {
				case off > ends[p]:
					fmt.Fprintf(warn, "strata: partition %d: offset %d is past the log end %d (log start %d); resetting to %d\n", p, off, ends[p], starts[p], ends[p])
					off = ends[p]
				case off < starts[p]:
					fmt.Fprintf(warn, "strata: partition %d: offset %d is before the log start %d (log end %d); resetting to %d\n", p, off, starts[p], ends[p], starts[p])
					off = starts[p]
				}
				offs[p] = off
			}
		}
	}
	if err != nil {
		return nil, err
	}
	plan := make(map[client.TopicPartition]int64, len(parts))
	for _, p := range parts {
		plan[client.TopicPartition{Topic: topic, Partition: p}] = offs[p]
	}
	return plan, nil
}

func groupDeleteCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP",
		Short: "Delete a group that has no members, with its committed offsets",
		Args:  args(1, "the group id"),
		RunE: func(cmd *cobra.Command, a []string) error {
			group := a[0]
			op := fmt.Sprintf("delete group %q", group)
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			if err := client.NewAdmin(cl).DeleteGroups(ctx, group); err != nil {
				if client.ErrorCode(err) == fb.ErrorCodeNonEmptyGroup {
					return failedOp(op, notEmpty(group, 0))
				}
				return failedOp(op, groupRemedy(err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", group)
			return nil
		},
	}
}

// parseTime reads RFC 3339 or unix milliseconds.
func parseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms >= 0 {
		return time.UnixMilli(ms), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// partsCell is partitions as topic/0,1;other/2, "-" for none.
func partsCell(parts []client.TopicPartition) string {
	if len(parts) == 0 {
		return "-"
	}
	var b strings.Builder
	for i, tp := range parts {
		switch {
		case i == 0:
			fmt.Fprintf(&b, "%s/%d", tp.Topic, tp.Partition)
		case parts[i-1].Topic == tp.Topic:
			fmt.Fprintf(&b, ",%d", tp.Partition)
		default:
			fmt.Fprintf(&b, ";%s/%d", tp.Topic, tp.Partition)
		}
	}
	return b.String()
}

// cellOr is s, or "-" when it is empty.
func cellOr(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// knownCell is a non-negative number, or "-" for an unknown one (-1).
func knownCell(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func sortedParts(m map[client.TopicPartition]int64) []client.TopicPartition {
	out := make([]client.TopicPartition, 0, len(m))
	for tp := range m {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}
