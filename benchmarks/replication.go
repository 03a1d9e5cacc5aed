package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The replication section (--replication, on by default): three brokers
// on this machine, each a controller voter with one shard, and
//   - throughput of 1 KiB records into a topic of replication factor 3
//     with acks=all, beside replication factor 1 with acks=all and acks=1,
//     each also as a ratio of the produce ceiling measured in the same run;
//   - end-to-end latency at a fixed rate with replication factor 3,
//     acks=all;
//   - a follower catching up a backlog (--catchup-bytes), as MB/s and as a
//     ratio of the consume ceiling;
//   - failover: kill -9 of a partition leader to the first acknowledgement
//     by the new leader, under the default session timeouts and the short
//     ones of the tests (--failover-repeats each).
const (
	replRecordBytes = 1024
	replPartitions  = 6
	// replProducers is each throughput case's producers: one, as the
	// single-broker produce-1KiB case.
	replProducers = 1
	bytesPerGB    = 1e9
	// replMinInsync is min.insync.replicas of every replicated topic.
	replMinInsync = 2
	// replE2ERate is the e2e case's records/s (10 MB/s of 1 KiB records):
	// a steady load the three brokers sustain on two CPUs, so that the
	// latency is not queueing.
	replE2ERate      = 10_000
	replQuickE2ERate = 2_000
	// replWarmupRecords are produced (acks=all) into each case's fresh
	// topic before it is measured: the first produce to a new replicated
	// topic can wait seconds for its followers to start fetching, which
	// is topic creation, not throughput. The warm-up's figures are kept.
	replWarmupRecords = 2_000
	// replQuickRecords bounds each quick throughput case and e2e run.
	replQuickRecords = 5_000
	// replQuickCatchupBytes is the quick backlog.
	replQuickCatchupBytes = 16 << 20
	// defaultCatchupBytes is the backlog of a full run: 1 GiB.
	defaultCatchupBytes   = 1 << 30
	defaultFailoverRounds = 3
	quickFailoverRounds   = 2
	// maxFailoverRepeats bounds --failover-repeats: each round under the
	// default timeouts takes tens of seconds.
	maxFailoverRepeats = 100
	// goalRF3OverRF1 is issue 13's goal: replication factor 3 with
	// acks=all at least 0.6 of replication factor 1.
	goalRF3OverRF1 = 0.6
	// clusterLogLevel is the brokers' log level: info, the lowest that
	// prints the ready line the benchmark waits for.
	clusterLogLevel = "info"
)

// replCase is one throughput case.
type replCase struct {
	Name              string  `json:"name"`
	ReplicationFactor int     `json:"replication_factor"`
	Acks              string  `json:"acks"`
	Result            figures `json:"result"`
	// Warmup is the produce into the fresh topic before Result.
	Warmup           figures `json:"warmup"`
	OfProduceCeiling float64 `json:"of_produce_ceiling"`
	// ReplicaMBPerSec is MB/s times the replication factor: the bytes
	// every replica together appended, all on this machine.
	ReplicaMBPerSec float64 `json:"replica_mb_per_sec"`
	CPU             cpuUse  `json:"cpu"`
	// BrokerCPUSecondsPerGB is the brokers' CPU time per GB acknowledged.
	BrokerCPUSecondsPerGB float64 `json:"broker_cpu_seconds_per_gb"`
}

