package server

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/client/brokertest"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// Bounds of TestSharedNameRequestsBoundRSS.
const (
	// sharedNameEntries topic entries all point at one name of
	// sharedNameBytes: about 3 MB on the wire, 200 GB if each entry's name
	// were copied.
	sharedNameEntries = 200_000
	sharedNameBytes   = 1 << 20
	// rssGrowthMaxBytes is how much the broker's resident memory may grow
	// while it answers one such request: the request's own receive buffer
	// and the answer, with room for the runtime's heap growth.
	rssGrowthMaxBytes = 64 << 20
	// rssPollInterval is how often the test reads the broker's resident
	// memory while it waits for the answer, so that a broker that
	// allocates without bound is killed before it takes the machine's.
	rssPollInterval = 10 * time.Millisecond
)

// startBrokerProcess runs `strata serve` with one shard on a folder of its
// own and returns it with its client address.
func startBrokerProcess(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	return startBrokerProcessIn(t, filepath.Join(t.TempDir(), "data"), 1)
}

// startBrokerProcessIn runs `strata serve` on dir with the given shards
// and returns it, once ready, with its client address; the test's end
// kills it.
func startBrokerProcessIn(t *testing.T, dir string, cores int) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(strataBin, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0",
		"--admin", "", "--cores", strconv.Itoa(cores), "--pin=false")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := bufio.NewScanner(stderr)
	var out bytes.Buffer
	for s.Scan() {
		out.WriteString(s.Text() + "\n")
		if addr, ok := brokertest.ReadyAddr(s.Text()); ok {
			go func() { // keep the pipe drained
				for s.Scan() {
				}
			}()
			return cmd, addr
		}
	}
	t.Fatalf("strata serve exited before it was ready:\n%s", out.String())
	return nil, ""
}

// procStatusBytes reads one kB field (VmRSS, VmHWM) of a process's
// /proc status.
func procStatusBytes(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestSharedNameRequestsBoundRSS sends a broker process a fetch of
// sharedNameEntries topic tables and a metadata request of as many names,
// each pointing at one name of sharedNameBytes. Both pass the verifier;
// the broker answers each INVALID_REQUEST, and its peak resident memory
// grows by less than rssGrowthMaxBytes while it does.
func TestSharedNameRequestsBoundRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker process")
	}
	cmd, addr := startBrokerProcess(t)
	pid := cmd.Process.Pid
	c := newTestClient(t, addr)
	c.call(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{}}) // the connection is served
	name := bytes.Repeat([]byte("a"), sharedNameBytes)
	requests := []struct {
		api  string
		corr int32
		msg  []byte
	}{
		{"fetch", 101, sharedNameFetch(101, sharedNameEntries, name)},
		{"metadata", 102, sharedNameMetadata(102, sharedNameEntries, name)},
	}
	for _, r := range requests {
		if err := schema.VerifyEnvelope(r.msg); err != nil {
			t.Fatalf("%s of %d bytes fails verification (%v); the test needs one that passes", r.api, len(r.msg), err)
		}
		base := procStatusBytes(t, pid, "VmRSS")
		// Writing 5 to clear_refs resets the peak (VmHWM) to the
		// resident size now.
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			t.Fatalf("reset the broker's peak resident memory: %v", err)
		}
		type answer struct {
			env *fb.EnvelopeT
			err error
		}
		answered := make(chan answer, 1)
		go func() {
			if _, err := c.conn.Write(r.msg); err != nil {
				answered <- answer{err: err}
				return
			}
			env, _, err := c.tryRecv()
			answered <- answer{env, err}
		}()
		var got answer
		for waiting := true; waiting; {
			select {
			case got = <-answered:
				waiting = false
			case <-time.After(rssPollInterval):
				if grown := procStatusBytes(t, pid, "VmRSS") - base; grown > rssGrowthMaxBytes {
					cmd.Process.Kill()
					t.Fatalf("%s: the broker's resident memory grew by %d MiB before it answered; killed", r.api, grown>>20)
				}
			}
		}
		if got.err != nil {
			t.Fatalf("%s: %v", r.api, got.err)
		}
		if got.env.ErrorCode != fb.ErrorCodeInvalidRequest || got.env.CorrelationId != r.corr {
			t.Fatalf("%s: answered %v (correlation %d), want INVALID_REQUEST", r.api, got.env.ErrorCode, got.env.CorrelationId)
		}
		grown := procStatusBytes(t, pid, "VmHWM") - base
		t.Logf("%s of %d bytes: peak resident memory grew by %d KiB", r.api, len(r.msg), grown>>10)
		if grown > rssGrowthMaxBytes {
			t.Fatalf("%s of %d bytes: the broker's peak resident memory grew by %d MiB, above %d MiB",
				r.api, len(r.msg), grown>>20, rssGrowthMaxBytes>>20)
		}
	}
	// The connection is still served.
	env, _ := c.call(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{}})
	if env.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("metadata after the refusals: %v", env.ErrorCode)
	}
}
