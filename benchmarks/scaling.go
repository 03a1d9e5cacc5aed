package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/loadgen/cpuset"
)

// Shard scaling (--scaling 1,2,4,8): for each shard count N, a broker with
// N shards pinned to N CPUs takes 1 KiB records from producers, then
// serves them to consumers reading the topic from its start, and each
// throughput is compared with N times the throughput at the first count.
// The load grows with N (per shard: scalingProducersPerShard producers and
// as many consumers, scalingPartitionsPerShard partitions), so that a
// broker that scales keeps every shard as busy as the one shard was; the
// client's CPUs stay the same for every N, so a client that cannot keep up
// shows as the broker falling short. On a split machine (--client-cpus,
// the default) the broker's CPUs are its own; with --client-cpus 0 the
// client runs on every CPU, the broker's too, and the sweep says so.
const (
	scalingProducersPerShard  = 2
	scalingPartitionsPerShard = 8
	scalingRecordBytes        = 1024
	scalingFlushPolicy        = "never"
	// scalingQuickRecords is each quick point's produce, per producer.
	scalingQuickRecords = 5_000
	// goalScalingLinearity is the broker's goal: 8 shards give at least
	// 0.8 of 8 times one shard's throughput.
	goalScalingLinearity = 0.8
	goalScalingShards    = 8
)

// scalingResult is a shard scaling sweep.
type scalingResult struct {
	FlushPolicy string         `json:"flush_policy"`
	RecordBytes int            `json:"record_bytes"`
	ClientCPUs  string         `json:"client_cpus"`
	Points      []scalingPoint `json:"points"`
}

// scalingPoint is one shard count's figures. A linearity is MB/s over the
// first point's MB/s times shards over the first point's shards: 1 is
// linear.
type scalingPoint struct {
	Shards           int     `json:"shards"`
	BrokerCPUs       string  `json:"broker_cpus"`
	Partitions       int     `json:"partitions"`
	Producers        int     `json:"producers"`
	Consumers        int     `json:"consumers"`
	Produce          figures `json:"produce"`
	Consume          figures `json:"consume"`
	ProduceLinearity float64 `json:"produce_linearity"`
	ConsumeLinearity float64 `json:"consume_linearity"`
}

