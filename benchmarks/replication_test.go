package main

import (
	"os"
	"strings"
	"testing"
)

// TestQuickReplication runs the replication section alone at --quick
// scale: three real broker processes, the throughput cases, e2e, a
// follower's catch-up and leader kills under the short timeouts. It
// checks that the figures are consistent with each other, not what they
// are.
func TestQuickReplication(t *testing.T) {
	res, mdPath := runQuick(t, "replication smoke test", "--suites=false", "--peer=false", "--groups=false", "--compression-rounds", "0")
	r := res.Replication
	if r == nil || len(res.Strata) != 0 {
		t.Fatalf("replication %v, suites %d: want the replication section alone", r, len(res.Strata))
	}
	if r.Brokers != clusterBrokers || r.CeilingProduce.MBPerSec <= 0 || r.CeilingConsume.MBPerSec <= 0 {
		t.Errorf("brokers %d, ceilings %+v %+v", r.Brokers, r.CeilingProduce, r.CeilingConsume)
	}
	want := []string{"rf1-acks-1", "rf1-acks-all", "rf3-acks-all"}
	if len(r.Cases) != len(want) {
		t.Fatalf("cases %+v, want %v", r.Cases, want)
	}
	for i, c := range r.Cases {
		f := c.Result
		if c.Name != want[i] || f.Records != replQuickRecords || f.Records*f.RecordSizeBytes != f.Bytes || c.OfProduceCeiling <= 0 {
			t.Errorf("case %d: %+v", i, c)
		}
		if !(f.P50Ms <= f.P99Ms && f.P99Ms <= f.P999Ms && f.P999Ms <= f.MaxMs) {
			t.Errorf("%s: percentiles out of order: %+v", c.Name, f)
		}
		if c.Warmup.Records != replWarmupRecords || c.Warmup.MaxMs <= 0 {
			t.Errorf("%s: warm-up %+v, want %d records", c.Name, c.Warmup, replWarmupRecords)
		}
	}
	if r.RF3OverRF1 <= 0 {
		t.Errorf("rf3 over rf1 %v", r.RF3OverRF1)
	}
	if e := r.E2E; e.Records != replQuickRecords || e.Produced != e.Records || !(e.P50Ms <= e.P99Ms && e.P99Ms <= e.P999Ms) {
		t.Errorf("e2e %+v: want %d records read of as many produced, percentiles in order", e, replQuickRecords)
	}
	cu := r.CatchUp
	if cu == nil || cu.BacklogBytes < replQuickCatchupBytes || cu.Fill.Bytes != replQuickCatchupBytes ||
		cu.CaughtUpMs <= cu.ReadyMs || cu.MBPerSec <= 0 || cu.OfConsumeCeiling <= 0 {
		t.Errorf("catch-up %+v: want a backlog of at least %d bytes caught up after the ready line", cu, replQuickCatchupBytes)
	}
	// --quick leaves out the default timeouts' kills (each waits a 9 s
	// session out).
	if len(r.Failover) != 1 || r.Failover[0].Timeouts.Name != shortTimeouts.Name || len(r.Failover[0].Samples) != quickFailoverRounds {
		t.Fatalf("failover %+v: want %d kills under the short timeouts", r.Failover, quickFailoverRounds)
	}
	for i, s := range r.Failover[0].Samples {
		if s.NewLeader < 1 || s.NewLeader == s.Killed || s.FirstAckMs <= 0 || s.LeaderSeenMs <= 0 || s.RejoinMs <= 0 {
			t.Errorf("kill %d: %+v", i+1, s)
		}
	}
	if len(res.Goals) != 1 || !strings.Contains(res.Goals[0].Goal, "replication factor 3") {
		t.Errorf("goals %+v: want the replication goal alone", res.Goals)
	}
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"## Replication", "rf3-acks-all", "End to end", "Catch-up", "Failover", "median"} {
		if !strings.Contains(string(md), w) {
			t.Errorf("results Markdown lacks %q", w)
		}
	}
}

func TestParseByteCount(t *testing.T) {
	for s, want := range map[string]int64{"1GiB": 1 << 30, "16MiB": 16 << 20, "4096": 4096, "3KiB": 3072, "10B": 10} {
		if n, err := parseByteCount(s); err != nil || n != want {
			t.Errorf("%q: %d, %v; want %d", s, n, err, want)
		}
	}
	for _, s := range []string{"", "0", "-1MiB", "1TB", "GiB", "2000000GiB"} {
		if _, err := parseByteCount(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestReplicationFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--quick"})
	if err != nil || cfg.catchupBytes != replQuickCatchupBytes || cfg.failoverRepeats != quickFailoverRounds || !cfg.replication {
		t.Errorf("--quick: %+v %v", cfg, err)
	}
	cfg, err = parseFlags([]string{"--quick", "--catchup-bytes", "64MiB", "--failover-repeats", "5", "--replication=false"})
	if err != nil || cfg.catchupBytes != 64<<20 || cfg.failoverRepeats != 5 || cfg.replication {
		t.Errorf("--quick with the replication flags given: %+v %v", cfg, err)
	}
	cfg, err = parseFlags(nil)
	if err != nil || cfg.catchupBytes != defaultCatchupBytes || cfg.failoverRepeats != defaultFailoverRounds {
		t.Errorf("defaults: %+v %v", cfg, err)
	}
	if _, err := parseFlags([]string{"--failover-repeats", "0"}); err == nil {
		t.Error("--failover-repeats 0 accepted")
	}
}
