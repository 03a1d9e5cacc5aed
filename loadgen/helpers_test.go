package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// loadgenRun runs loadgen in-process and returns its stdout, stderr and exit
// code.
func loadgenRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// lastJSONLine parses the last line of stdout as the JSON report, failing
// the test if it is missing or not one JSON object.
func lastJSONLine(t *testing.T, stdout string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	last := lines[len(lines)-1]
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(last))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("last line of stdout is not a JSON object: %v\nstdout:\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("last line holds more than one JSON value: %q", last)
	}
	return m
}

// requiredJSONKeys are the fields every workload's JSON report carries.
var requiredJSONKeys = []string{
	"workload", "mode", "records", "bytes", "seconds", "records_per_sec",
	"mb_per_sec", "p50_ms", "p99_ms", "p999_ms", "max_ms", "record_size_bytes",
	"hostname", "nproc", "cpu_model", "kernel_release",
}

func checkRequiredKeys(t *testing.T, m map[string]any) {
	t.Helper()
	for _, k := range requiredJSONKeys {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
}

func jsonInt(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("JSON field %q is %T (%v), want a number", key, m[key], m[key])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("JSON field %q = %s, want an integer", key, n)
	}
	return v
}

func jsonFloat(t *testing.T, m map[string]any, key string) float64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("JSON field %q is %T (%v), want a number", key, m[key], m[key])
	}
	v, err := n.Float64()
	if err != nil {
		t.Fatalf("JSON field %q = %s: %v", key, n, err)
	}
	return v
}

func jsonString(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	s, ok := m[key].(string)
	if !ok {
		t.Fatalf("JSON field %q is %T (%v), want a string", key, m[key], m[key])
	}
	return s
}

// checkConsistent asserts the relations that hold between a report's
// figures whatever the machine: whole records, ordered percentiles, rates
// derived from the counts.
func checkConsistent(t *testing.T, m map[string]any) {
	t.Helper()
	checkRequiredKeys(t, m)
	records, bytesMoved := jsonInt(t, m, "records"), jsonInt(t, m, "bytes")
	size := jsonInt(t, m, "record_size_bytes")
	if records*size != bytesMoved {
		t.Errorf("records %d x record_size_bytes %d != bytes %d", records, size, bytesMoved)
	}
	secs := jsonFloat(t, m, "seconds")
	if secs <= 0 {
		t.Fatalf("seconds = %v, want > 0", secs)
	}
	if got, want := jsonFloat(t, m, "mb_per_sec"), float64(bytesMoved)/1e6/secs; !closeTo(got, want) {
		t.Errorf("mb_per_sec = %v, want bytes/seconds/10^6 = %v", got, want)
	}
	if got, want := jsonFloat(t, m, "records_per_sec"), float64(records)/secs; !closeTo(got, want) {
		t.Errorf("records_per_sec = %v, want %v", got, want)
	}
	p50, p99 := jsonFloat(t, m, "p50_ms"), jsonFloat(t, m, "p99_ms")
	p999, maxMs := jsonFloat(t, m, "p999_ms"), jsonFloat(t, m, "max_ms")
	if !(0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= maxMs) {
		t.Errorf("latencies not ordered: p50 %v p99 %v p99.9 %v max %v", p50, p99, p999, maxMs)
	}
	if jsonInt(t, m, "nproc") < 1 {
		t.Errorf("nproc = %v", m["nproc"])
	}
}

func closeTo(a, b float64) bool {
	const relTolerance = 1e-9
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= relTolerance*max(a, b, 1)
}
