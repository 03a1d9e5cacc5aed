package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesASmallRequestBudget: a request budget below the least
// the broker accepts is refused, from the flag and from the TOML key alike,
// before anything starts.
func TestServeRefusesASmallRequestBudget(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "strata.toml")
	if err := os.WriteFile(conf, []byte("request_budget_bytes = 1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", "--request-budget-bytes", "1000"},
		{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", "--config", conf},
	} {
		_, errOut, code := run(t, "", "", args...)
		if code != 2 || !strings.Contains(errOut, "--request-budget-bytes 1000") {
			t.Fatalf("strata %v: exit %d, %q; want a usage error naming the budget", args, code, errOut)
		}
	}
}

// TestServeRefusesABudgetTooSmallForItsShards: a total above the least
// the broker accepts that leaves each shard less than the least share
// (2 MiB over 4 shards) is refused with a usage error naming the share.
func TestServeRefusesABudgetTooSmallForItsShards(t *testing.T) {
	dir := t.TempDir()
	args := []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "",
		"--cores", "4", "--pin=false", "--request-budget-bytes", "2097152"}
	_, errOut, code := run(t, "", "", args...)
	if code != 2 || !strings.Contains(errOut, "--request-budget-bytes 2097152") || !strings.Contains(errOut, "a shard") {
		t.Fatalf("strata %v: exit %d, %q; want a usage error naming the share", args, code, errOut)
	}
}
