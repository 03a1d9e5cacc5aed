package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
)

// topicAlterConfigCommand changes a topic's configs at run time.
func topicAlterConfigCommand(f *clientFlags) *cobra.Command {
	var set, del []string
	var validateOnly bool
	cmd := &cobra.Command{
		Use:   "alter-config NAME --set KEY=VALUE ... --delete KEY ...",
		Short: "Change a topic's configs while it runs",
		Long: `Change a topic's configs while it runs: --set gives a key a value, --delete
returns a key to its default. The controller checks the change as it checks
a new topic's configs, and applies all of it or none; every broker then
applies it to the partitions it hosts, without a restart. partitions (use
add-partitions) and replication.factor cannot be changed and are refused.
--validate-only checks the change and makes none. docs/configuration.md
lists every key with its default.`,
		Example: `  strata topic alter-config events --set retention.bytes=1073741824 --delete retention.ms
  strata topic alter-config events --set cleanup.policy=compact --validate-only`,
		Args: args(1, "the topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			change := client.ConfigChange{Topic: a[0], Set: map[string]string{}, Delete: del}
			for _, kv := range set {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usageError{fmt.Errorf("--set %q: want key=value", kv)}
				}
				change.Set[k] = v
			}
			if len(change.Set) == 0 && len(del) == 0 {
				return usageError{fmt.Errorf("nothing to change: give --set or --delete")}
			}
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			if err := client.NewAdmin(cl).AlterConfigs(ctx, validateOnly, change); err != nil {
				return failed(fmt.Sprintf("alter configs of topic %q", a[0]), a[0], err)
			}
			if validateOnly {
				fmt.Fprintf(cmd.OutOrStdout(), "the change to topic %s is valid; nothing was changed\n", a[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "altered the configs of topic %s\n", a[0])
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "give `KEY=VALUE` (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "return `KEY` to its default (repeatable)")
	cmd.Flags().BoolVar(&validateOnly, "validate-only", false, "check the change and make none")
	return cmd
}

// topicAddPartitionsCommand grows a topic's partition count.
func topicAddPartitionsCommand(f *clientFlags) *cobra.Command {
	var count int32
	var validateOnly bool
	cmd := &cobra.Command{
		Use:   "add-partitions NAME --count N",
		Short: "Grow a topic to N partitions",
		Long: `Grow a topic to N partitions, more than it has: the controller places the new
partitions' replicas as it does at creation, and producers spread records
over the new count at their next metadata refresh (a key's partition
changes with the count). Partitions are never removed: a count at or below
the topic's is refused (INVALID_PARTITIONS).`,
		Example: `  strata topic add-partitions events --count 12`,
		Args:    args(1, "the topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if count < 1 {
				return usageError{fmt.Errorf("--count %d: want the partition count the topic is to have", count)}
			}
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			if err := client.NewAdmin(cl).CreatePartitions(ctx, a[0], count, validateOnly); err != nil {
				return failed(fmt.Sprintf("add partitions to topic %q", a[0]), a[0], err)
			}
			if validateOnly {
				fmt.Fprintf(cmd.OutOrStdout(), "topic %s may grow to %d partitions; nothing was changed\n", a[0], count)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "topic %s now has %d partitions\n", a[0], count)
			}
			return nil
		},
	}
	cmd.Flags().Int32Var(&count, "count", 0, "the partition count `N` the topic is to have")
	cmd.Flags().BoolVar(&validateOnly, "validate-only", false, "check and add none")
	return cmd
}

// describeConfigs prints every config of the topics (names: none means
// every topic): its value, whether that is the default, and whether it
// can change at run time.
func describeConfigs(cmd *cobra.Command, f *clientFlags, op, name string, names []string) error {
	ctx, cl, done, err := f.admin()
	if err != nil {
		return err
	}
	defer done()
	topics, err := client.NewAdmin(cl).DescribeConfigs(ctx, names...)
	if err != nil {
		return describeFailed(op, name, err)
	}
	w := newTable(cmd.OutOrStdout())
	fmt.Fprintln(w, "TOPIC\tCONFIG\tVALUE\tDEFAULT\tDYNAMIC")
	for _, t := range topics {
		for _, c := range t.Configs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Topic, c.Name, c.Value, yesNo(c.IsDefault), yesNo(!c.ReadOnly))
		}
	}
	return w.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
