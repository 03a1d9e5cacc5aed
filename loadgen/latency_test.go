package main

import (
	"testing"
	"time"
)

func TestLatencyRecorderClampsAndSummarises(t *testing.T) {
	r := newLatencyRecorder()
	if s := r.summary(); s.samples != 0 || s.maxMs != 0 {
		t.Errorf("empty summary = %+v", s)
	}
	for range 98 {
		r.record(2 * time.Millisecond)
	}
	r.record(0)             // below the range: counted as 1 µs
	r.record(2 * time.Hour) // above the range: counted as 60 s
	s := r.summary()
	if s.samples != 100 {
		t.Errorf("samples = %d, want 100", s.samples)
	}
	// 3 significant digits: within 0.1% of the recorded value.
	if s.p50Ms < 1.998 || s.p50Ms > 2.002 {
		t.Errorf("p50 = %v ms, want about 2", s.p50Ms)
	}
	if s.maxMs < 59_940 || s.maxMs > 60_060 {
		t.Errorf("max = %v ms, want about 60000 (clamped)", s.maxMs)
	}
	if s.p999Ms < s.p99Ms || s.p99Ms < s.p50Ms {
		t.Errorf("percentiles out of order: %+v", s)
	}
}

func TestChunkClockOneSamplePerChunk(t *testing.T) {
	c := newChunkClock(time.Now())
	// Three chunks ending at 100, 250 and 300; the receiver sees the stream
	// in reads that straddle chunk boundaries.
	for _, end := range []int64{100, 250, 300} {
		if err := c.starting(end); err != nil {
			t.Fatal(err)
		}
	}
	wantSamples := []int64{0, 1, 1, 2, 3}
	for i, total := range []int64{50, 100, 120, 260, 300} {
		c.arrived(total)
		if got := c.latencies.summary().samples; got != wantSamples[i] {
			t.Errorf("after %d bytes: %d samples, want %d", total, got, wantSamples[i])
		}
	}
}

// The per-chunk bookkeeping on both sides of a stream runs once per chunk for
// the whole run; it must not allocate.
func TestChunkBookkeepingDoesNotAllocate(t *testing.T) {
	c := newChunkClock(time.Now())
	b := newBudget(t.Context(), &workloadFlags{recordSizeBytes: 1, duration: time.Hour}, time.Now())
	var end int64
	allocs := testing.AllocsPerRun(1000, func() {
		n, _ := b.next(end, 4096, time.Now())
		end += n
		if err := c.starting(end); err != nil {
			t.Fatal(err)
		}
		c.arrived(end)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per chunk, want 0", allocs)
	}
	if got := c.latencies.summary().samples; got != 1001 {
		t.Errorf("%d samples, want one per chunk (1001 with the warm-up run)", got)
	}
}

func TestChunkClockAbortReleasesAWaitingSender(t *testing.T) {
	c := newChunkClock(time.Now())
	for i := range maxChunksInFlight {
		if err := c.starting(int64(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	// The queue is full: the next stamp waits until the stream is aborted.
	errc := make(chan error, 1)
	go func() { errc <- c.starting(maxChunksInFlight + 1) }()
	c.abort()
	if err := <-errc; err != errStreamAborted {
		t.Errorf("starting after abort = %v, want errStreamAborted", err)
	}
}
