// Command benchmarks runs Strata's benchmark and records the result with the
// machine it ran on. `make bench` runs it.
//
// It builds bin/strata and bin/loadgen, then for each flush policy (--policies,
// default "sync,never"; sync is the broker's default: fdatasync before
// acknowledging) starts a broker on a fresh data folder, runs `loadgen suite`
// against it (which measures the physical ceiling in the same process, in
// the same run) and stops it. Then it installs the peer, NATS JetStream
// (nats-server and the nats CLI, with `go install`, into --cache), starts it
// with file storage and runs `nats bench` on the closest workloads:
// asynchronous publish of 100 B and 1 KiB messages, and an ordered consumer
// reading each stream back.
//
// It writes <out>/<YYYY-MM-DD>-<label>.json (everything measured) and .md
// (the machine, the ceiling, Strata's figures as ratios of it, the peer's,
// Strata over the peer, and the goals), and prints the path of each.
//
// --quick scales every run down to a few seconds and --peer=false leaves the
// peer out: the smoke test in this folder runs both so the benchmark cannot
// rot without a failing test.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/strata-db/strata/loadgen/cpuset"
)

// Defaults of the command line.
const (
	defaultOut        = "benchmarks/results"
	defaultCache      = ".cache"
	defaultBin        = "bin"
	defaultPolicies   = "sync,never"
	defaultCaseLength = 10 * time.Second
	// defaultPairedRounds: odd, so that the median is one round.
	defaultPairedRounds = 3
)

