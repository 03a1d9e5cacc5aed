package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-db/strata/loadgen/cpuset"
)

// TestQuickBenchmark runs the whole benchmark at the smoke test's scale
// without the peer: it builds strata and loadgen, starts real brokers under
// both flush policies, runs `loadgen suite --quick` against each, and
// writes the results files. The test checks that the files hold consistent
// counts, not what the figures are.
func TestQuickBenchmark(t *testing.T) {
	res, mdPath := runQuick(t, "smoke test", "--peer=false", "--replication=false", "--groups=false", "--compression-rounds", "0", "--cores", "2")
	if !res.Quick || res.Peer != nil || res.Machine.NProc < 1 {
		t.Errorf("quick %v peer %v nproc %d, want true, none, >= 1", res.Quick, res.Peer, res.Machine.NProc)
	}
	if len(res.Strata) != 2 || res.Strata[0].FlushPolicy != "sync" || res.Strata[1].FlushPolicy != "never" {
		t.Fatalf("strata runs: %+v, want sync then never", res.Strata)
	}
	for _, run := range res.Strata {
		var s suiteResult
		if err := json.Unmarshal(run.Raw, &s); err != nil {
			t.Fatalf("%s: suite JSON: %v", run.FlushPolicy, err)
		}
		checkSuiteCounts(t, run.FlushPolicy, &s)
		if s.CaseCPUs != res.ClientCPUs {
			t.Errorf("%s: the cases ran on CPUs %q, want the client's %q", run.FlushPolicy, s.CaseCPUs, res.ClientCPUs)
		}
		if len(s.Paired) != 2 || len(s.Paired[0].Rounds) != defaultPairedRounds || len(s.Paired[1].Rounds) != defaultPairedRounds {
			t.Errorf("%s: paired cases %+v, want consume-1KiB and produce-1KiB with %d rounds each", run.FlushPolicy, s.Paired, defaultPairedRounds)
		}
	}
	// By default the machine is split in two halves, the client's last.
	allowed, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(allowed); n >= 2 {
		want := cpuset.Format(allowed[n-n/2:])
		if res.ClientCPUs != want || res.ServerCPUs != cpuset.Format(allowed[:n-n/2]) || res.BrokerShards != 2 {
			t.Errorf("split: server CPUs %q, client CPUs %q (want %q), %d shards (want 2, as --cores said)",
				res.ServerCPUs, res.ClientCPUs, want, res.BrokerShards)
		}
	}
	if len(res.Goals) == 0 {
		t.Error("no goals evaluated")
	}
	for _, g := range res.Goals {
		if strings.Contains(g.Goal, "1KiB") || strings.Contains(g.Goal, "1 KiB produce") {
			if !strings.Contains(g.Measured, "paired rounds") {
				t.Errorf("goal %q measured as %q, want the median of paired rounds", g.Goal, g.Measured)
			}
		}
	}

	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Machine", "flush policy `sync`", "flush policy `never`", "ceiling produce", "ceiling splice",
		"produce-100B", "e2e-1KiB", "## Goals", "Quick run", "Paired rounds"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results Markdown lacks %q", want)
		}
	}
}