// replicationResult is the replication section.
type replicationResult struct {
	Brokers         int    `json:"brokers"`
	ShardsPerBroker int    `json:"shards_per_broker"`
	Sharing         string `json:"sharing"`
	FlushPolicy     string `json:"flush_policy"`
	RecordBytes     int    `json:"record_bytes"`
	Partitions      int    `json:"partitions"`
	Producers       int    `json:"producers"`
	MinInsync       int    `json:"min_insync_replicas"`
	ClientProcs     int    `json:"client_procs"`
	// LoadAverage is /proc/loadavg when the section started: the machine
	// may be shared with other work, which the figures then include.
	LoadAverage string `json:"load_average"`
	// CeilingProduce and CeilingConsume are measured before the cluster
	// starts, with every CPU.
	CeilingProduce figures    `json:"ceiling_produce"`
	CeilingConsume figures    `json:"ceiling_consume"`
	Cases          []replCase `json:"cases"`
	// RF3OverRF1 is rf3-acks-all's MB/s over rf1-acks-all's.
	RF3OverRF1 float64        `json:"rf3_over_rf1"`
	E2E        figures        `json:"e2e"`
	E2EWarmup  figures        `json:"e2e_warmup"`
	E2ERate    float64        `json:"e2e_rate_records_per_sec"`
	CatchUp    *catchUpResult `json:"catch_up"`
	Failover   []failoverRun  `json:"failover"`
}

// parseByteCount reads a byte count: digits, optionally followed by KiB,
// MiB or GiB.
func parseByteCount(s string) (int64, error) {
	units := []struct {
		suffix string
		scale  int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	scale := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, scale = strings.TrimSuffix(s, u.suffix), u.scale
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 1 || n > (1<<50)/scale {
		return 0, fmt.Errorf("%q is not a byte count between 1 B and 1 PiB (digits, then B, KiB, MiB or GiB)", s)
	}
	return n * scale, nil
}

// runReplication runs the section.
func runReplication(ctx context.Context, cfg *config, strata, loadgen string) (*replicationResult, error) {
	dir := filepath.Join(cfg.work, "replication")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res := &replicationResult{Brokers: clusterBrokers, ShardsPerBroker: clusterShards, FlushPolicy: cfg.replFlushPolicy,
		RecordBytes: replRecordBytes, Partitions: replPartitions, Producers: replProducers, MinInsync: replMinInsync,
		ClientProcs: cfg.clientProcs,
		Sharing: fmt.Sprintf("three brokers of %d shard each, not pinned, and loadgen (GOMAXPROCS %d) share every CPU; the ceilings use every CPU",
			clusterShards, cfg.clientProcs)}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAverage = strings.TrimSpace(string(data))
	}
	if !cfg.failoverOnly {
		logf("replication: ceilings")
		if err := measureReplCeilings(ctx, cfg, loadgen, dir, res); err != nil {
			return nil, err
		}
	}

	logf("replication: three brokers, %s timeouts", defaultTimeouts.Name)
	c, err := startCluster(ctx, strata, filepath.Join(dir, "default"), defaultTimeouts, clusterLogLevel)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if !cfg.failoverOnly {
		if err := runReplThroughput(ctx, cfg, c, loadgen, res); err != nil {
			return nil, err
		}
		if err := runReplE2E(ctx, cfg, c, loadgen, res); err != nil {
			return nil, err
		}
		if res.CatchUp, err = runCatchUp(ctx, cfg, c, loadgen, cfg.catchupBytes); err != nil {
			return nil, fmt.Errorf("catch-up: %w", err)
		}
		if res.CeilingConsume.MBPerSec > 0 {
			res.CatchUp.OfConsumeCeiling = res.CatchUp.MBPerSec / res.CeilingConsume.MBPerSec
		}
	}
	if !cfg.quick || cfg.failoverOnly {
		run, err := runFailover(ctx, c, cfg.replFlushPolicy, cfg.failoverRepeats)
		if err != nil {
			return nil, err
		}
		res.Failover = append(res.Failover, *run)
	}
	c.close()

	logf("replication: three brokers, %s timeouts", shortTimeouts.Name)
	short, err := startCluster(ctx, strata, filepath.Join(dir, "short"), shortTimeouts, clusterLogLevel)
	if err != nil {
		return nil, err
	}
	defer short.close()
	run, err := runFailover(ctx, short, cfg.replFlushPolicy, cfg.failoverRepeats)
	if err != nil {
		return nil, err
	}
	res.Failover = append(res.Failover, *run)
	return res, nil
}