type config struct {
	out      string
	label    string
	cache    string
	bin      string
	work     string
	policies []string
	duration time.Duration
	cores    int
	// clientProcs is loadgen's --procs for the cases: the CPUs the load
	// generator's Go code may use at once.
	clientProcs int
	// clientCPUs and serverCPUs split the machine (--client-cpus): the
	// broker and the peer's server run on serverCPUs, loadgen's cases and
	// the peer's client on clientCPUs. Both nil: no split.
	clientCPUs, serverCPUs []int
	// pairedRounds is loadgen suite's --paired-rounds: the rounds of the
	// goal cases measured each right after its ceiling.
	pairedRounds int
	quick        bool
	// shardCounts, from --scaling, runs the shard scaling sweep instead
	// of the suites and the peer.
	shardCounts []int
	// prebuilt uses the binaries in bin as they are (a machine without Go).
	prebuilt bool
	peer     bool
	peerMsgs peerMessages
	// suites runs the single-broker suites under each flush policy.
	suites bool
	// replication runs the replication section (replication.go) with
	// its flush policy, backlog and failover rounds.
	replication     bool
	replFlushPolicy string
	catchupBytes    int64
	failoverRepeats int
	// groups runs the consumer-group section (groups.go).
	groups bool
	// failoverOnly runs only the replication section's failover probes.
	failoverOnly bool
	// compressionRounds is the rounds of the compression section
	// (compression.go; 0: none); compressionOnly runs only it.
	compressionRounds int
	compressionOnly   bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchmarks: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("benchmarks", flag.ContinueOnError)
	cfg := &config{}
	clientCPUs := 0
	host, _ := os.Hostname()
	var policies string
	fs.StringVar(&cfg.out, "out", defaultOut, "folder for the results files")
	fs.StringVar(&cfg.label, "label", host, "machine label in the results file names (default: the hostname)")
	fs.StringVar(&cfg.cache, "cache", defaultCache, "folder the peer's binaries are installed into and reused from")
	fs.StringVar(&cfg.bin, "bin", defaultBin, "folder strata and loadgen are built into")
	fs.StringVar(&cfg.work, "work", "", "folder for the brokers' data and the ceiling's file (default: a new temp folder, removed after)")
	fs.StringVar(&policies, "policies", defaultPolicies, "Strata flush policies to run the suite under, comma-separated")
	fs.DurationVar(&cfg.duration, "duration", defaultCaseLength, "length of each case of the suite")
	fs.IntVar(&cfg.cores, "cores", 0, "broker shards (0: every CPU)")
	fs.IntVar(&clientCPUs, "client-cpus", -1,
		"split the machine: the last N CPUs run the load generator's cases and the peer's client, the others the broker "+
			"and the peer's server (-1: half the CPUs, rounded down, when there are two or more; 0: no split, all share every CPU); "+
			"the ceilings always use every CPU")
	fs.IntVar(&cfg.clientProcs, "client-procs", -1,
		"CPUs loadgen's client may use at once during the cases (GOMAXPROCS; -1: the client's CPUs when split, else half the CPUs, at least 1; 0: all)")
	fs.IntVar(&cfg.pairedRounds, "paired-rounds", defaultPairedRounds,
		"rounds of produce-1KiB and consume-1KiB measured each right after its ceiling, which the goals are judged on (0: none)")
	var scaling string
	fs.StringVar(&scaling, "scaling", "",
		"shard counts, such as 1,2,4,8: measure how produce and consume throughput grow with the broker's shards, instead of the suites and the peer")
	fs.BoolVar(&cfg.prebuilt, "prebuilt", false, "use strata and loadgen in --bin as they are instead of building them (for a machine without Go)")
	fs.BoolVar(&cfg.quick, "quick", false, "scale every run down to seconds (the smoke test)")
	fs.BoolVar(&cfg.peer, "peer", true, "install and measure the peer, NATS JetStream")
	fs.Int64Var(&cfg.peerMsgs.small, "peer-msgs-small", defaultPeerMsgsSmall, "messages per 100 B peer run")
	fs.Int64Var(&cfg.peerMsgs.large, "peer-msgs-large", defaultPeerMsgsLarge, "messages per 1 KiB peer run")
	fs.BoolVar(&cfg.suites, "suites", true, "run the single-broker suites under each of --policies")
	fs.BoolVar(&cfg.replication, "replication", true,
		"run the replication section: three brokers, replication factor 3 against 1, e2e latency, a follower's catch-up, failover")
	fs.StringVar(&cfg.replFlushPolicy, "replication-flush-policy", "never",
		"flush policy of the replication section's topics (never: durability from the replicas, as Kafka's default)")
	fs.BoolVar(&cfg.groups, "groups", true,
		"run the consumer-group section: a scale-out from 3 to 6 consumers and back under a steady producer (processing pauses), and the offset-commit rate of one coordinator")
	catchup := "1GiB"
	fs.StringVar(&catchup, "catchup-bytes", catchup, "backlog a stopped follower catches up in the replication section (--quick: 16MiB unless given)")
	fs.IntVar(&cfg.failoverRepeats, "failover-repeats", defaultFailoverRounds,
		fmt.Sprintf("leader kills under each session timeout in the replication section (--quick: %d unless given)", quickFailoverRounds))
	fs.BoolVar(&cfg.failoverOnly, "failover-only", false,
		"run only the failover probes of the replication section (no suites, peer, ceilings, throughput, e2e or catch-up)")
	fs.IntVar(&cfg.compressionRounds, "compression-rounds", defaultCompressionRounds,
		"rounds of the compression section: JSON-like records produced and consumed uncompressed and with lz4 (0: none)")
	fs.BoolVar(&cfg.compressionOnly, "compression-only", false,
		"run only the compression section (no suites, peer, replication or groups)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if cfg.compressionOnly {
		cfg.suites, cfg.peer, cfg.replication, cfg.groups = false, false, false, false
		if cfg.compressionRounds < 1 {
			return nil, fmt.Errorf("--compression-only with --compression-rounds %d", cfg.compressionRounds)
		}
	}
	if cfg.compressionRounds < 0 {
		return nil, fmt.Errorf("--compression-rounds %d: must not be negative", cfg.compressionRounds)
	}
	if cfg.failoverOnly {
		cfg.suites, cfg.peer, cfg.replication, cfg.groups = false, false, true, false
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	n, err := parseByteCount(catchup)
	if err != nil {
		return nil, fmt.Errorf("--catchup-bytes: %w", err)
	}
	cfg.catchupBytes = n
	if cfg.quick && !given["catchup-bytes"] {
		cfg.catchupBytes = replQuickCatchupBytes
	}
	if cfg.quick && !given["compression-rounds"] {
		cfg.compressionRounds = 1
	}
	if cfg.quick && !given["failover-repeats"] {
		cfg.failoverRepeats = quickFailoverRounds
	}
	if cfg.failoverRepeats < 1 || cfg.failoverRepeats > maxFailoverRepeats {
		return nil, fmt.Errorf("--failover-repeats %d: must be between 1 and %d", cfg.failoverRepeats, maxFailoverRepeats)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, p := range strings.Split(policies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.policies = append(cfg.policies, p)
		}
	}
	if len(cfg.policies) == 0 {
		return nil, fmt.Errorf("--policies names no flush policy")
	}
	if cfg.label == "" {
		cfg.label = "unknown-machine"
	}
	if cfg.pairedRounds < 0 {
		return nil, fmt.Errorf("--paired-rounds %d: must not be negative", cfg.pairedRounds)
	}
	if err := cfg.splitCPUs(clientCPUs); err != nil {
		return nil, err
	}
	if scaling != "" {
		counts, err := parseShardCounts(scaling)
		if err != nil {
			return nil, err
		}
		cfg.shardCounts = counts
	}
	if cfg.clientProcs < 0 {
		cfg.clientProcs = max(1, runtime.NumCPU()/2)
		if cfg.clientCPUs != nil {
			cfg.clientProcs = len(cfg.clientCPUs)
		}
	}
	if cfg.quick {
		cfg.peerMsgs = peerMessages{small: quickPeerMsgs, large: quickPeerMsgs}
	}
	return cfg, nil
}

// splitCPUs gives the last n allowed CPUs to the client and the rest to
// the servers; n -1 is half (none on one CPU), 0 no split.
func (cfg *config) splitCPUs(n int) error {
	allowed, err := cpuset.Allowed()
	if err != nil {
		return err
	}
	if n < 0 {
		n = len(allowed) / 2
	}
	if n == 0 {
		return nil
	}
	cfg.serverCPUs, cfg.clientCPUs, err = cpuset.Split(allowed, n)
	if err != nil {
		return fmt.Errorf("--client-cpus %d: %w", n, err)
	}
	return nil
}

func run(ctx context.Context, args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	started := time.Now()
	if cfg.work == "" {
		dir, err := os.MkdirTemp("", "strata-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.work = dir
	}
	strata, loadgen, err := buildBinaries(ctx, cfg.bin, cfg.prebuilt)
	if err != nil {
		return err
	}
	res := &results{
		Label:     cfg.label,
		Date:      started.Format(time.DateOnly),
		StartedAt: started.UTC().Format(time.RFC3339),
		Quick:     cfg.quick,
		Commit:    gitCommit(ctx),
		Machine:   describeMachine(ctx, cfg.work),
	}
	res.BrokerShards = cfg.cores
	if cfg.clientCPUs != nil {
		res.ServerCPUs, res.ClientCPUs = cpuset.Format(cfg.serverCPUs), cpuset.Format(cfg.clientCPUs)
		if res.BrokerShards == 0 {
			res.BrokerShards = len(cfg.serverCPUs)
		}
	}
	if res.BrokerShards == 0 {
		res.BrokerShards = runtime.NumCPU()
	}
	if cfg.shardCounts != nil {
		if res.Scaling, err = runScaling(ctx, cfg, strata, loadgen); err != nil {
			return fmt.Errorf("scaling: %w", err)
		}
		cfg.policies, cfg.peer, cfg.replication, cfg.groups = nil, false, false, false
		cfg.compressionRounds = 0
	}
	if cfg.failoverOnly {
		cfg.compressionRounds = 0
	}
	if !cfg.suites {
		cfg.policies = nil
	}
	for _, policy := range cfg.policies {
		logf("strata: suite under flush policy %s", policy)
		s, err := runStrataSuite(ctx, cfg, strata, loadgen, policy)
		if err != nil {
			return fmt.Errorf("flush policy %s: %w", policy, err)
		}
		res.Strata = append(res.Strata, *s)
	}
	if cfg.replication {
		logf("replication: three brokers")
		if res.Replication, err = runReplication(ctx, cfg, strata, loadgen); err != nil {
			return fmt.Errorf("replication: %w", err)
		}
	}
	if cfg.compressionRounds > 0 {
		logf("compression: %d rounds", cfg.compressionRounds)
		if res.Compression, err = runCompression(ctx, cfg, strata, loadgen); err != nil {
			return fmt.Errorf("compression: %w", err)
		}
	}
	if cfg.groups {
		logf("groups: three brokers, one coordinator")
		if res.Groups, err = runGroups(ctx, cfg, strata); err != nil {
			return fmt.Errorf("groups: %w", err)
		}
	}
	if cfg.peer {
		logf("peer: NATS JetStream")
		p, err := runPeer(ctx, cfg)
		if err != nil {
			return fmt.Errorf("peer: %w", err)
		}
		res.Peer = p
	}
	res.compare()
	res.Seconds = time.Since(started).Seconds()
	jsonPath, mdPath, err := res.write(cfg.out)
	if err != nil {
		return err
	}
	fmt.Println(jsonPath)
	fmt.Println(mdPath)
	return nil
}

// logf reports progress on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchmarks: "+format+"\n", args...)
}

// resultsBase is the results files' path without extension.
func resultsBase(out, date, label string) string {
	return filepath.Join(out, date+"-"+sanitizeLabel(label))
}

// sanitizeLabel keeps a label usable as a file name.
func sanitizeLabel(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, s)
}
