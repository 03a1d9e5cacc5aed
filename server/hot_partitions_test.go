package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema/fb"
)

// Hot partition test settings: a short rate window, so that traffic is
// judged within seconds; values large enough that a few rounds pass the
// floors (HotBytesFloorPerSec) over it.
const (
	hotWindowTest     = 3 * time.Second
	hotWait           = 60 * time.Second
	hotPoll           = 50 * time.Millisecond
	hotValueBytes     = 16 << 10
	hotPartitionsTest = 6
)

// hotView is one look at a topic's partitions: their rates from the
// leader's DescribeLogDirs, judged (HotPartitions), and their series in
// the broker's registry.
type hotView struct {
	rates    map[int32]PartitionRate
	hot      map[int32]float64 // from DescribeLogDirs' rates
	gaugeHot map[int32]float64 // strata_partition_hot; absent: no series
	gaugeBps map[int32]float64 // strata_partition_bytes_in_rate
}

func lookHot(t *testing.T, ctx context.Context, b *Broker, admin *client.Admin, topic string) hotView {
	t.Helper()
	dirs, err := admin.DescribeLogDirs(ctx, b.Addr().String(), topic)
	if err != nil {
		t.Fatalf("describe log dirs: %v", err)
	}
	v := hotView{rates: map[int32]PartitionRate{}, hot: map[int32]float64{}, gaugeHot: map[int32]float64{}, gaugeBps: map[int32]float64{}}
	if len(dirs.Topics) != 1 || dirs.Topics[0].Err != nil || len(dirs.Topics[0].Partitions) != hotPartitionsTest {
		t.Fatalf("describe log dirs of %s: %+v", topic, dirs.Topics)
	}
	var parts []int32
	var rates []PartitionRate
	for _, p := range dirs.Topics[0].Partitions {
		if p.Err != nil || p.BytesInRate < 0 || p.RecordsInRate < 0 {
			t.Fatalf("partition %d of a broker that leads it: %v, rates %v B/s %v records/s", p.Partition, p.Err, p.BytesInRate, p.RecordsInRate)
		}
		r := PartitionRate{BytesPerSec: p.BytesInRate, RecordsPerSec: p.RecordsInRate}
		v.rates[p.Partition] = r
		parts = append(parts, p.Partition)
		rates = append(rates, r)
	}
	for i, f := range HotPartitions(rates) {
		v.hot[parts[i]] = f
	}
	g := gather(t, b)
	for p := range int32(hotPartitionsTest) {
		labels := []string{"topic", topic, "partition", strconv.Itoa(int(p))}
		if m := g.metric("strata_partition_hot", labels...); m != nil {
			v.gaugeHot[p] = m.GetGauge().GetValue()
		}
		if m := g.metric("strata_partition_bytes_in_rate", labels...); m != nil {
			v.gaugeBps[p] = m.GetGauge().GetValue()
		}
	}
	return v
}

