package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeClusterSecretSettings: a quorum without a secret, a secret or
// insecure mode without a quorum, both at once, and a secret too short
// are refused before anything starts, from flags and from the TOML file.
func TestServeClusterSecretSettings(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tiny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte("a cluster secret long enough\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	toml := filepath.Join(dir, "serve.toml")
	if err := os.WriteFile(toml, []byte("controller_voters = \"1@127.0.0.1:1\"\ncluster_secret_file = \""+short+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	quorum := []string{"--controller-voters", "1@127.0.0.1:1", "--node-id", "1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{quorum, "--controller-voters needs --cluster-secret-file"},
		{[]string{"--cluster-secret-file", good}, "need --controller-voters"},
		{[]string{"--cluster-insecure"}, "need --controller-voters"},
		{append([]string{"--cluster-insecure", "--cluster-secret-file", good}, quorum...), "exclude each other"},
		{append([]string{"--cluster-secret-file", short}, quorum...), "4 bytes of secret, want at least 16"},
		{[]string{"--config", toml}, "4 bytes of secret, want at least 16"},
	} {
		args := append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--admin", ""}, tc.args...)
		_, errOut, code := run(t, "", "", args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("strata %v: exit %d, stderr %q, want %q", args, code, errOut, tc.want)
		}
	}
}
