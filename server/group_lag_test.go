package server

import "testing"

// TestHWHistoryLag: the seconds behind are read off the high watermarks
// seen: interpolated between the samples around the committed offset, 0
// when the watermark is not past it, a lower bound when the history starts
// past it; a watermark that goes back starts the history again.
func TestHWHistoryLag(t *testing.T) {
	var h hwHistory
	if ms, exact := h.lagMs(5, 1000); ms != 0 || !exact {
		t.Fatalf("no history: %d %v", ms, exact)
	}
	h.observe(100, 1000)
	h.observe(100, 2000) // unchanged: the sample's last sight moves
	h.observe(200, 3000)
	h.observe(300, 5000)
	cases := []struct {
		committed, now, want int64
		exact                bool
	}{
		{300, 6000, 0, true},    // caught up
		{350, 6000, 0, true},    // past the watermark
		{100, 6000, 3990, true}, // record 100 passed between 2000 and 3000: 1/100 of the way
		{199, 6000, 3000, true}, // the last record of the second sample
		{249, 6000, 2000, true}, // halfway from 3000 to 5000
		{50, 6000, 5000, false}, // before the history: at least since 1000
	}
	for _, c := range cases {
		if ms, exact := h.lagMs(c.committed, c.now); ms != c.want || exact != c.exact {
			t.Errorf("committed %d at %d: %d ms (exact %v), want %d (%v)", c.committed, c.now, ms, exact, c.want, c.exact)
		}
	}
	h.observe(10, 7000)
	if len(h.samples) != 1 || h.samples[0].offset != 10 {
		t.Fatalf("after the watermark went back: %+v", h.samples)
	}
}

// TestHWHistoryThin: the history stays bounded, keeps its oldest sample
// and its newest, and stays ordered.
func TestHWHistoryThin(t *testing.T) {
	var h hwHistory
	for i := range int64(1000) {
		h.observe(i*10, i*1000)
		if len(h.samples) > groupLagSamplesMax {
			t.Fatalf("%d samples", len(h.samples))
		}
	}
	if h.samples[0].offset != 0 || h.samples[len(h.samples)-1].offset != 9990 {
		t.Fatalf("ends %+v %+v", h.samples[0], h.samples[len(h.samples)-1])
	}
	for i := 1; i < len(h.samples); i++ {
		if h.samples[i].offset <= h.samples[i-1].offset || h.samples[i].firstMs <= h.samples[i-1].lastMs {
			t.Fatalf("out of order at %d: %+v", i, h.samples)
		}
	}
	// The newest samples keep the scrape's grain.
	if ms, exact := h.lagMs(9985, 999_000); ms != 400 || !exact {
		t.Fatalf("recent lag %d %v", ms, exact)
	}
}
