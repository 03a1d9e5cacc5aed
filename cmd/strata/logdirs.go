package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/server"
)

// partitionStat is what a partition's leader says of it (DescribeLogDirs):
// the bytes of its segment data and its produce rate over the leader's
// rate window, and whether that rate makes it hot in its topic (hot: how
// many times the topic's mean it is; 0: not hot).
type partitionStat struct {
	sizeBytes int64
	rate      server.PartitionRate
	rateKnown bool
	hot       float64
}

// partitionStats asks each leader of the topics' partitions, once, what it
// says of the partitions it leads: topic -> partition -> stat. Only the
// leader's word is taken (a follower keeps a log too, but takes no
// produce traffic); a leader that cannot be asked, or has moved, leaves
// its partitions out (shown as "-"). A partition is hot when its rate is
// far above the mean of the partitions of its topic whose rates are known
// (server.HotPartitions), so topics should be given whole, not filtered.
func partitionStats(ctx context.Context, admin *client.Admin, topics []client.TopicInfo) map[string]map[int32]partitionStat {
	out := map[string]map[int32]partitionStat{}
	for _, t := range topics {
		out[t.Name] = map[int32]partitionStat{}
	}
	cluster, err := admin.DescribeCluster(ctx)
	if err != nil {
		return out
	}
	addrs := map[int32]string{}
	for _, b := range cluster.Brokers {
		addrs[b.NodeID] = b.Addr()
	}
	// leads: broker -> topic -> the partitions the metadata says it leads.
	leads := map[int32]map[string]map[int32]bool{}
	var order []int32
	for _, t := range topics {
		for _, p := range t.Partitions {
			if p.Unavailable() {
				continue
			}
			if leads[p.Leader] == nil {
				leads[p.Leader] = map[string]map[int32]bool{}
				order = append(order, p.Leader)
			}
			if leads[p.Leader][t.Name] == nil {
				leads[p.Leader][t.Name] = map[int32]bool{}
			}
			leads[p.Leader][t.Name][p.Partition] = true
		}
	}
	for _, id := range order {
		addr, ok := addrs[id]
		if !ok {
			continue
		}
		var names []string
		for _, t := range topics {
			if leads[id][t.Name] != nil {
				names = append(names, t.Name)
			}
		}
		for chunk := range slices.Chunk(names, logDirsTopicsPerRequest) {
			dirs, err := admin.DescribeLogDirs(ctx, addr, chunk...)
			if err != nil {
				continue
			}
			keepLed(out, leads[id], dirs)
		}
	}
	for _, stats := range out {
		judgeHot(stats)
	}
	return out
}

// logDirsTopicsPerRequest is how many topics one DescribeLogDirs of
// partitionStats names, well inside the broker's bound on the topics of a
// request (10000).
const logDirsTopicsPerRequest = 1000

// keepLed takes from one leader's answer the partitions it leads (led:
// topic -> partitions, as the metadata says).
func keepLed(out map[string]map[int32]partitionStat, led map[string]map[int32]bool, dirs client.LogDirInfo) {
	for _, lt := range dirs.Topics {
		for _, lp := range lt.Partitions {
			if lt.Err != nil || lp.Err != nil || !led[lt.Name][lp.Partition] || out[lt.Name] == nil {
				continue
			}
			st := partitionStat{sizeBytes: lp.SizeBytes}
			if rateKnown(lp.BytesInRate) && rateKnown(lp.RecordsInRate) {
				st.rate, st.rateKnown = server.PartitionRate{BytesPerSec: lp.BytesInRate, RecordsPerSec: lp.RecordsInRate}, true
			}
			out[lt.Name][lp.Partition] = st
		}
	}
}

// judgeHot flags the hot partitions of one topic, from the rates known.
func judgeHot(stats map[int32]partitionStat) {
	var parts []int32
	var rates []server.PartitionRate
	for p, st := range stats {
		if st.rateKnown {
			parts = append(parts, p)
			rates = append(rates, st.rate)
		}
	}
	for i, f := range server.HotPartitions(rates) {
		st := stats[parts[i]]
		st.hot = f
		stats[parts[i]] = st
	}
}

// rateKnown tells a rate from the -1 of a broker that does not lead the
// partition (or does not say), and from what no broker sends.
func rateKnown(r float64) bool { return r >= 0 && !math.IsInf(r, 0) && !math.IsNaN(r) }

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
