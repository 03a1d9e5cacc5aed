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