// measureReplCeilings measures the produce and consume ceilings with
// loadgen ceiling, before any broker runs.
func measureReplCeilings(ctx context.Context, cfg *config, loadgen, dir string, res *replicationResult) error {
	bound := []string{"--duration", cfg.duration.String()}
	file := []string{}
	if cfg.quick {
		bound = []string{"--records", "16384"}
		file = []string{"--file-bytes", "4MiB"}
	}
	unix.Sync()
	if err := runLoadgen(ctx, loadgen, nil, append([]string{"ceiling", "--mode", "produce", "--dir", dir, "--json"}, bound...),
		&res.CeilingProduce); err != nil {
		return err
	}
	unix.Sync()
	args := append([]string{"ceiling", "--mode", "consume", "--dir", dir, "--json"}, append(bound, file...)...)
	return runLoadgen(ctx, loadgen, nil, args, &res.CeilingConsume)
}

// replTopicArgs are loadgen's flags for a fresh topic of the section.
func replTopicArgs(cfg *config, c *cluster, topic string, rf int) []string {
	args := []string{"--brokers", c.allAddrs(), "--topic", topic, "--json", "--partitions", strconv.Itoa(replPartitions),
		"--replication-factor", strconv.Itoa(rf), "--flush-policy", cfg.replFlushPolicy,
		"--record-size", strconv.Itoa(replRecordBytes), "--procs", strconv.Itoa(cfg.clientProcs)}
	if rf >= replMinInsync {
		args = append(args, "--min-insync-replicas", strconv.Itoa(replMinInsync))
	}
	return args
}

// runReplThroughput runs the three throughput cases, each on a topic of
// its own deleted afterwards.
func runReplThroughput(ctx context.Context, cfg *config, c *cluster, loadgen string, res *replicationResult) error {
	bound := []string{"--duration", cfg.duration.String()}
	if cfg.quick {
		bound = []string{"--records", strconv.Itoa(replQuickRecords)}
	}
	for _, k := range []struct {
		name string
		rf   int
		acks string
	}{{"rf1-acks-1", 1, "1"}, {"rf1-acks-all", 1, "all"}, {"rf3-acks-all", 3, "all"}} {
		logf("replication: %s", k.name)
		rc := replCase{Name: k.name, ReplicationFactor: k.rf, Acks: k.acks}
		topic := "repl-" + k.name
		if err := warmUp(ctx, cfg, c, loadgen, topic, k.rf, &rc.Warmup); err != nil {
			return err
		}
		args := append([]string{"produce", "--producers", strconv.Itoa(replProducers), "--acks", k.acks},
			append(replTopicArgs(cfg, c, topic, k.rf), bound...)...)
		unix.Sync()
		before, err := c.sampleCPU()
		if err != nil {
			return err
		}
		if err := runLoadgen(ctx, loadgen, nil, args, &rc.Result); err != nil {
			return err
		}
		after, err := c.sampleCPU()
		if err != nil {
			return err
		}
		rc.CPU = cpuBetween(before, after)
		rc.ReplicaMBPerSec = rc.Result.MBPerSec * float64(k.rf)
		if rc.Result.Bytes > 0 {
			rc.BrokerCPUSecondsPerGB = rc.CPU.BrokerCPUSeconds / (float64(rc.Result.Bytes) / bytesPerGB)
		}
		if res.CeilingProduce.MBPerSec > 0 {
			rc.OfProduceCeiling = rc.Result.MBPerSec / res.CeilingProduce.MBPerSec
		}
		res.Cases = append(res.Cases, rc)
		if err := c.deleteTopic(ctx, topic); err != nil {
			return fmt.Errorf("delete %s: %w", topic, err)
		}
	}
	rf1, rf3 := res.find("rf1-acks-all"), res.find("rf3-acks-all")
	if rf1.Result.MBPerSec > 0 {
		res.RF3OverRF1 = rf3.Result.MBPerSec / rf1.Result.MBPerSec
	}
	return nil
}

