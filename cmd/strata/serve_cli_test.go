package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/client/brokertest"
)

// serveReadyTimeout bounds the wait for a broker started from a config
// file to log its readiness line.
const serveReadyTimeout = 60 * time.Second

// TestServeConfigFile runs `strata serve --config` on a TOML file naming
// the settings brokertest passes as flags: the broker serves where the
// file says, and a client command reaches it there.
func TestServeConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "strata.toml")
	toml := `data_dir = "` + filepath.Join(dir, "data") + `"
listen = "127.0.0.1:0"
admin = ""
cores = 2
pin = false
log_level = "info"
heartbeat_interval = "1s"
`
	if err := os.WriteFile(file, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(strataBin, "serve", "--config", file)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if addr, ok := brokertest.ReadyAddr(sc.Text()); ok {
				ready <- addr
			}
		}
		close(ready)
	}()
	var addr string
	select {
	case a, ok := <-ready:
		if !ok {
			t.Fatal("serve exited before it was ready")
		}
		addr = a
	case <-time.After(serveReadyTimeout):
		t.Fatal("serve never said it was ready")
	}
	if out, errOut, code := run(t, addr, "", "topic", "list"); code != 0 || out != "TOPIC  PARTITIONS  REPLICATION\n" {
		t.Fatalf("topic list on the broker from the file: exit %d, %q %q", code, out, errOut)
	}
}

// TestServeConfigFileRefusesUnknownSettings: a setting serve does not know
// is refused (exit 2) rather than ignored, and so is a value of the wrong
// kind.
func TestServeConfigFileRefusesUnknownSettings(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ toml, want string }{
		{"listen_addr = \"127.0.0.1:0\"\n", `unknown setting "listen_addr"; the settings are ` + serveConfigKeys},
		{"[broker]\nlisten = \"127.0.0.1:0\"\n", `unknown setting "broker"; the settings are ` + serveConfigKeys},
		{"session_timeout = \"soon\"\n", `toml: line 1 (last key "session_timeout"): invalid duration: "soon"`},
	} {
		file := filepath.Join(dir, "strata.toml")
		if err := os.WriteFile(file, []byte(c.toml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := run(t, "", "", "serve", "--config", file, "--data-dir", filepath.Join(dir, "data"))
		if want := "strata: config " + file + ": " + c.want + "\n"; code != 2 || errOut != want {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.toml, code, errOut, want)
		}
	}
}
