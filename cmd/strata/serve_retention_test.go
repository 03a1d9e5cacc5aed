package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesAShortRetentionCheckInterval: a retention check
// interval shorter than the shard's tick, which runs the check, could not
// be honoured; it is refused from the flag and from the TOML key alike,
// before anything starts.
func TestServeRefusesAShortRetentionCheckInterval(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "strata.toml")
	if err := os.WriteFile(conf, []byte("log_retention_check_interval = \"10ms\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", "--log-retention-check-interval", "10ms"},
		{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", "--config", conf},
	} {
		_, errOut, code := run(t, "", "", args...)
		if code != 2 || !strings.Contains(errOut, "--log-retention-check-interval 10ms") {
			t.Fatalf("strata %v: exit %d, %q; want a usage error naming the interval", args, code, errOut)
		}
	}
}

// TestServeControllerRefusesBrokerSettings: a controller-only node serves
// no clients and keeps no partition logs, so the broker's request budget
// and retention interval are refused there rather than ignored.
func TestServeControllerRefusesBrokerSettings(t *testing.T) {
	dir := t.TempDir()
	for _, flag := range [][]string{{"--request-budget-bytes", "67108864"}, {"--log-retention-check-interval", "1m"}} {
		args := append([]string{"serve", "--data-dir", dir, "--roles", "controller", "--node-id", "1",
			"--controller-voters", "1@127.0.0.1:1", "--cluster-insecure"}, flag...)
		_, errOut, code := run(t, "", "", args...)
		if code != 2 || !strings.Contains(errOut, "are broker settings; --roles controller serves no clients") {
			t.Fatalf("strata %v: exit %d, %q; want a usage error", args, code, errOut)
		}
	}
}