// runQuick runs the benchmark at --quick scale with args, in the module
// root (the build needs it), into a folder of its own, and returns the
// results and the path of their Markdown.
func runQuick(t *testing.T, label string, args ...string) (*results, string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	out := t.TempDir()
	args = append([]string{"--quick", "--out", out, "--label", label, "--bin", t.TempDir()}, args...)
	if err := run(t.Context(), args); err != nil {
		t.Fatalf("benchmark: %v", err)
	}
	matches, err := filepath.Glob(filepath.Join(out, "*-"+sanitizeLabel(label)+".json"))
	if err != nil || len(matches) != 1 {
		t.Fatalf("results JSON: %v %v", matches, err)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	var res results
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	return &res, strings.TrimSuffix(matches[0], ".json") + ".md"
}

// checkSuiteCounts asserts that one suite's counts agree with each other.
func checkSuiteCounts(t *testing.T, policy string, s *suiteResult) {
	t.Helper()
	if !s.Quick {
		t.Errorf("%s: suite did not run quick", policy)
	}
	for _, f := range []figures{s.Ceiling.Produce, s.Ceiling.Consume, s.Ceiling.Splice, s.Ceiling.ProduceAfter, s.Ceiling.ConsumeAfter} {
		if f.Records*f.RecordSizeBytes != f.Bytes || f.MBPerSec <= 0 {
			t.Errorf("%s: ceiling %+v inconsistent", policy, f)
		}
	}
	if len(s.Cases) == 0 {
		t.Fatalf("%s: no cases", policy)
	}
	for _, c := range s.Cases {
		f := c.Result
		if f.Records <= 0 || f.Records*f.RecordSizeBytes != f.Bytes {
			t.Errorf("%s %s: records %d x %d B != bytes %d", policy, c.Name, f.Records, f.RecordSizeBytes, f.Bytes)
		}
		if !(f.P50Ms <= f.P99Ms && f.P99Ms <= f.P999Ms) {
			t.Errorf("%s %s: percentiles out of order: %v %v %v", policy, c.Name, f.P50Ms, f.P99Ms, f.P999Ms)
		}
		if c.Against != "" && c.RatioToCeiling <= 0 {
			t.Errorf("%s %s: ratio to ceiling %v", policy, c.Name, c.RatioToCeiling)
		}
	}
	pairs := [][2]string{{"produce-100B", "consume-100B"}, {"produce-100B", "consume-100B-3-consumers"},
		{"produce-1KiB", "consume-1KiB"}}
	for _, p := range pairs {
		w, r := s.find(p[0]), s.find(p[1])
		if w == nil || r == nil {
			t.Errorf("%s: missing %s or %s", policy, p[0], p[1])
			continue
		}
		if w.Result.Records != r.Result.Records {
			t.Errorf("%s: %s read %d records, %s wrote %d", policy, p[1], r.Result.Records, p[0], w.Result.Records)
		}
	}
	if e := s.find("e2e-1KiB"); e == nil || e.Result.Records != e.Result.Produced {
		t.Errorf("%s: e2e-1KiB missing or read a different count than it produced: %+v", policy, e)
	}
}

func TestParsePeerStats(t *testing.T) {
	out := []byte("18:53:12 [1] Starting JetStream asynchronous publisher\n\n" +
		"NATS JetStream asynchronous publisher stats: 120,632 msgs/sec ~ 12 MiB/sec ~ min: 2,063.21us ~ avg: 4,138.91us ~ " +
		"max: 18,050.63us ~ P50: 3,578.40us ~ P90: 6,369.91us ~ P99: 10,646.65us ~ P99.9: 17,028.52us\n")
	r := peerRun{SizeBytes: 100}
	if err := r.parse(out); err != nil {
		t.Fatal(err)
	}
	if r.RecordsPerSec != 120632 || r.MBPerSec != 12.0632 {
		t.Errorf("rate %v msgs/s %v MB/s, want 120632 and 12.0632", r.RecordsPerSec, r.MBPerSec)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(r.P50Ms, 3.5784) || !near(r.P99Ms, 10.64665) || !near(r.P999Ms, 17.02852) {
		t.Errorf("percentiles %v %v %v", r.P50Ms, r.P99Ms, r.P999Ms)
	}
	cons := peerRun{SizeBytes: 1024}
	if err := cons.parse([]byte("NATS JetStream ordered ephemeral consumer stats: 294,505 msgs/sec ~ 36 MiB/sec\n")); err != nil {
		t.Fatal(err)
	}
	if cons.RecordsPerSec != 294505 || cons.P99Ms != 0 {
		t.Errorf("consumer rate %v p99 %v", cons.RecordsPerSec, cons.P99Ms)
	}
	if err := (&peerRun{}).parse([]byte("nats: error: nothing\n")); err == nil {
		t.Error("output without a stats line parsed")
	}
}
