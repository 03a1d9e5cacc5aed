package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
)

// Table layout of the topic commands' output (text/tabwriter): columns
// two spaces apart, at least four wide.
const (
	tableMinWidth = 4
	tablePadding  = 2
)

// newTable writes aligned columns to w.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, tableMinWidth, tablePadding, ' ', 0)
}

func topicCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{Use: "topic", Short: "Create, list, describe, alter, trim and delete topics"}
	addClientFlags(cmd, &f, timeoutAdminUse)
	cmd.AddCommand(topicCreateCommand(&f), topicListCommand(&f), topicDescribeCommand(&f), topicDeleteCommand(&f),
		topicAlterConfigCommand(&f), topicAddPartitionsCommand(&f), topicTrimCommand(&f))
	explainTimeouts(cmd, &f)
	return cmd
}

func topicCreateCommand(f *clientFlags) *cobra.Command {
	var partitions int32
	var replication int16
	var configs []string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: `Create a topic: NAME is 1 to 249 characters of [a-zA-Z0-9._-], not "." or
"..". Its settings (--config), each honoured by the broker or refused:
retention.ms, retention.bytes, segment.bytes, segment.ms, max.message.bytes,
flush.policy, min.insync.replicas, unclean.leader.election.enable,
cleanup.policy, min.cleanable.dirty.ratio, min.compaction.lag.ms,
max.compaction.lag.ms, delete.retention.ms and compression.type.
docs/configuration.md gives each one's default and values. All but
partitions and replication.factor can be changed later with alter-config.`,
		Example: `  strata topic create events --partitions 3
  strata topic create audit --config retention.ms=604800000 --config max.message.bytes=4194304`,
		Args: args(1, "the topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			spec := client.TopicSpec{Name: a[0], Partitions: partitions, ReplicationFactor: replication, Configs: map[string]string{}}
			for _, kv := range configs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usageError{fmt.Errorf("--config %q: want key=value", kv)}
				}
				spec.Configs[k] = v
			}
			if partitions < 0 {
				return usageError{fmt.Errorf("--partitions %d: want a count, or 0 for the default", partitions)}
			}
			if replication < 0 {
				return usageError{fmt.Errorf("--replication-factor %d: want a count, or 0 for the default", replication)}
			}
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			if err := client.NewAdmin(cl).CreateTopics(ctx, spec); err != nil {
				return failed(fmt.Sprintf("create topic %q", a[0]), a[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created topic %s\n", a[0])
			return nil
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 0, "partition count `N`; 0 takes the controller's default, 1")
	cmd.Flags().Int16Var(&replication, "replication-factor", 0, "replica count `N`; 0 takes the controller's default, 1")
	cmd.Flags().StringArrayVar(&configs, "config", nil, "topic setting `KEY=VALUE` (repeatable), e.g. retention.ms=86400000")
	return cmd
}

func topicListCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List topics with their partition count and replication factor",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			topics, err := client.NewAdmin(cl).DescribeTopics(ctx)
			if err != nil {
				return failedOp("list topics", err)
			}
			w := newTable(cmd.OutOrStdout())
			fmt.Fprintln(w, "TOPIC\tPARTITIONS\tREPLICATION")
			for _, t := range topics {
				fmt.Fprintf(w, "%s\t%d\t%d\n", t.Name, len(t.Partitions), replicationFactor(t))
			}
			return w.Flush()
		},
	}
}

// replicationFactor is the most replicas any partition of t has: what the
// topic was created with, also while a partition is being moved.
func replicationFactor(t client.TopicInfo) int {
	n := 0
	for _, p := range t.Partitions {
		n = max(n, len(p.Replicas))
	}
	return n
}