// runReplE2E runs loadgen e2e at a fixed rate on a topic of replication
// factor 3, acks=all.
func runReplE2E(ctx context.Context, cfg *config, c *cluster, loadgen string, res *replicationResult) error {
	res.E2ERate = replE2ERate
	bound := []string{"--duration", cfg.duration.String()}
	if cfg.quick {
		res.E2ERate = replQuickE2ERate
		bound = []string{"--records", strconv.Itoa(replQuickRecords)}
	}
	logf("replication: e2e at %.0f records/s", res.E2ERate)
	topic := "repl-e2e"
	if err := warmUp(ctx, cfg, c, loadgen, topic, clusterBrokers, &res.E2EWarmup); err != nil {
		return err
	}
	args := append([]string{"e2e", "--acks", "all", "--rate", strconv.FormatFloat(res.E2ERate, 'f', 0, 64)},
		append(replTopicArgs(cfg, c, topic, clusterBrokers), bound...)...)
	unix.Sync()
	if err := runLoadgen(ctx, loadgen, nil, args, &res.E2E); err != nil {
		return err
	}
	return c.deleteTopic(ctx, topic)
}

// warmUp creates topic with replication factor rf by producing
// replWarmupRecords into it with acks=all, into f.
func warmUp(ctx context.Context, cfg *config, c *cluster, loadgen, topic string, rf int, f *figures) error {
	args := append([]string{"produce", "--producers", "1", "--acks", "all", "--records", strconv.Itoa(replWarmupRecords)},
		replTopicArgs(cfg, c, topic, rf)...)
	if err := runLoadgen(ctx, loadgen, nil, args, f); err != nil {
		return fmt.Errorf("warm-up of %s: %w", topic, err)
	}
	return nil
}

func (r *replicationResult) find(name string) *replCase {
	for i := range r.Cases {
		if r.Cases[i].Name == name {
			return &r.Cases[i]
		}
	}
	return &replCase{}
}

// goals judges issue 13's throughput goal.
func (r *replicationResult) goals() []goal {
	if len(r.Cases) == 0 {
		return nil // --failover-only
	}
	rf1, rf3 := r.find("rf1-acks-all"), r.find("rf3-acks-all")
	return []goal{{"replication factor 3 acks=all >= 0.6x replication factor 1 (1 KiB)", r.FlushPolicy,
		fmt.Sprintf("%.2fx (%.1f of %.1f MB/s)", r.RF3OverRF1, rf3.Result.MBPerSec, rf1.Result.MBPerSec),
		r.RF3OverRF1 >= goalRF3OverRF1}}
}

// markdown writes the section's tables.
func (r *replicationResult) markdown(w func(string, ...any)) {
	w("## Replication\n\n")
	w("%d brokers on this machine over loopback, each a controller voter: %s. "+
		"Topics of %d partitions, flush policy `%s`, min.insync.replicas %d where replicated; "+
		"%d producer, %d B records, the client library's defaults (64 KiB batches, 5 ms linger).\n\n",
		r.Brokers, r.Sharing, r.Partitions, r.FlushPolicy, r.MinInsync, r.Producers, r.RecordBytes)
	w("Load average when the section started (/proc/loadavg): %s.\n\n", r.LoadAverage)
	if len(r.Cases) > 0 {
		r.throughputMarkdown(w)
	}
	r.failoverMarkdown(w)
}

