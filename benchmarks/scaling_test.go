package main

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/strata-db/strata/loadgen/cpuset"
)

// TestQuickScaling runs the shard scaling sweep at the smoke scale on one
// and two shards (every CPU shared: the development machine has two) and
// checks that each point produced and read back its records, on the CPUs
// it names, with linearities against the first point.
func TestQuickScaling(t *testing.T) {
	res, mdPath := runQuick(t, "scaling smoke", "--scaling", "1,2", "--client-cpus", "0")
	if res.Scaling == nil || len(res.Scaling.Points) != 2 || len(res.Strata) != 0 || res.Peer != nil {
		t.Fatalf("scaling %+v, %d suites, peer %v: want two points and nothing else", res.Scaling, len(res.Strata), res.Peer)
	}
	for i, p := range res.Scaling.Points {
		n := i + 1
		if p.Shards != n || p.Producers != scalingProducersPerShard*n || p.Partitions != scalingPartitionsPerShard*n {
			t.Errorf("point %d: %+v", i, p)
		}
		if got := int64(scalingQuickRecords * p.Producers); p.Produce.Records != got || p.Consume.Records != got {
			t.Errorf("%d shards: produced %d, read %d records, want %d each", n, p.Produce.Records, p.Consume.Records, got)
		}
		if cpus, err := cpuset.Parse(p.BrokerCPUs); err != nil || len(cpus) != n {
			t.Errorf("%d shards on CPUs %q (%v), want %d CPUs", n, p.BrokerCPUs, err, n)
		}
		first := res.Scaling.Points[0]
		want := p.Produce.MBPerSec / (first.Produce.MBPerSec * float64(n))
		if !closeEnough(p.ProduceLinearity, want) {
			t.Errorf("%d shards: produce linearity %v, want %v", n, p.ProduceLinearity, want)
		}
		want = p.Consume.MBPerSec / (first.Consume.MBPerSec * float64(n))
		if !closeEnough(p.ConsumeLinearity, want) {
			t.Errorf("%d shards: consume linearity %v, want %v", n, p.ConsumeLinearity, want)
		}
	}
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "## Shard scaling") {
		t.Error("results Markdown lacks the scaling table")
	}
}

func TestShardCountsAndTheGoal(t *testing.T) {
	for _, bad := range []string{"", "0", "2,1", "1,1", "1,x", "-1"} {
		if _, err := parseShardCounts(bad); err == nil {
			t.Errorf("--scaling %q accepted", bad)
		}
	}
	r := &scalingResult{FlushPolicy: "never", Points: []scalingPoint{
		{Shards: 1, Produce: figures{MBPerSec: 100}, Consume: figures{MBPerSec: 200}},
		{Shards: 4, Produce: figures{MBPerSec: 380}, Consume: figures{MBPerSec: 700}},
		{Shards: 8, Produce: figures{MBPerSec: 700}, Consume: figures{MBPerSec: 1200}},
	}}
	r.linearities()
	if got := r.Points[2].ProduceLinearity; !closeEnough(got, 0.875) {
		t.Errorf("produce linearity at 8 = %v, want 0.875", got)
	}
	gs := r.goals()
	if len(gs) != 2 || !gs[0].Met || gs[1].Met {
		t.Errorf("goals %+v: want produce met (0.875), consume not (0.75)", gs)
	}
	r.Points = r.Points[:2]
	if gs := r.goals(); len(gs) != 0 {
		t.Errorf("goals without an 8-shard point: %+v", gs)
	}
}

// closeEnough compares computed ratios, which JSON carries as decimals.
func closeEnough(a, b float64) bool { return math.Abs(a-b) < 1e-9*max(1, math.Abs(b)) }
