package main

import "testing"

func TestPairedCaseSummary(t *testing.T) {
	cases := []struct {
		ratios           []float64
		median, min, max float64
	}{
		{[]float64{0.9, 0.7, 1.1}, 0.9, 0.7, 1.1},
		{[]float64{0.8, 0.6, 1.0, 0.9}, 0.85, 0.6, 1.0},
		{[]float64{0.75}, 0.75, 0.75, 0.75},
		{nil, 0, 0, 0},
	}
	for _, c := range cases {
		var p pairedCase
		for _, r := range c.ratios {
			p.Rounds = append(p.Rounds, pairedRound{Ratio: r})
		}
		p.summarize()
		if !closeTo(p.MedianRatio, c.median) || p.MinRatio != c.min || p.MaxRatio != c.max {
			t.Errorf("ratios %v: median %v min %v max %v, want %v %v %v", c.ratios,
				p.MedianRatio, p.MinRatio, p.MaxRatio, c.median, c.min, c.max)
		}
		if got := p.Rounds; len(got) > 0 && got[0].Ratio != c.ratios[0] {
			t.Errorf("summarize reordered the rounds: %v", got)
		}
	}
}
