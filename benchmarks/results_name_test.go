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
