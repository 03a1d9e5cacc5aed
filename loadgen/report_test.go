package main

import (
	"strings"
	"testing"
	"time"
)

func TestReportJSONIsTheLastLine(t *testing.T) {
	r := &report{Workload: "ceiling", Mode: "produce", title: "title line",
		machineFacts: machineFacts{Hostname: "h", NProc: 4, CPUModel: "c", KernelRelease: "k"}}
	r.fill(3_000_000, 1000, 2*time.Second, latencySummary{samples: 3, p50Ms: 1, p99Ms: 2, p999Ms: 3, maxMs: 4})
	var out strings.Builder
	if err := r.print(&out, true); err != nil {
		t.Fatal(err)
	}
	m := lastJSONLine(t, out.String())
	checkConsistent(t, m)
	if got := jsonFloat(t, m, "mb_per_sec"); got != 1.5 {
		t.Errorf("mb_per_sec = %v, want 1.5 (3e6 bytes over 2 s, MB = 10^6 bytes)", got)
	}
	if got := jsonInt(t, m, "records"); got != 3000 {
		t.Errorf("records = %d, want 3000", got)
	}
	if _, ok := m["file_path"]; ok {
		t.Error("workload details present in a report without them")
	}
	if !strings.HasPrefix(out.String(), "title line\n") {
		t.Errorf("summary does not start with the title:\n%s", out.String())
	}
	if strings.Count(out.String(), "{") != 1 {
		t.Errorf("want exactly one JSON object:\n%s", out.String())
	}
}
