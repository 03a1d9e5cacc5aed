package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
)

// partitionSelect is the --under-replicated-partitions and
// --unavailable-partitions filter of topic describe, after Kafka's
// kafka-topics --describe: with neither every partition is shown, with
// either or both the partitions that match any.
type partitionSelect struct {
	underReplicated bool
	unavailable     bool
}

func (s *partitionSelect) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&s.underReplicated, "under-replicated-partitions", false,
		"show only partitions whose in-sync replicas are fewer than their replicas")
	cmd.Flags().BoolVar(&s.unavailable, "unavailable-partitions", false,
		"show only partitions that have no leader")
}

// keep returns the partitions the filter selects, in their order.
func (s *partitionSelect) keep(parts []client.PartitionInfo) []client.PartitionInfo {
	if !s.underReplicated && !s.unavailable {
		return parts
	}
	var out []client.PartitionInfo
	for _, p := range parts {
		if (s.underReplicated && p.UnderReplicated()) || (s.unavailable && p.Unavailable()) {
			out = append(out, p)
		}
	}
	return out
}

// argsUpTo accepts at most n positional arguments.
func argsUpTo(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, a []string) error {
		if len(a) > n {
			return usageError{fmt.Errorf("expected %s, got %d arguments", what, len(a))}
		}
		return nil
	}
}

// leaderCell is a partition's leader in a table, "none" when it has none.
func leaderCell(id int32) string {
	if id < 0 {
		return "none"
	}
	return fmt.Sprint(id)
}

// idsCell is a set of broker ids in a table, "-" when it is empty, so that
// every row has a value in every column.
func idsCell(v []int32) string {
	if len(v) == 0 {
		return "-"
	}
	return ids(v)
}

// topicPartition is one partition of a named topic.
type topicPartition struct {
	topic string
	client.PartitionInfo
}

// replicationTables prints the cluster's under-replicated partitions (ISR
// smaller than the replicas) and its unavailable ones (no leader), each
// table headed by its count.
func replicationTables(out io.Writer, topics []client.TopicInfo) error {
	var under, unavailable []topicPartition
	for _, t := range topics {
		for _, p := range t.Partitions {
			if p.UnderReplicated() {
				under = append(under, topicPartition{t.Name, p})
			}
			if p.Unavailable() {
				unavailable = append(unavailable, topicPartition{t.Name, p})
			}
		}
	}
	for _, sec := range []struct {
		title string
		rows  []topicPartition
	}{{"under-replicated partitions", under}, {"unavailable partitions", unavailable}} {
		fmt.Fprintf(out, "\n%s: %d\n", sec.title, len(sec.rows))
		if len(sec.rows) == 0 {
			continue
		}
		w := newTable(out)
		fmt.Fprintln(w, "TOPIC\tPARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tELR\tOFFLINE")
		for _, p := range sec.rows {
			fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", p.topic, p.Partition, leaderCell(p.Leader), p.LeaderEpoch,
				idsCell(p.Replicas), idsCell(p.ISR), idsCell(p.ELR), idsCell(p.OfflineReplicas))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// describeFailed tells a topic describe failure: of the named topic, or of
// the listing of every topic when name is empty.
func describeFailed(op, name string, err error) error {
	if name == "" {
		return failedOp(op, err)
	}
	return failed(op, name, err)
}
