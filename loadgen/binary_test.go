package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// goTool finds the go command that builds loadgen for the binary test.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func TestBuiltBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "loadgen")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.CommandContext(t.Context(), goTool(t), append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("ceiling", func(t *testing.T) {
		cmd := exec.CommandContext(t.Context(), bin, "ceiling", "--mode", "consume",
			"--json", "--records", "2048", "--file-bytes", "1MiB", "--dir", t.TempDir())
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("loadgen: %v\nstderr:\n%s", err, stderr.String())
		}
		m := lastJSONLine(t, string(out))
		checkConsistent(t, m)
		if got := jsonInt(t, m, "bytes"); got != 2048*defaultRecordSizeBytes {
			t.Errorf("bytes = %d, want %d", got, 2048*defaultRecordSizeBytes)
		}
		if stderr.Len() != 0 {
			t.Errorf("stderr is a pipe, yet got output:\n%s", stderr.String())
		}
	})

	t.Run("bad mode", func(t *testing.T) {
		cmd := exec.CommandContext(t.Context(), bin, "ceiling", "--mode", "sideways")
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != exitUsage {
			t.Fatalf("err = %v, want exit status %d", err, exitUsage)
		}
		if !strings.Contains(string(out), `--mode must be produce, consume or splice, got "sideways"`) {
			t.Errorf("output lacks a clear message:\n%s", out)
		}
	})
}
