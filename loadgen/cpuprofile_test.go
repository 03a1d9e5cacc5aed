package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/pprof/profile"
)

// TestCPUProfileFlag: --cpuprofile leaves a CPU profile of loadgen itself.
func TestCPUProfileFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loadgen.prof")
	_, stderr, code := loadgenRun(t, "ceiling", "--mode", "produce", "--records", "2000",
		"--record-size", "1KiB", "--dir", t.TempDir(), "--cpuprofile", path)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("not a profile: %v", err)
	}
	if len(p.SampleType) == 0 || p.SampleType[len(p.SampleType)-1].Type != "cpu" {
		t.Fatalf("profile sample types %v, want cpu", p.SampleType)
	}
}
