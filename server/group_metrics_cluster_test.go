package server

import (
	"context"
	"testing"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema/fb"
)

// TestGroupMetricsRemoteLeaders: three brokers, a topic whose partitions
// are led by different brokers, offsets committed (by an admin reset) into
// a group: the coordinator's broker exports the committed offset and the
// lag in records of every partition, those led elsewhere included (their
// high watermarks learnt by ListOffsets), in agreement with the admin's
// lag call.
func TestGroupMetricsRemoteLeaders(t *testing.T) {
	c := newTestClusterArgs(t, 3, true, groupClusterArgs...)
	const topic, grp = "spread", "remote-lag"
	c.createTopic(c.nodes[1], topic, groupMetricsPartitions, 1)
	md := c.waitMetadata(c.nodes[1], "every partition of "+topic+" led", func(md *fb.MetadataResponseT) bool {
		tm := topicOf(md, topic)
		if tm == nil || len(tm.Partitions) != groupMetricsPartitions {
			return false
		}
		for _, p := range tm.Partitions {
			if p.LeaderId < 0 {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), groupTestWait)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: c.liveAddrs(), RetryBackoffMs: 20, RetryBackoffMaxMs: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produceEach(t, cl, topic, func(p int32) int { return 10 + int(p) })
	admin := client.NewAdmin(cl)
	reset := map[client.TopicPartition]int64{}
	for p := range int32(groupMetricsPartitions) {
		reset[client.TopicPartition{Topic: topic, Partition: p}] = int64(p) + 1
	}
	if err := admin.ResetOffsets(ctx, grp, reset); err != nil {
		t.Fatal(err)
	}
	g := newGroupTester(t, grp, c.liveAddrs)
	g.find()
	coord := c.nodes[g.node]
	remote := 0
	for _, p := range topicOf(md, topic).Partitions {
		if p.LeaderId != g.node {
			remote++
		}
	}
	if remote == 0 {
		t.Fatalf("every partition of %s is led by the coordinator's broker %d: nothing remote to learn", topic, g.node)
	}
	m := waitGroupScrape(t, coord, "the lag of every partition on the coordinator", func(m map[string]float64) bool {
		for p := range int32(groupMetricsPartitions) {
			c, _ := groupSeries(m, "strata_group_committed_offset", grp, topic, p)
			l, _ := groupSeries(m, "strata_group_lag_records", grp, topic, p)
			if int32(c) != p+1 || int32(l) != 10+p-(p+1) {
				return false
			}
		}
		return true
	})
	offs, err := admin.GroupOffsets(ctx, grp, client.GroupDescription{})
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstAdmin(t, m, offs, grp)
	if u, ok := series(m, "strata_group_lag_unknown_partitions"); !ok || u != 0 {
		t.Fatalf("unknown partitions %v (%v)", u, ok)
	}
}
