package main

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-db/strata/client"
)

// partitionSizes asks each partition's leader for the bytes of its segment
// data: topic -> partition -> bytes. A leader that cannot be asked leaves
// its partitions out (shown as "-").
func partitionSizes(ctx context.Context, admin *client.Admin, topics []client.TopicInfo) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	cluster, err := admin.DescribeCluster(ctx)
	if err != nil {
		return out
	}
	addrs := map[int32]string{}
	for _, b := range cluster.Brokers {
		addrs[b.NodeID] = b.Addr()
	}
	for _, t := range topics {
		out[t.Name] = map[int32]int64{}
		leaders := map[int32]bool{}
		for _, p := range t.Partitions {
			leaders[p.Leader] = true
		}
		for id := range leaders {
			addr, ok := addrs[id]
			if !ok {
				continue
			}
			dirs, err := admin.DescribeLogDirs(ctx, addr, t.Name)
			if err != nil {
				continue
			}
			for _, lt := range dirs.Topics {
				for _, lp := range lt.Partitions {
					if lt.Name == t.Name && lp.Err == nil {
						out[t.Name][lp.Partition] = lp.SizeBytes
					}
				}
			}
		}
	}
	return out
}

// logDirsTable prints each live broker's data folder: the partitions it
// keeps and their bytes, and its file system's usable and total bytes.
func logDirsTable(ctx context.Context, admin *client.Admin, out io.Writer, brokers []client.BrokerInfo) error {
	fmt.Fprintln(out)
	w := newTable(out)
	fmt.Fprintln(w, "NODE\tLOG DIR\tPARTITIONS\tSIZE\tUSABLE\tTOTAL")
	var firstErr error
	for _, b := range brokers {
		if b.Fenced {
			continue
		}
		dirs, err := admin.DescribeLogDirs(ctx, b.Addr())
		if err != nil {
			fmt.Fprintf(w, "%d\t-\t-\t-\t-\t-\n", b.NodeID)
			if firstErr == nil {
				firstErr = failedOp(fmt.Sprintf("describe the log folder of broker %d", b.NodeID), err)
			}
			continue
		}
		var parts int
		var size int64
		for _, t := range dirs.Topics {
			for _, p := range t.Partitions {
				if p.Err == nil {
					parts++
					size += p.SizeBytes
				}
			}
		}
		fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%s\t%s\n", b.NodeID, dirs.Dir, parts, size, bytesCell(dirs.UsableBytes), bytesCell(dirs.TotalBytes))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return firstErr
}

// bytesCell is a byte count, or "-" when unknown (-1).
func bytesCell(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}