// TestHotPartitionFlagged runs a broker of two shards with a 3 s rate
// window. A producer that sends every record of a 6-partition topic with
// one key (the key of a null user id) gets that partition flagged hot,
// by the rates DescribeLogDirs gives and by the broker's
// strata_partition_hot, and no other. A producer that spreads its records
// evenly over another such topic, one batch per partition each round,
// gets none flagged, while every partition's rate is above the floor.
func TestHotPartitionFlagged(t *testing.T) {
	b, err := StartBroker(BrokerConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Cores: 2, NodeID: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HotPartitionWindow: hotWindowTest})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*hotWait)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{b.Addr().String()}, ClientID: "hot-partitions"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)
	if err := admin.CreateTopics(ctx, client.TopicSpec{Name: "one-key", Partitions: hotPartitionsTest},
		client.TopicSpec{Name: "spread", Partitions: hotPartitionsTest}); err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), hotValueBytes)
	sendRound := func(prod *client.Producer, recs []*client.Record) {
		t.Helper()
		for _, r := range recs {
			if err := prod.Send(ctx, r, func(_ int32, _ int64, err error) {
				if err != nil {
					t.Errorf("produce to %s: %v", r.Topic, err)
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// One key: every record to the partition it hashes to.
	keyed, err := client.NewProducer(cl, client.ProducerConfig{Acks: client.AcksAll})
	if err != nil {
		t.Fatal(err)
	}
	defer keyed.Close(ctx)
	key := []byte("null")
	target := client.KeyPartition(key, hotPartitionsTest)
	var round []*client.Record
	for range 8 {
		round = append(round, &client.Record{Topic: "one-key", Key: key, Value: value})
	}
	deadline := time.Now().Add(hotWait)
	var v hotView
	for {
		sendRound(keyed, round)
		v = lookHot(t, ctx, b, admin, "one-key")
		if v.hot[target] > 0 && v.gaugeHot[target] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition %d of one key not flagged hot within %v: %+v", target, hotWait, v)
		}
		time.Sleep(hotPoll)
	}
	// All of the topic's traffic is on one of six partitions: six times
	// the mean, the others none.
	if f := v.hot[target]; !math.IsInf(f, 1) {
		t.Fatalf("hot partition %d at %vx the others' mean, want all of the topic's traffic (+Inf)", target, f)
	}
	if v.gaugeBps[target] < HotBytesFloorPerSec {
		t.Fatalf("hot partition's strata_partition_bytes_in_rate %v, below the floor", v.gaugeBps[target])
	}
	for p := range int32(hotPartitionsTest) {
		if p == target {
			continue
		}
		if v.hot[p] != 0 || v.rates[p] != (PartitionRate{}) {
			t.Fatalf("partition %d, sent nothing: rate %+v, flagged %vx", p, v.rates[p], v.hot[p])
		}
		if g, ok := v.gaugeHot[p]; !ok || g != 0 {
			t.Fatalf("partition %d, sent nothing: strata_partition_hot %v (series present: %v)", p, g, ok)
		}
	}

	// An even spread: each round, the same batch to every partition.
	manual, err := client.NewProducer(cl, client.ProducerConfig{Acks: client.AcksAll, ManualPartitions: true})
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close(ctx)
	round = round[:0]
	for p := range int32(hotPartitionsTest) {
		for range 4 {
			round = append(round, &client.Record{Topic: "spread", Partition: p, Key: []byte(fmt.Sprint("user-", p)), Value: value})
		}
	}
	deadline = time.Now().Add(hotWait)
	aboveFloor := func(v hotView) bool {
		for p := range int32(hotPartitionsTest) {
			if v.rates[p].BytesPerSec < HotBytesFloorPerSec || v.gaugeBps[p] < HotBytesFloorPerSec {
				return false
			}
		}
		return true
	}
	for seen := 0; seen < 3; {
		sendRound(manual, round)
		v = lookHot(t, ctx, b, admin, "spread")
		if !aboveFloor(v) {
			if time.Now().After(deadline) {
				t.Fatalf("the even spread's partitions not all above the floor within %v: %+v", hotWait, v)
			}
			time.Sleep(hotPoll)
			continue
		}
		seen++
		for p := range int32(hotPartitionsTest) {
			if v.hot[p] != 0 || v.gaugeHot[p] != 0 {
				t.Fatalf("even spread: partition %d flagged (%vx by its rates, strata_partition_hot %v): %+v", p, v.hot[p], v.gaugeHot[p], v)
			}
		}
	}
}

// TestHotPartitionSeriesAcrossBrokers runs two brokers with their metrics
// listeners and a topic of 6 partitions of 2 replicas, its leaderships
// spread over both. Traffic goes to partition 0 alone. Each broker exports
// rate series for the partitions it leads and none for those it follows,
// the follower of partition 0 included once it holds all of it (its
// replicated appends are not produce traffic); a broker exports
// strata_partition_hot for the topic only if it leads all of it, since the
// mean is the whole topic's.
func TestHotPartitionSeriesAcrossBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two broker processes")
	}
	c := newTestClusterAdmin(t, 2, true)
	const topic = "watched"
	c.createTopicWith(c.nodes[1], topic, hotPartitionsTest, 2)
	md := c.waitMetadata(c.nodes[1], "a leader and a full ISR for every partition", func(md *fb.MetadataResponseT) bool {
		tm := topicOf(md, topic)
		if tm == nil || len(tm.Partitions) != hotPartitionsTest {
			return false
		}
		for _, p := range tm.Partitions {
			if p.LeaderId < 0 || len(p.Isr) != 2 {
				return false
			}
		}
		return true
	})
	leaders := map[int32]int32{}
	led := map[int32]int{}
	for _, p := range topicOf(md, topic).Partitions {
		leaders[p.Partition] = p.LeaderId
		led[p.LeaderId]++
	}
	lead0 := c.nodes[leaders[0]]
	// acks=1: the answer does not wait on the follower's first fetch,
	// which a loaded machine may hold past the call's deadline; the
	// follower's copy is awaited below.
	const produces = 3
	for i := range produces {
		env, _, err := rawCall(lead0.clientAddr(), produceMsg(fb.AcksLeader, topic, 0, batch(t, i*10, 10, 1000)))
		if err != nil {
			t.Fatal(err)
		}
		if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("produce: %v", r.ErrorCode)
		}
	}
	p0 := []string{"topic", topic, "partition", "0"}
	c.waitScrape(lead0, "partition 0's produce rate", func(m map[string]float64) bool {
		v, ok := series(m, "strata_partition_bytes_in_rate", p0...)
		return ok && v > 0
	})
	for id, n := range c.nodes {
		m := c.waitScrape(n, "partition 0 whole", func(m map[string]float64) bool {
			end, ok := series(m, "strata_partition_log_end_offset", p0...)
			return ok && end == produces*10
		})
		for p := range int32(hotPartitionsTest) {
			labels := []string{"topic", topic, "partition", strconv.Itoa(int(p))}
			bps, okB := series(m, "strata_partition_bytes_in_rate", labels...)
			rps, okR := series(m, "strata_partition_records_in_rate", labels...)
			leads := leaders[p] == id
			if okB != leads || okR != leads {
				t.Fatalf("node %d (leads partition %d: %v): rate series present %v, %v", id, p, leads, okB, okR)
			}
			if leads && (p == 0) != (bps > 0 && rps > 0) {
				t.Fatalf("node %d leads partition %d: %v B/s, %v records/s", id, p, bps, rps)
			}
			if _, ok := series(m, "strata_partition_hot", labels...); ok != (led[id] == hotPartitionsTest && leads) {
				t.Fatalf("node %d, leading %d of the topic's partitions: strata_partition_hot of partition %d present: %v",
					id, led[id], p, ok)
			}
		}
	}
}