// throughputMarkdown writes the throughput, e2e and catch-up figures.
func (r *replicationResult) throughputMarkdown(w func(string, ...any)) {
	w("| case | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | of produce ceiling | replica MB/s | broker CPU s per GB | machine busy | warm-up max ms |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	w("| ceiling produce (TCP into a file) | %.0f | %.1f | | | | - | | | | |\n", r.CeilingProduce.RecordsPerSec, r.CeilingProduce.MBPerSec)
	for _, c := range r.Cases {
		f := c.Result
		w("| %s | %.0f | %.1f | %.3f | %.3f | %.3f | %.2f | %.1f | %.2f | %.0f%% | %.0f |\n", c.Name, f.RecordsPerSec, f.MBPerSec,
			f.P50Ms, f.P99Ms, f.P999Ms, c.OfProduceCeiling, c.ReplicaMBPerSec, c.BrokerCPUSecondsPerGB, 100*c.CPU.MachineBusy, c.Warmup.MaxMs)
	}
	w("\nReplication factor 3 acks=all over replication factor 1 acks=all: **%.2fx** (goal 0.6x). "+
		"Produce latencies are Send to acknowledgement. Replica MB/s is MB/s times the replication factor: what the replicas "+
		"appended together, every one of them on this machine's CPUs and disk. Broker CPU is the three brokers' user and system "+
		"time over the case; machine busy is every CPU's busy share over the case, other processes included. "+
		"Each case's topic is created by a warm-up of %d records with acks=all, not measured; its slowest acknowledgement "+
		"is the last column (the first produce to a new topic waits for its replicas to start).\n\n", r.RF3OverRF1, replWarmupRecords)
	e := r.E2E
	w("End to end, replication factor 3, acks=all, at %.0f records/s (%.1f MB/s): p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms "+
		"(%d records, from the send time stamped in the value to the consumer holding the record; the topic's warm-up's "+
		"slowest acknowledgement %.0f ms).\n\n",
		r.E2ERate, e.MBPerSec, e.P50Ms, e.P99Ms, e.P999Ms, e.MaxMs, e.Records, r.E2EWarmup.MaxMs)
	if cu := r.CatchUp; cu != nil {
		w("Catch-up: broker %d killed (out of every ISR %.0f ms later), %d bytes produced with acks=all to the two others (%.1f MB/s), then started again: "+
			"back in every ISR %.0f ms after its start (ready after %.0f ms): **%.1f MB/s**, %.2f of the consume ceiling (%.1f MB/s); "+
			"%.1f MB/s from its ready line.\n\n",
			cu.Follower, cu.OutOfISRMs, cu.BacklogBytes, cu.Fill.MBPerSec, cu.CaughtUpMs, cu.ReadyMs, cu.MBPerSec, cu.OfConsumeCeiling,
			r.CeilingConsume.MBPerSec, cu.FromReadyMBPerSec)
	}
}

// failoverMarkdown writes the failover samples.
func (r *replicationResult) failoverMarkdown(w func(string, ...any)) {
	if len(r.Failover) > 0 {
		w("Failover: kill -9 of a partition's leader (not the controller, where one could be chosen) to the first acknowledgement "+
			"by the new leader, a producer sending one record at a time with acks=all. \"seen\" is when a survivor's metadata first "+
			"named the new leader (polled every %d ms).\n\n", clusterPollInterval.Milliseconds())
		w("| timeouts | heartbeat | session | round | killed | was controller | new leader seen ms | first ack ms | resends | rejoin ms |\n")
		w("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n")
		for _, run := range r.Failover {
			for i, s := range run.Samples {
				w("| %s | %s | %s | %d | broker %d | %v | %.0f | %.0f | %d | %.0f |\n", run.Timeouts.Name, run.Timeouts.HeartbeatInterval,
					run.Timeouts.SessionTimeout, i+1, s.Killed, s.KilledController, s.LeaderSeenMs, s.FirstAckMs, s.Resends, s.RejoinMs)
			}
			w("| %s | | | median | | | %.0f | **%.0f** | | |\n", run.Timeouts.Name, run.MedianSeenMs, run.MedianAckMs)
		}
		w("\n")
	}
}
