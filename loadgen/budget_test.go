package main

import (
	"context"
	"testing"
	"time"
)

func TestBudgetStopsAtRecords(t *testing.T) {
	now := time.Now()
	wf := &workloadFlags{recordSizeBytes: 100, records: 25}
	b := newBudget(t.Context(), wf, now)
	var sent int64
	var chunks []int64
	for {
		n, why := b.next(sent, 1000, now)
		if n == 0 {
			if why != stopRecords {
				t.Errorf("stopped by %q, want records", why)
			}
			break
		}
		chunks = append(chunks, n)
		sent += n
	}
	if sent != 2500 || len(chunks) != 3 || chunks[2] != 500 {
		t.Errorf("sent %d in chunks %v, want 2500 in 1000, 1000, 500", sent, chunks)
	}
}

func TestBudgetStopsAtDeadline(t *testing.T) {
	start := time.Now()
	wf := &workloadFlags{recordSizeBytes: 1, duration: time.Second}
	b := newBudget(t.Context(), wf, start)
	if n, why := b.next(0, 10, start.Add(999*time.Millisecond)); n != 10 || why != stopNone {
		t.Errorf("before the deadline: %d, %q", n, why)
	}
	if n, why := b.next(0, 10, start.Add(time.Second)); n != 0 || why != stopDuration {
		t.Errorf("at the deadline: %d, %q; want 0, duration", n, why)
	}
}

func TestBudgetDiskCapAndInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	now := time.Now()
	wf := &workloadFlags{recordSizeBytes: 1, duration: time.Hour}
	b := newBudget(ctx, wf, now)
	b.capBytes(15, stopDiskSpace)
	if n, _ := b.next(10, 10, now); n != 5 {
		t.Errorf("chunk near the disk cap = %d, want 5", n)
	}
	if n, why := b.next(15, 10, now); n != 0 || why != stopDiskSpace {
		t.Errorf("at the disk cap: %d, %q", n, why)
	}
	// A larger cap does not raise a smaller one.
	b.capBytes(100, stopRecords)
	if b.limitBytes != 15 {
		t.Errorf("limit = %d after a larger cap, want 15", b.limitBytes)
	}
	cancel()
	if n, why := b.next(0, 10, now); n != 0 || why != stopInterrupted {
		t.Errorf("after cancel: %d, %q; want 0, interrupted", n, why)
	}
}

func TestChunkSizeIsWholeRecords(t *testing.T) {
	cases := []struct{ batch, record, want int64 }{
		{1 << 20, 1024, 1 << 20},
		{65536, 1000, 65000},
		{100, 1000, 1000}, // a record larger than the batch still goes whole
		{1, 1, 1},
	}
	for _, c := range cases {
		if got := chunkSize(c.batch, c.record); got != c.want {
			t.Errorf("chunkSize(%d, %d) = %d, want %d", c.batch, c.record, got, c.want)
		}
	}
}
