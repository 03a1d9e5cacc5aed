package main

import (
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-db/strata/loadgen/cpuset"
)

// suiteJSON is the part of the suite's JSON the test checks.
type suiteJSON struct {
	Workload    string `json:"workload"`
	Quick       bool   `json:"quick"`
	ClientProcs int    `json:"client_procs"`
	CaseCPUs    string `json:"case_cpus"`
	Ceiling     struct {
		Produce json.RawMessage `json:"produce"`
		Consume json.RawMessage `json:"consume"`
		Splice  json.RawMessage `json:"splice"`
		// The ceilings measured again after the cases.
		ProduceAfter json.RawMessage `json:"produce_after"`
		ConsumeAfter json.RawMessage `json:"consume_after"`
	} `json:"ceiling"`
	Cases []struct {
		Name           string          `json:"name"`
		Against        string          `json:"against"`
		RatioToCeiling float64         `json:"ratio_to_ceiling"`
		Result         json.RawMessage `json:"result"`
	} `json:"cases"`
	Paired []struct {
		Name    string `json:"name"`
		Against string `json:"against"`
		Rounds  []struct {
			Ceiling json.RawMessage `json:"ceiling"`
			Case    json.RawMessage `json:"case"`
			Ratio   float64         `json:"ratio"`
		} `json:"rounds"`
		MedianRatio float64 `json:"median_ratio"`
		MinRatio    float64 `json:"min_ratio"`
		MaxRatio    float64 `json:"max_ratio"`
	} `json:"paired"`
}

func decodeReport(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return m
}

