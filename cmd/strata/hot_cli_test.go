package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/client/brokertest"
)

// hotCLILines is how many lines of hotCLILineBytes each produce of the hot
// partition test sends: 4 MiB, well past the 64 KiB/s floor over the
// broker's default 1-minute rate window.
const (
	hotCLILines     = 4096
	hotCLILineBytes = 1024
)

// TestTopicDescribeShowsHotPartition produces every record of a topic of
// 6 partitions with one key through the CLI: topic describe shows that
// partition's bytes and records per second and flags it HOT at 6 times
// the topic's mean (all of the traffic on one of six), and the other five
// at no traffic and not hot. A topic given the same lines on each of its
// 6 partitions flags none.
func TestTopicDescribeShowsHotPartition(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	lines := hotCLIInput()
	mustRun("", "topic", "create", "clicks", "--partitions", "6")
	mustRun(lines, "produce", "clicks", "-k", "null")
	checkOneKeyHot(t, b.Addr, "clicks")

	mustRun("", "topic", "create", "even", "--partitions", "6")
	for p := range 6 {
		mustRun(lines, "produce", "even", "-p", fmt.Sprint(p))
	}
	for p, r := range hotRows(t, b.Addr, "even") {
		if r[2] != "no" || rateCell(t, r[0]) <= 0 || rateCell(t, r[1]) <= 0 {
			t.Fatalf("partition %d of an even spread: %v, want its rates and not hot", p, r)
		}
	}
}

// hotCLIInput is the stdin of one produce: hotCLILines lines of
// hotCLILineBytes.
func hotCLIInput() string {
	return strings.Repeat(strings.Repeat("x", hotCLILineBytes-1)+"\n", hotCLILines)
}

// hotRows are a 6-partition topic's describe rows by partition: BYTES/S,
// RECORDS/S and HOT.
func hotRows(t *testing.T, brokers, topic string) map[int32][3]string {
	t.Helper()
	out, errOut, code := run(t, brokers, "", "topic", "describe", topic)
	if code != 0 {
		t.Fatalf("strata topic describe %s: exit %d: %s", topic, code, errOut)
	}
	ls := strings.Split(strings.TrimSpace(out), "\n")
	if h := strings.Join(strings.Fields(ls[0]), " "); !strings.HasSuffix(h, " SIZE BYTES/S RECORDS/S HOT") {
		t.Fatalf("topic describe header %q", ls[0])
	}
	got := map[int32][3]string{}
	for _, l := range ls[1:] {
		f := strings.Fields(l)
		if len(f) != 15 || f[0] != topic {
			t.Fatalf("topic describe row %q", l)
		}
		p, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("topic describe row %q", l)
		}
		got[int32(p)] = [3]string{f[12], f[13], f[14]}
	}
	if len(got) != 6 {
		t.Fatalf("topic describe %s: %d rows:\n%s", topic, len(got), out)
	}
	return got
}

func rateCell(t *testing.T, s string) float64 {
	t.Helper()
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r < 0 {
		t.Fatalf("rate cell %q", s)
	}
	return r
}

// checkOneKeyHot checks the describe rows of a 6-partition topic whose
// every record had the key "null": that key's partition has rates and is
// HOT at 6 times the mean (all of the traffic on one of six); the others
// have no traffic and are not hot.
func checkOneKeyHot(t *testing.T, brokers, topic string) {
	t.Helper()
	hot := client.KeyPartition([]byte("null"), 6)
	for p, r := range hotRows(t, brokers, topic) {
		switch {
		case p == hot:
			if r[2] != "all" || rateCell(t, r[0]) <= 0 || rateCell(t, r[1]) <= 0 {
				t.Fatalf("partition %d of every record: %v, want HOT all with its rates", p, r)
			}
		case r != [3]string{"0", "0.0", "no"}:
			t.Fatalf("partition %d of no record: %v", p, r)
		}
	}
}

// TestServeHotPartitionWindowSetting: a window shorter than a second is
// refused, from the flag and from the TOML key alike, before anything
// starts; a controller-only node, which leads no partitions, refuses the
// setting rather than ignore it.
func TestServeHotPartitionWindowSetting(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "strata.toml")
	if err := os.WriteFile(conf, []byte("hot_partition_window = \"500ms\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", "--hot-partition-window", "500ms"},
		{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", "--config", conf},
	} {
		_, errOut, code := run(t, "", "", args...)
		if code != 2 || !strings.Contains(errOut, "--hot-partition-window 500ms: want at least 1s") {
			t.Fatalf("strata %v: exit %d, %q; want a usage error naming the window", args, code, errOut)
		}
	}
	args := []string{"serve", "--data-dir", dir, "--roles", "controller", "--node-id", "1",
		"--controller-voters", "1@127.0.0.1:1", "--cluster-insecure", "--hot-partition-window", "2m"}
	_, errOut, code := run(t, "", "", args...)
	if code != 2 || !strings.Contains(errOut, "--hot-partition-window are broker settings") {
		t.Fatalf("strata %v: exit %d, %q; want a usage error", args, code, errOut)
	}
}

