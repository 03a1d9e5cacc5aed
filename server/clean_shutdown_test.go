package server

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCleanShutdownMarker(t *testing.T) {
	dir := t.TempDir()
	if epoch, err := takeCleanShutdown(dir); err != nil || epoch != 0 {
		t.Fatalf("no marker: %d, %v", epoch, err)
	}
	if err := markCleanShutdown(dir, 42); err != nil {
		t.Fatal(err)
	}
	if epoch, err := takeCleanShutdown(dir); err != nil || epoch != 42 {
		t.Fatalf("marker: %d, %v", epoch, err)
	}
	// Taken once: a crash of the process that took it leaves none.
	if epoch, err := takeCleanShutdown(dir); err != nil || epoch != 0 {
		t.Fatalf("after take: %d, %v", epoch, err)
	}
	// A damaged marker proves nothing, and goes.
	if err := markCleanShutdown(dir, 7); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, cleanShutdownFile)
	b, _ := os.ReadFile(path)
	b[0] ^= 1
	os.WriteFile(path, b, 0o644)
	if epoch, err := takeCleanShutdown(dir); err != nil || epoch != 0 {
		t.Fatalf("damaged marker: %d, %v", epoch, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("damaged marker left: %v", err)
	}
}

// TestBrokerStopLeavesCleanShutdownMarker: a broker stopped cleanly leaves
// its epoch; the next start takes it (and the session proves it).
func TestBrokerStopLeavesCleanShutdownMarker(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, 1)
	epoch := b.session.epoch.Load()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if epoch <= 0 {
		t.Fatalf("broker epoch %d", epoch)
	}
	b = startBroker(t, dir, 1)
	defer b.Stop()
	if got := b.session.cleanShutdownEpoch.Load(); got != epoch {
		t.Fatalf("restart proves epoch %d, the stop left %d", got, epoch)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); !os.IsNotExist(err) {
		t.Fatalf("marker still there while the broker runs: %v", err)
	}
}

// TestStopTwice: a second Stop (a cleanup after the test stopped the
// broker) returns the first one's result instead of stopping again.
func TestStopTwice(t *testing.T) {
	b := startRetentionBroker(t, t.TempDir())
	first := b.Stop()
	if first != nil {
		t.Fatalf("first stop: %v", first)
	}
	if err := b.Stop(); err != first {
		t.Fatalf("second stop: %v, want the first's %v", err, first)
	}
}