// parseShardCounts reads --scaling: increasing shard counts.
func parseShardCounts(list string) ([]int, error) {
	var counts []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--scaling %q: %q is not a shard count", list, f)
		}
		if len(counts) > 0 && n <= counts[len(counts)-1] {
			return nil, fmt.Errorf("--scaling %q: shard counts must increase", list)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

// scalingCPUs returns the CPUs the broker may take its N from (the
// server's half when the machine is split, else every CPU) and those the
// client runs on (nil: every CPU).
func (cfg *config) scalingCPUs() (broker, client []int, err error) {
	if cfg.clientCPUs != nil {
		return cfg.serverCPUs, cfg.clientCPUs, nil
	}
	all, err := cpuset.Allowed()
	return all, nil, err
}

// runScaling measures every shard count of cfg.shardCounts.
func runScaling(ctx context.Context, cfg *config, strata, loadgen string) (*scalingResult, error) {
	brokerCPUs, clientCPUs, err := cfg.scalingCPUs()
	if err != nil {
		return nil, err
	}
	if last := cfg.shardCounts[len(cfg.shardCounts)-1]; last > len(brokerCPUs) {
		return nil, fmt.Errorf("--scaling up to %d shards: the broker has %d CPUs (%s)", last, len(brokerCPUs), cpuset.Format(brokerCPUs))
	}
	res := &scalingResult{FlushPolicy: scalingFlushPolicy, RecordBytes: scalingRecordBytes, ClientCPUs: "all"}
	if clientCPUs != nil {
		res.ClientCPUs = cpuset.Format(clientCPUs)
	}
	for _, n := range cfg.shardCounts {
		logf("scaling: %d shards on CPUs %s", n, cpuset.Format(brokerCPUs[:n]))
		p, err := runScalingPoint(ctx, cfg, strata, loadgen, n, brokerCPUs[:n], clientCPUs)
		if err != nil {
			return nil, fmt.Errorf("%d shards: %w", n, err)
		}
		res.Points = append(res.Points, *p)
	}
	res.linearities()
	return res, nil
}

// linearities sets each point's linearity against the first point.
func (r *scalingResult) linearities() {
	if len(r.Points) == 0 {
		return
	}
	first := r.Points[0]
	for i := range r.Points {
		p := &r.Points[i]
		scale := float64(p.Shards) / float64(first.Shards)
		if first.Produce.MBPerSec > 0 {
			p.ProduceLinearity = p.Produce.MBPerSec / (first.Produce.MBPerSec * scale)
		}
		if first.Consume.MBPerSec > 0 {
			p.ConsumeLinearity = p.Consume.MBPerSec / (first.Consume.MBPerSec * scale)
		}
	}
}

// runScalingPoint starts a broker with n shards on cpus, produces to a
// topic of its own and reads the topic back, and stops the broker.
func runScalingPoint(ctx context.Context, cfg *config, strata, loadgen string, n int, cpus, clientCPUs []int) (*scalingPoint, error) {
	dataDir := filepath.Join(cfg.work, "scaling-"+strconv.Itoa(n))
	if err := os.RemoveAll(dataDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	b, err := startBroker(ctx, strata, dataDir, n, cpus)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	p := &scalingPoint{Shards: n, BrokerCPUs: cpuset.Format(cpus), Partitions: scalingPartitionsPerShard * n,
		Producers: scalingProducersPerShard * n, Consumers: scalingProducersPerShard * n}
	topic := "scaling-" + strconv.Itoa(n)
	common := []string{"--brokers", b.addr, "--topic", topic, "--json"}
	if clientCPUs != nil {
		common = append(common, "--procs", strconv.Itoa(len(clientCPUs)))
	}
	bound := []string{"--duration", cfg.duration.String()}
	if cfg.quick {
		bound = []string{"--records", strconv.Itoa(scalingQuickRecords * p.Producers)}
	}
	produce := append([]string{"produce", "--producers", strconv.Itoa(p.Producers), "--partitions", strconv.Itoa(p.Partitions),
		"--record-size", strconv.Itoa(scalingRecordBytes), "--acks", "1", "--flush-policy", scalingFlushPolicy}, common...)
	if err := runLoadgen(ctx, loadgen, clientCPUs, append(produce, bound...), &p.Produce); err != nil {
		return nil, err
	}
	// The consumers read the page cache; the producers' dirty pages are
	// written back first so that their write-back does not run meanwhile.
	unix.Sync()
	consume := append([]string{"consume", "--consumers", strconv.Itoa(p.Consumers), "--duration", cfg.duration.String()}, common...)
	if err := runLoadgen(ctx, loadgen, clientCPUs, consume, &p.Consume); err != nil {
		return nil, err
	}
	if p.Consume.Records == 0 {
		return nil, fmt.Errorf("the consumers read nothing of the %d records produced", p.Produce.Records)
	}
	return p, nil
}

// runLoadgen runs loadgen on cpus (nil: every CPU) and decodes its JSON
// report into f.
func runLoadgen(ctx context.Context, loadgen string, cpus []int, args []string, f *figures) error {
	cmd := exec.CommandContext(ctx, loadgen, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := startOn(cmd, cpus); err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("loadgen %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(lastLine(stdout.Bytes()), f); err != nil {
		return fmt.Errorf("loadgen %s: report: %w", strings.Join(args, " "), err)
	}
	return nil
}

// goals judges the scaling goal for produce and consume: 8 shards at
// least goalScalingLinearity of linear from 1. A sweep without both 1 and
// 8 shards gives no goal row.
func (r *scalingResult) goals() []goal {
	var one, eight *scalingPoint
	for i := range r.Points {
		switch r.Points[i].Shards {
		case 1:
			one = &r.Points[i]
		case goalScalingShards:
			eight = &r.Points[i]
		}
	}
	if one == nil || eight == nil || &r.Points[0] != one {
		return nil
	}
	var gs []goal
	for _, k := range []struct {
		name      string
		linearity float64
		mbPerSec  float64
		oneMB     float64
	}{
		{"produce", eight.ProduceLinearity, eight.Produce.MBPerSec, one.Produce.MBPerSec},
		{"consume", eight.ConsumeLinearity, eight.Consume.MBPerSec, one.Consume.MBPerSec},
	} {
		gs = append(gs, goal{fmt.Sprintf("%s throughput 0.8x linear from 1 to 8 shards", k.name), r.FlushPolicy,
			fmt.Sprintf("%.2fx linear (%.1f MB/s at 8 shards, %.1f at 1)", k.linearity, k.mbPerSec, k.oneMB),
			k.linearity >= goalScalingLinearity})
	}
	return gs
}

// markdown writes the sweep's table.
func (r *scalingResult) markdown(w func(string, ...any)) {
	w("## Shard scaling\n\n")
	where := "CPUs of its own"
	if r.ClientCPUs == "all" {
		where = "the CPUs named below, which the client shared (it ran on every CPU)"
	}
	w("Each shard count runs a fresh broker pinned to %s; the client ran on CPUs %s for every count. "+
		"%d B records, flush policy `%s`, acks 1; per shard %d producers, as many consumers and %d partitions. "+
		"Linearity is MB/s over the first count's MB/s times the shard ratio (1 is linear).\n\n",
		where, r.ClientCPUs, r.RecordBytes, r.FlushPolicy, scalingProducersPerShard, scalingPartitionsPerShard)
	w("| shards | broker CPUs | produce MB/s | produce linearity | produce p99 ms | consume MB/s | consume linearity |\n")
	w("| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, p := range r.Points {
		w("| %d | %s | %.1f | %.2f | %.3f | %.1f | %.2f |\n", p.Shards, p.BrokerCPUs, p.Produce.MBPerSec,
			p.ProduceLinearity, p.Produce.P99Ms, p.Consume.MBPerSec, p.ConsumeLinearity)
	}
	w("\n")
}
