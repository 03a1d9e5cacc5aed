package main

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latencyRecorder is the latency histogram every workload reports from:
// microsecond resolution, 1 µs to 60 s, 3 significant digits. It is owned by
// one goroutine; recording allocates nothing.
type latencyRecorder struct {
	h *hdrhistogram.Histogram
}

func newLatencyRecorder() *latencyRecorder {
	return &latencyRecorder{h: hdrhistogram.New(latencyMinMicros, latencyMaxMicros, latencySignificantDigits)}
}

// record adds one latency. Values outside the histogram's range are clamped
// to it rather than dropped, so the sample count always equals the number of
// operations and an outlier still shows as the maximum.
func (r *latencyRecorder) record(d time.Duration) {
	us := d.Microseconds()
	us = max(us, latencyMinMicros)
	us = min(us, latencyMaxMicros)
	// The value is within the histogram's range, so RecordValue cannot fail.
	_ = r.h.RecordValue(us)
}

// latencySummary is the part of a report drawn from the histogram, in
// milliseconds.
type latencySummary struct {
	samples                             int64
	p50Ms, p99Ms, p999Ms, maxMs, meanMs float64
}

func (r *latencyRecorder) summary() latencySummary {
	if r.h.TotalCount() == 0 {
		return latencySummary{}
	}
	return latencySummary{
		samples: r.h.TotalCount(),
		p50Ms:   microsToMs(float64(r.h.ValueAtQuantile(50))),
		p99Ms:   microsToMs(float64(r.h.ValueAtQuantile(99))),
		p999Ms:  microsToMs(float64(r.h.ValueAtQuantile(99.9))),
		maxMs:   microsToMs(float64(r.h.Max())),
		meanMs:  microsToMs(r.h.Mean()),
	}
}

func microsToMs(us float64) float64 { return us / float64(time.Millisecond/time.Microsecond) }