func topicDescribeCommand(f *clientFlags) *cobra.Command {
	var sel partitionSelect
	var configs bool
	cmd := &cobra.Command{
		Use:   "describe [NAME]",
		Short: "Show a topic's partitions: leader, epoch, replicas, in-sync and eligible replicas, offline replicas, log start and log end, size, produce rates and hot partitions",
		Long: `Show each partition of a topic (of every topic when NAME is left out): its
leader ("none" when it has none) and leader epoch, its replicas, in-sync
replicas (ISR), eligible leader replicas (ELR: out of the ISR yet known to
hold everything committed), last-known ELR (while there is no leader: the
replicas only an unclean election may pick) and offline replicas (on brokers
that are fenced or gone), all as broker ids ("-" for none), and its log start
and log end offsets as the leader answers them (the log end is the offset the
next record gets). A partition whose leader does not answer shows "-" for its
offsets, and the command then exits 1 after the table; a partition with no
leader shows "-" and is not an error. SIZE is the bytes of the partition's
segment data on its leader ("-" where the leader cannot say).

BYTES/S and RECORDS/S are the produce traffic the leader appended to the
partition, per second over its rate window (the broker's
--hot-partition-window, 1 minute unless set). HOT is how many times the
mean rate of the topic's partitions a hot partition's rate is, as "6.0x"
("no" for a partition that is not hot): hot is more than 4 times the mean,
in bytes or in records, at 64 KiB/s or 1000 records/s at least. All of a
topic's traffic on one partition (every record with one key) makes it hot
in a topic of 5 partitions or more; an even spread flags none. The mean is
the whole topic's, whichever partitions the flags below show.

--under-replicated-partitions and --unavailable-partitions show only the
partitions whose ISR is smaller than their replicas, or that have no leader
(both: either); the table is empty when there are none.

--configs shows the topic's configs instead: every key with its value,
whether that value is the default (the topic sets nothing for it), and
whether alter-config can change it.`,
		Example: `  strata topic describe events
  strata topic describe --under-replicated-partitions
  strata topic describe events --unavailable-partitions
  strata topic describe events --configs`,
		Args: argsUpTo(1, "at most one topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			op, name := "describe topics", ""
			var names []string
			if len(a) == 1 {
				name, names = a[0], a
				op = fmt.Sprintf("describe topic %q", name)
			}
			if configs {
				if sel.underReplicated || sel.unavailable {
					return usageError{fmt.Errorf("--configs shows configs, not partitions: it does not go with --under-replicated-partitions or --unavailable-partitions")}
				}
				return describeConfigs(cmd, f, op, name, names)
			}
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			admin := client.NewAdmin(cl)
			topics, err := admin.DescribeTopics(ctx, names...)
			if err != nil {
				return describeFailed(op, name, err)
			}
			// Before the selection: a partition is hot by its whole topic.
			stats := partitionStats(ctx, admin, topics)
			for i := range topics {
				topics[i].Partitions = sel.keep(topics[i].Partitions)
			}
			var offsetsErr error
			w := newTable(cmd.OutOrStdout())
			fmt.Fprintln(w, "TOPIC\tPARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tELR\tLAST KNOWN ELR\tOFFLINE\tLOG START\tLOG END\tSIZE\tBYTES/S\tRECORDS/S\tHOT")
			for _, t := range topics {
				var led []int32
				for _, p := range t.Partitions {
					if !p.Unavailable() {
						led = append(led, p.Partition)
					}
				}
				var starts, ends map[int32]int64
				if len(led) > 0 {
					starts, ends, err = logRanges(ctx, cl, t.Name, led)
					if offsetsErr == nil {
						offsetsErr = err
					}
				}
				for _, p := range t.Partitions {
					st, known := stats[t.Name][p.Partition]
					fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, p.Partition, leaderCell(p.Leader),
						p.LeaderEpoch, idsCell(p.Replicas), idsCell(p.ISR), idsCell(p.ELR), idsCell(p.LastKnownELR),
						idsCell(p.OfflineReplicas), offsetCell(starts, p.Partition), offsetCell(ends, p.Partition),
						statCells(st, known))
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			return describeFailed(op+": log offsets", name, offsetsErr)
		},
	}
	sel.addFlags(cmd)
	cmd.Flags().BoolVar(&configs, "configs", false, "show every config with its value and whether it is the default")
	return cmd
}

// logRanges asks the partitions' leaders for their log start and log end
// offsets. When a partition fails the asking of all at once, each is asked
// on its own so that the others are still shown; err is the first failure.
func logRanges(ctx context.Context, cl *client.Client, topic string, parts []int32) (starts, ends map[int32]int64, err error) {
	starts, err = cl.ListOffsets(ctx, topic, parts, client.OffsetEarliest)
	if err == nil {
		if ends, err = cl.ListOffsets(ctx, topic, parts, client.OffsetLatest); err == nil {
			return starts, ends, nil
		}
	}
	if ctx.Err() != nil {
		return nil, nil, err
	}
	starts, ends, err = map[int32]int64{}, map[int32]int64{}, nil
	for _, p := range parts {
		s, serr := cl.ListOffsets(ctx, topic, []int32{p}, client.OffsetEarliest)
		e, eerr := cl.ListOffsets(ctx, topic, []int32{p}, client.OffsetLatest)
		if serr == nil && eerr == nil {
			starts[p], ends[p] = s[p], e[p]
		} else if err == nil {
			err = serr
			if err == nil {
				err = eerr
			}
		}
	}
	return starts, ends, err
}

// statCells are a partition's SIZE, BYTES/S, RECORDS/S and HOT cells, "-"
// for what its leader did not say.
func statCells(st partitionStat, known bool) string {
	if !known {
		return "-\t-\t-\t-"
	}
	if !st.rateKnown {
		return fmt.Sprintf("%d\t-\t-\t-", st.sizeBytes)
	}
	hot := "no"
	switch {
	case math.IsInf(st.hot, 1):
		hot = "all" // the topic's other partitions carry nothing
	case st.hot > 0:
		hot = fmt.Sprintf("%.1fx", st.hot)
	}
	return fmt.Sprintf("%d\t%.0f\t%.1f\t%s", st.sizeBytes, st.rate.BytesPerSec, st.rate.RecordsPerSec, hot)
}

// offsetCell is a partition's offset in a table, "-" when it is unknown.
func offsetCell(offsets map[int32]int64, p int32) string {
	if off, ok := offsets[p]; ok {
		return fmt.Sprint(off)
	}
	return "-"
}

func topicDeleteCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and its data",
		Args:  args(1, "the topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			if err := client.NewAdmin(cl).DeleteTopics(ctx, a[0]); err != nil {
				return failed(fmt.Sprintf("delete topic %q", a[0]), a[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", a[0])
			return nil
		},
	}
}

// ids formats broker ids as 1,2,3.
func ids(v []int32) string {
	s := make([]string, len(v))
	for i, id := range v {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}