// TestHotPartitionAcrossBrokers runs two brokers and a topic of 6
// partitions of 2 replicas, each partition led by one broker and followed
// by the other. Every record has one key. Each broker gives produce rates for the partitions
// it leads and -1 for those it follows, the follower of the key's
// partition included once it holds every byte of it: a follower's
// replicated appends are not produce traffic. topic describe judges the
// topic whole, from both leaders: the key's partition is HOT at 6 times
// the mean, by the rates of both leaders.
func TestHotPartitionAcrossBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two broker processes")
	}
	c := brokertest.StartCluster(t, brokertestBin(), 2)
	all := strings.Join(c.Addrs(), ",")
	if _, errOut, code := run(t, all, "", "topic", "create", "clicks", "--partitions", "6", "--replication-factor", "2"); code != 0 {
		t.Fatalf("create topic: %s", errOut)
	}
	if _, errOut, code := run(t, all, hotCLIInput(), "produce", "clicks", "-k", "null"); code != 0 {
		t.Fatalf("produce: %s", errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), describeWait)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)
	hot := client.KeyPartition([]byte("null"), 6)
	deadline := time.Now().Add(describeWait)
	for {
		topics, err := admin.DescribeTopics(ctx, "clicks")
		if err != nil {
			t.Fatal(err)
		}
		leaders := map[int32]int32{}
		for _, p := range topics[0].Partitions {
			leaders[p.Partition] = p.Leader
		}
		// Each broker's word on each partition: its size and its rates.
		sizes := map[int32]map[int32]int64{}
		done := true
		for id, addr := range c.Addrs() {
			node := int32(id + 1)
			dirs, err := admin.DescribeLogDirs(ctx, addr, "clicks")
			if err != nil || len(dirs.Topics) != 1 || len(dirs.Topics[0].Partitions) != 6 {
				t.Fatalf("describe log dirs of broker %d: %v %+v", node, err, dirs)
			}
			for _, p := range dirs.Topics[0].Partitions {
				if p.Err != nil {
					t.Fatalf("broker %d partition %d: %v", node, p.Partition, p.Err)
				}
				if sizes[p.Partition] == nil {
					sizes[p.Partition] = map[int32]int64{}
				}
				sizes[p.Partition][node] = p.SizeBytes
				leads := leaders[p.Partition] == node
				switch {
				case leads && (p.BytesInRate < 0 || p.RecordsInRate < 0):
					done = false // a leadership that moved since the metadata was read
				case !leads && (p.BytesInRate != -1 || p.RecordsInRate != -1):
					t.Fatalf("broker %d follows partition %d yet gives it rates %v B/s, %v records/s",
						node, p.Partition, p.BytesInRate, p.RecordsInRate)
				case leads && p.Partition == hot && (p.BytesInRate <= 0 || p.RecordsInRate <= 0):
					t.Fatalf("broker %d leads the key's partition %d: rates %v B/s, %v records/s", node, hot, p.BytesInRate, p.RecordsInRate)
				case leads && p.Partition != hot && (p.BytesInRate != 0 || p.RecordsInRate != 0):
					t.Fatalf("broker %d leads partition %d, sent nothing: rates %v B/s, %v records/s", node, p.Partition, p.BytesInRate, p.RecordsInRate)
				}
			}
		}
		// The follower holds the key's partition whole: what it wrote
		// was replicated, and counted nowhere.
		if s := sizes[hot]; done && s[1] > 0 && s[1] == s[2] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key's partition %d not replicated whole within %v: sizes %v", hot, describeWait, sizes[hot])
		}
		time.Sleep(describePoll)
	}
	checkOneKeyHot(t, all, "clicks")
}

// TestHotPartitionNewLeaderStartsFromNothing runs three brokers and a
// topic of 6 partitions of 3 replicas. Every record has one key, and its
// partition is HOT. Once that partition's leader is killed, the replica
// that takes over holds all of its records, replicated, yet shows no
// produce traffic: what a follower wrote was not sent to it, and its rate
// window starts when it becomes leader. Nothing is hot any more.
func TestHotPartitionNewLeaderStartsFromNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	c := brokertest.StartCluster(t, brokertestBin(), 3)
	all := strings.Join(c.Addrs(), ",")
	if _, errOut, code := run(t, all, "", "topic", "create", "clicks", "--partitions", "6", "--replication-factor", "3"); code != 0 {
		t.Fatalf("create topic: %s", errOut)
	}
	waitRows(t, all, "every partition led with all three in sync", func(rows []describeRow) bool {
		for _, r := range rows {
			if r.leader == "none" || len(strings.Split(r.isr, ",")) != 3 {
				return false
			}
		}
		return len(rows) == 6
	}, "clicks")
	// acks=all: acknowledged once every replica in the ISR holds it.
	if _, errOut, code := run(t, all, hotCLIInput(), "produce", "clicks", "-k", "null"); code != 0 {
		t.Fatalf("produce: %s", errOut)
	}
	checkOneKeyHot(t, all, "clicks")

	hot := fmt.Sprint(client.KeyPartition([]byte("null"), 6))
	var victim string
	for _, r := range describeRows(t, all, "clicks") {
		if r.partition == hot {
			victim = r.leader
		}
	}
	var live []string
	for id := 1; id < len(c.Nodes); id++ {
		if fmt.Sprint(id) == victim {
			c.Nodes[id].Kill()
		} else {
			live = append(live, c.Nodes[id].Addr)
		}
	}
	alive := strings.Join(live, ",")
	waitRows(t, alive, "every partition led by a live broker", func(rows []describeRow) bool {
		for _, r := range rows {
			if r.leader == "none" || r.leader == victim {
				return false
			}
		}
		return len(rows) == 6
	}, "clicks")
	for p, r := range hotRows(t, alive, "clicks") {
		if r != [3]string{"0", "0.0", "no"} {
			t.Fatalf("partition %d after its leader moved: %v, want no traffic and not hot", p, r)
		}
	}
	// The new leader has every record (LOG END).
	out, errOut, code := run(t, alive, "", "topic", "describe", "clicks")
	if code != 0 {
		t.Fatalf("topic describe: %s", errOut)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(l); f[1] == hot && f[10] != fmt.Sprint(hotCLILines) {
			t.Fatalf("the key's partition after its leader moved: %q, want a log end of %d", l, hotCLILines)
		}
	}
}
