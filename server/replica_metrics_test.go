package server

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-db/strata/replica"
)

// collectReplication is one partition's replication series by name (and
// follower, for the lag series: name/follower).
func collectReplication(t *testing.T, pm *partitionMetrics) map[string]float64 {
	t.Helper()
	d := newReplicationDescs()
	ch := make(chan prometheus.Metric, 64)
	d.collect(ch, pm)
	close(ch)
	out := map[string]float64{}
	for m := range ch {
		var dm dto.Metric
		if err := m.Write(&dm); err != nil {
			t.Fatal(err)
		}
		name := descName(m.Desc())
		for _, lp := range dm.GetLabel() {
			if lp.GetName() == "follower" {
				name += "/" + lp.GetValue()
			}
		}
		out[name] = dm.GetGauge().GetValue() + dm.GetCounter().GetValue()
	}
	return out
}

// descName is the metric name of a description.
func descName(d *prometheus.Desc) string {
	s := d.String() // Desc{fqName: "name", ...}
	const prefix = `Desc{fqName: "`
	s = s[len(prefix):]
	for i := range len(s) {
		if s[i] == '"' {
			return s[:i]
		}
	}
	return s
}

// A leader's series follow its machine: ISR size and under-replication
// with each accepted ISR change, one shrink and one expand counted, the
// high watermark, and each follower's lag from the tick; as a follower
// the partition is neither leading nor under-replicated and has no lag
// series.
func TestReplicationSeriesFollowTheMachine(t *testing.T) {
	m, err := replica.NewPartition(replica.Config{ID: 1, AckUnsynced: true, LagTimeMaxMs: 10_000}, replica.LogState{})
	if err != nil {
		t.Fatal(err)
	}
	pm := &partitionMetrics{topic: "t", partition: "0"}
	rm := &pm.replication
	run := func(msg replica.Msg) {
		t.Helper()
		m.Step(msg)
		m.Ready()
		m.Advance()
		rm.afterReady(m)
	}
	m.Tick(1_000)
	run(replica.Image{Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, MinInsync: 1})
	run(replica.Produce{ID: 1, Acks: replica.AcksOne, Count: 4})
	m.Tick(1_300)
	m.Ready()
	m.Advance()
	rm.afterTick(m)
	got := collectReplication(t, pm)
	want := map[string]float64{"strata_partition_leader": 1, "strata_partition_under_replicated": 0,
		"strata_partition_isr_size": 3, "strata_partition_high_watermark": 0,
		"strata_isr_shrinks_total": 0, "strata_isr_expands_total": 0,
		"strata_partition_follower_lag_records/2": 4, "strata_partition_follower_lag_records/3": 4,
		"strata_partition_follower_lag_ms/2": 300, "strata_partition_follower_lag_ms/3": 300}
	checkSeries(t, "leading, three in sync", got, want)

	// The controller accepts dropping 3; then adding it back.
	run(replica.AlterPartitionResult{LeaderEpoch: 1, PartitionEpoch: 2, ISR: []int32{1, 2}})
	got = collectReplication(t, pm)
	want["strata_partition_under_replicated"], want["strata_partition_isr_size"], want["strata_isr_shrinks_total"] = 1, 2, 1
	checkSeries(t, "after a shrink", got, want)
	run(replica.AlterPartitionResult{LeaderEpoch: 1, PartitionEpoch: 3, ISR: []int32{1, 2, 3}})
	got = collectReplication(t, pm)
	want["strata_partition_under_replicated"], want["strata_partition_isr_size"], want["strata_isr_expands_total"] = 0, 3, 1
	checkSeries(t, "after an expand", got, want)

	// Another broker leads: this one follows.
	run(replica.Image{Leader: 2, LeaderEpoch: 2, PartitionEpoch: 4, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, MinInsync: 1})
	got = collectReplication(t, pm)
	checkSeries(t, "following", got, map[string]float64{"strata_partition_leader": 0, "strata_partition_under_replicated": 0,
		"strata_partition_high_watermark": 0, "strata_isr_shrinks_total": 1, "strata_isr_expands_total": 1})
}

func checkSeries(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: series %v, want %v", what, got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Fatalf("%s: %s = %v (present %v), want %v; all %v", what, k, g, ok, v, got)
		}
	}
}
