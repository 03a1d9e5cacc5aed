package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResultsNeverOverwritten: a second run of the same day and label
// writes beside the first, not over it.
func TestResultsNeverOverwritten(t *testing.T) {
	dir := t.TempDir()
	r := &results{Date: "2026-01-02", Label: "box"}
	first, _, err := r.write(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := r.write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatalf("both runs wrote %s", first)
	}
	if filepath.Base(second) != "2026-01-02-box-run2.json" {
		t.Fatalf("second run wrote %s", second)
	}
	if _, err := os.Stat(first); err != nil {
		t.Fatal(err)
	}
}

func TestRatioGoalPrefersPairedRounds(t *testing.T) {
	s := &suiteResult{Cases: []suiteCase{{Name: "consume-1KiB", Against: "consume", RatioToCeiling: 0.7,
		Result: figures{MBPerSec: 1400}}}}
	g, ok := ratioGoal(s, "consume-1KiB", "consume goal", "sync", 2000, goalConsumeOfCeiling)
	if !ok || g.Met || g.Measured != "70% (1400.0 of 2000.0 MB/s)" {
		t.Errorf("without paired rounds: %+v %v, want the case's 70%%, not met", g, ok)
	}
	s.Paired = []pairedCase{{Name: "consume-1KiB", Against: "consume", MedianRatio: 0.85, MinRatio: 0.6, MaxRatio: 0.9,
		Rounds: make([]pairedRound, 3)}}
	g, ok = ratioGoal(s, "consume-1KiB", "consume goal", "sync", 2000, goalConsumeOfCeiling)
	if !ok || !g.Met || g.Measured != "median 85% of 3 paired rounds (60% to 90%)" {
		t.Errorf("with paired rounds: %+v %v, want the median 85%%, met", g, ok)
	}
	if _, ok := ratioGoal(s, "produce-1KiB", "produce goal", "sync", 2000, goalProduceOfCeiling); ok {
		t.Error("a goal for a case the suite did not run")
	}
}