func TestSuiteQuick(t *testing.T) {
	b := startBroker(t)
	allowed, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	// The cases on the last CPU, with GOMAXPROCS following the list.
	caseCPUs := cpuset.Format(allowed[len(allowed)-1:])
	procsBefore := runtime.GOMAXPROCS(0)
	stdout, stderr, code := loadgenRun(t, "suite", "--quick", "--brokers", b.Addr, "--topic", "smoke",
		"--dir", t.TempDir(), "--json", "--case-cpus", caseCPUs, "--paired-rounds", "2")
	if code != exitOK {
		t.Fatalf("suite: exit %d\nstderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	var s suiteJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatalf("last line is not the suite's JSON: %v", err)
	}
	checkSuite(t, s)
	if s.ClientProcs != 1 || s.CaseCPUs != caseCPUs {
		t.Errorf("client_procs = %d, case_cpus %q; want 1, %q", s.ClientProcs, s.CaseCPUs, caseCPUs)
	}
	if now, err := cpuset.Allowed(); err != nil || cpuset.Format(now) != cpuset.Format(allowed) {
		t.Errorf("after the suite this thread may run on %v (%v), want %v as before", now, err, allowed)
	}
	if procs := runtime.GOMAXPROCS(0); procs != procsBefore {
		t.Errorf("GOMAXPROCS %d after the suite, want %d again", procs, procsBefore)
	}
	for _, want := range []string{"ceiling produce", "produce-100B", "e2e-1KiB", "of ceiling", "ceiling consume after",
		"paired consume-1KiB: median", "paired produce-1KiB: median"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}

// checkSuite asserts what holds of any suite run: every case present with
// consistent counts, the consumers read what the producers wrote, and the
// ratios are the case over the mean of the ceiling measured before and
// after the cases in the same run.
func checkSuite(t *testing.T, s suiteJSON) {
	t.Helper()
	if s.Workload != "suite" || !s.Quick {
		t.Errorf("workload %q quick %v, want suite true", s.Workload, s.Quick)
	}
	ceiling := map[string]float64{}
	for mode, raw := range map[string]json.RawMessage{"produce": s.Ceiling.Produce, "consume": s.Ceiling.Consume, "splice": s.Ceiling.Splice} {
		m := decodeReport(t, raw)
		checkConsistent(t, m)
		if jsonString(t, m, "mode") != mode {
			t.Errorf("ceiling %s has mode %v", mode, m["mode"])
		}
		ceiling[mode] = jsonFloat(t, m, "mb_per_sec")
	}
	for mode, raw := range map[string]json.RawMessage{"produce": s.Ceiling.ProduceAfter, "consume": s.Ceiling.ConsumeAfter} {
		m := decodeReport(t, raw)
		checkConsistent(t, m)
		if jsonString(t, m, "mode") != mode {
			t.Errorf("ceiling %s after the cases has mode %v", mode, m["mode"])
		}
		ceiling[mode] = (ceiling[mode] + jsonFloat(t, m, "mb_per_sec")) / 2
	}
	want := []string{"produce-100B", "produce-1KiB", "produce-100B-3-producers", "consume-100B",
		"consume-100B-3-consumers", "consume-1KiB", "produce-and-consume-100B",
		"size-10B", "size-100B", "size-1000B", "size-10000B", "size-100000B", "e2e-1KiB"}
	if len(s.Cases) != len(want) {
		t.Fatalf("%d cases, want %d", len(s.Cases), len(want))
	}
	results := map[string]map[string]any{}
	for i, c := range s.Cases {
		if c.Name != want[i] {
			t.Errorf("case %d is %q, want %q", i, c.Name, want[i])
		}
		m := decodeReport(t, c.Result)
		checkConsistent(t, m)
		results[c.Name] = m
		if c.Against == "" {
			continue
		}
		if got, want := c.RatioToCeiling, jsonFloat(t, m, "mb_per_sec")/ceiling[c.Against]; !closeTo(got, want) {
			t.Errorf("%s: ratio_to_ceiling %v, want mb_per_sec over the mean %s ceiling = %v", c.Name, got, c.Against, want)
		}
	}
	produced := jsonInt(t, results["produce-100B"], "records")
	for _, name := range []string{"consume-100B", "consume-100B-3-consumers"} {
		if got := jsonInt(t, results[name], "records"); got != produced {
			t.Errorf("%s read %d records, produce-100B wrote %d", name, got, produced)
		}
	}
	if got, want := jsonInt(t, results["consume-1KiB"], "records"), jsonInt(t, results["produce-1KiB"], "records"); got != want {
		t.Errorf("consume-1KiB read %d records, produce-1KiB wrote %d", got, want)
	}
	if got := jsonInt(t, results["consume-100B-3-consumers"], "consumers"); got != 3 {
		t.Errorf("consume-100B-3-consumers ran %d consumers", got)
	}
	for _, name := range []string{"produce-and-consume-100B", "e2e-1KiB"} {
		m := results[name]
		if jsonInt(t, m, "records") != jsonInt(t, m, "produced") {
			t.Errorf("%s read %d records of %d produced", name, jsonInt(t, m, "records"), jsonInt(t, m, "produced"))
		}
	}
	checkPaired(t, s, jsonInt(t, results["produce-1KiB"], "records"))
	for _, size := range suiteSweepSizes {
		m := results["size-"+strconv.FormatInt(size, 10)+"B"]
		if got := jsonInt(t, m, "record_size_bytes"); got != size {
			t.Errorf("sweep case has record_size_bytes %d, want %d", got, size)
		}
	}
}

// checkPaired asserts the paired rounds: two per goal case, each a ceiling
// of the case's kind and the case, the ratio the one over the other, the
// median that of two rounds; a consume round reads every record
// produce-1KiB wrote (produced of them).
func checkPaired(t *testing.T, s suiteJSON, produced int64) {
	t.Helper()
	if len(s.Paired) != 2 {
		t.Fatalf("%d paired cases, want 2", len(s.Paired))
	}
	for i, want := range []struct{ name, against string }{{"consume-1KiB", "consume"}, {"produce-1KiB", "produce"}} {
		p := s.Paired[i]
		if p.Name != want.name || p.Against != want.against {
			t.Errorf("paired case %d is %s against %s, want %s against %s", i, p.Name, p.Against, want.name, want.against)
		}
		if len(p.Rounds) != 2 {
			t.Errorf("%s: %d rounds, want 2", p.Name, len(p.Rounds))
			continue
		}
		var ratios []float64
		for k, r := range p.Rounds {
			ceiling, result := decodeReport(t, r.Ceiling), decodeReport(t, r.Case)
			checkConsistent(t, ceiling)
			checkConsistent(t, result)
			if jsonString(t, ceiling, "mode") != want.against {
				t.Errorf("%s round %d: ceiling mode %v, want %s", p.Name, k, ceiling["mode"], want.against)
			}
			if got := jsonString(t, result, "workload"); got != want.against {
				t.Errorf("%s round %d: workload %s, want %s", p.Name, k, got, want.against)
			}
			if want.against == "consume" {
				if got := jsonInt(t, result, "records"); got != produced {
					t.Errorf("%s round %d read %d records, produce-1KiB wrote %d", p.Name, k, got, produced)
				}
			}
			if w := jsonFloat(t, result, "mb_per_sec") / jsonFloat(t, ceiling, "mb_per_sec"); !closeTo(r.Ratio, w) {
				t.Errorf("%s round %d: ratio %v, want case over ceiling = %v", p.Name, k, r.Ratio, w)
			}
			ratios = append(ratios, r.Ratio)
		}
		lo, hi := min(ratios[0], ratios[1]), max(ratios[0], ratios[1])
		if !closeTo(p.MedianRatio, (lo+hi)/2) || p.MinRatio != lo || p.MaxRatio != hi {
			t.Errorf("%s: median %v min %v max %v of ratios %v", p.Name, p.MedianRatio, p.MinRatio, p.MaxRatio, ratios)
		}
	}
}
