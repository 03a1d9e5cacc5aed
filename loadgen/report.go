package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// report is what every workload prints: a summary table for people and, with
// --json, the same figures as one JSON object on the last line of stdout for
// scripts (benchmarks/ reads that line).
//
// Throughput is in MB/s with MB = 10^6 bytes. Latencies are in milliseconds,
// taken from an HdrHistogram with microsecond resolution.
type report struct {
	Workload        string  `json:"workload"`
	Mode            string  `json:"mode"`
	Records         int64   `json:"records"`
	Bytes           int64   `json:"bytes"`
	Seconds         float64 `json:"seconds"`
	RecordsPerSec   float64 `json:"records_per_sec"`
	MBPerSec        float64 `json:"mb_per_sec"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	P999Ms          float64 `json:"p999_ms"`
	MaxMs           float64 `json:"max_ms"`
	MeanMs          float64 `json:"mean_ms"`
	LatencySamples  int64   `json:"latency_samples"`
	LatencyOf       string  `json:"latency_of"`
	RecordSizeBytes int64   `json:"record_size_bytes"`
	StoppedBy       string  `json:"stopped_by"`
	StartedAt       string  `json:"started_at"`
	// BatchBytes is --batch-bytes: the ceiling's chunk before rounding, or
	// the producer's batch size.
	BatchBytes int64 `json:"batch_bytes,omitempty"`

	// Workload-specific fields; nil ones are left out of the JSON.
	*ceilingDetails
	*clientDetails

	machineFacts

	// title heads the summary table; rows are workload-specific lines
	// printed after the common ones.
	title string
	rows  []summaryRow
}

type summaryRow struct{ label, value string }

// fill sets the figures derived from what was moved, how long it took and the
// latencies recorded.
func (r *report) fill(bytes, recordSizeBytes int64, elapsed time.Duration, lat latencySummary) {
	r.fillCounts(bytes/recordSizeBytes, bytes, recordSizeBytes, elapsed, lat)
}

// fillCounts is fill for workloads that count records themselves.
func (r *report) fillCounts(records, bytes, recordSizeBytes int64, elapsed time.Duration, lat latencySummary) {
	r.Bytes = bytes
	r.RecordSizeBytes = recordSizeBytes
	r.Records = records
	r.Seconds = elapsed.Seconds()
	if r.Seconds > 0 {
		r.RecordsPerSec = float64(r.Records) / r.Seconds
		r.MBPerSec = float64(bytes) / bytesPerMB / r.Seconds
	}
	r.P50Ms, r.P99Ms, r.P999Ms = lat.p50Ms, lat.p99Ms, lat.p999Ms
	r.MaxMs, r.MeanMs, r.LatencySamples = lat.maxMs, lat.meanMs, lat.samples
}

// print writes the summary table and, when asJSON, the JSON line last.
func (r *report) print(w io.Writer, asJSON bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\n", r.title)
	common := []summaryRow{
		{"records", strconv.FormatInt(r.Records, 10)},
		{"record size", fmt.Sprintf("%d B", r.RecordSizeBytes)},
		{"bytes", fmt.Sprintf("%d (%s)", r.Bytes, humanBytes(r.Bytes))},
		{"seconds", fmt.Sprintf("%.3f", r.Seconds)},
		{"throughput", fmt.Sprintf("%.1f MB/s (MB = 10^6 bytes)", r.MBPerSec)},
		{"records/s", fmt.Sprintf("%.0f", r.RecordsPerSec)},
		{"latency of", r.LatencyOf},
		{"latency ms", fmt.Sprintf("p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f  (%d samples)",
			r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs, r.MeanMs, r.LatencySamples)},
		{"stopped by", r.StoppedBy},
	}
	for _, row := range append(common, r.rows...) {
		fmt.Fprintf(tw, "  %s\t%s\n", row.label, row.value)
	}
	fmt.Fprintf(tw, "  machine\t%s, %d CPUs, %s, kernel %s, %s\n",
		r.Hostname, r.NProc, r.CPUModel, r.KernelRelease, r.GoVersion)
	if err := tw.Flush(); err != nil {
		return err
	}
	if !asJSON {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}

// humanBytes renders n with a binary unit for the summary table.
func humanBytes(n int64) string {
	const unit = 1024
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v := float64(n)
	i := 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
