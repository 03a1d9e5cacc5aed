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
	for _, flag := range [][]string{{"--request-budget-bytes", "67108864"}, {"--log-retention-check-interval", "1m"},
		{"--log-dir-min-free-bytes", "1"}, {"--log-dir-min-free-ratio", "0.5"},
		{"--log-cleaner-dedupe-buffer-size", "2097152"}, {"--log-cleaner-io-max-bytes-per-second", "1000"}} {
		args := append([]string{"serve", "--data-dir", dir, "--roles", "controller", "--node-id", "1",
			"--controller-voters", "1@127.0.0.1:1", "--cluster-insecure"}, flag...)
		_, errOut, code := run(t, "", "", args...)
		if code != 2 || !strings.Contains(errOut, "are broker settings; --roles controller serves no clients") {
			t.Fatalf("strata %v: exit %d, %q; want a usage error", args, code, errOut)
		}
	}
}

// TestServeRefusesBadDiskAndCleanerSettings: a free-room ratio of 1 or
// more, a cleaner key map below a shard's least share and a negative
// cleaner throttle are refused, from the flag and the TOML key alike.
func TestServeRefusesBadDiskAndCleanerSettings(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ flag, value, key, want string }{
		{"--log-dir-min-free-ratio", "1", "log_dir_min_free_ratio = 1.0", "--log-dir-min-free-ratio 1"},
		{"--log-cleaner-dedupe-buffer-size", "1000", "log_cleaner_dedupe_buffer_size = 1000", "--log-cleaner-dedupe-buffer-size 1000"},
		{"--log-cleaner-io-max-bytes-per-second", "-1", "log_cleaner_io_max_bytes_per_second = -1", "--log-cleaner-io-max-bytes-per-second -1"},
	} {
		conf := filepath.Join(dir, "strata.toml")
		if err := os.WriteFile(conf, []byte(tc.key+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", tc.flag, tc.value},
			{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", "--config", conf},
		} {
			_, errOut, code := run(t, "", "", args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("strata %v: exit %d, %q; want a usage error naming %s", args, code, errOut, tc.flag)
			}
		}
	}
}
