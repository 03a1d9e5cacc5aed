package main

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
)

// trimBeforeCommitted is the --before value that deletes every committed
// record (DeleteRecords offset -1: the high watermark).
const trimBeforeCommitted = "committed"

func topicTrimCommand(f *clientFlags) *cobra.Command {
	var partition int32
	var all bool
	var before string
	cmd := &cobra.Command{
		Use:   "trim NAME (--partition N | --all-partitions) --before OFFSET",
		Short: "Delete a partition's records below an offset (move its log start)",
		Long: `Delete the records of a partition (--partition N) or of every partition of
the topic (--all-partitions) below OFFSET: the log start moves to OFFSET, the
segments wholly below it are deleted, a fetch below it is refused as out of
range, and consumers that start from the earliest offset start there.
OFFSET must not be past the partition's high watermark (the end of what
consumers may read); --before committed deletes every committed record.
An OFFSET below the log start changes nothing. Each leader answers once
every in-sync replica has moved its log start too; the new log start of
each partition is printed. The deletion cannot be undone.`,
		Example: `  strata topic trim events --partition 0 --before 400
  strata topic trim events --all-partitions --before committed`,
		Args: args(1, "the topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			name := a[0]
			if !cmd.Flags().Changed("before") {
				return usageError{fmt.Errorf("--before is required")}
			}
			offset := client.DeleteRecordsHighWatermark
			if before != trimBeforeCommitted {
				n, err := strconv.ParseInt(before, 10, 64)
				if err != nil || n < 0 {
					return usageError{fmt.Errorf("--before %q: want an offset (0 or more) or %q", before, trimBeforeCommitted)}
				}
				offset = n
			}
			partSet := cmd.Flags().Changed("partition")
			switch {
			case partSet == all:
				return usageError{fmt.Errorf("give one of --partition N and --all-partitions")}
			case partSet && partition < 0:
				return usageError{fmt.Errorf("--partition %d: want a partition id, 0 or more", partition)}
			}
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			parts := []int32{partition}
			if all {
				if parts, err = cl.Partitions(ctx, name); err != nil {
					return failed(fmt.Sprintf("trim topic %q", name), name, err)
				}
			}
			req := make(map[int32]int64, len(parts))
			for _, p := range parts {
				req[p] = offset
			}
			starts, err := client.NewAdmin(cl).DeleteRecords(ctx, name, req)
			if err != nil {
				return failed(fmt.Sprintf("trim topic %q", name), name, err)
			}
			slices.Sort(parts)
			w := newTable(cmd.OutOrStdout())
			fmt.Fprintln(w, "TOPIC\tPARTITION\tLOG START")
			for _, p := range parts {
				fmt.Fprintf(w, "%s\t%d\t%d\n", name, p, starts[p])
			}
			return w.Flush()
		},
	}
	cmd.Flags().Int32VarP(&partition, "partition", "p", 0, "trim partition `N`")
	cmd.Flags().BoolVar(&all, "all-partitions", false, "trim every partition of the topic")
	cmd.Flags().StringVar(&before, "before", "", "delete the records below `OFFSET` (or \"committed\": every committed record)")
	return cmd
}
