// Package brokertest runs real Strata brokers as processes for tests: it
// builds the strata binary once and starts, stops and restarts brokers on
// loopback, waiting on the broker's readiness line rather than on time.
package brokertest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readyTimeout bounds the wait for a broker's readiness line; a broker
// that has not come up by then is reported as failed, not waited on.
const readyTimeout = 60 * time.Second

// ReadyAddr reports whether line is the readiness line `strata serve` logs
// once it serves clients, and the client address it gives. Every supervisor
// of broker processes (tests, benchmarks) reads readiness with it.
func ReadyAddr(line string) (addr string, ok bool) {
	if m := readyLine.FindStringSubmatch(line); m != nil {
		return m[1], true
	}
	return "", false
}

// readyLine matches the broker's readiness log line and captures the
// address it listens on.
var readyLine = regexp.MustCompile(`strata broker ready\b.*? listen=(\S+)`)

// BinEnv names an environment variable that, when set, gives a strata
// binary to run brokers from instead of building one (to test against
// another broker build).
const BinEnv = "STRATA_TEST_BROKER_BIN"

// Build compiles the strata command into dir and returns the binary's
// path, or returns the binary BinEnv names.
func Build(dir string) (string, error) {
	if bin := os.Getenv(BinEnv); bin != "" {
		return bin, nil
	}
	bin := filepath.Join(dir, "strata")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/strata-db/strata/cmd/strata")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Broker is one broker process.
type Broker struct {
	Bin     string
	DataDir string
	Addr    string // HOST:PORT it listens on
	cmd     *exec.Cmd
	waited  chan struct{}
	logTail *tail
	hold    *portHold // keeps Addr's port between restarts; nil when the caller chose the port
	// args are the serve flags beyond the data folder and address (a
	// cluster node's id, voters and timings); nil: a single broker.
	args []string
}

// Start runs `strata serve` on dataDir, listening on listen, and returns
// once the broker says it is ready. With port 0 on an IPv4 address
// ("127.0.0.1:0") the harness picks a free port and holds it for the broker's life, restarts
// included (see portHold). The broker is stopped when the test ends. args
// are more serve flags (such as a short --group-session-timeout).
func Start(t testing.TB, bin, dataDir, listen string, args ...string) *Broker {
	t.Helper()
	b := &Broker{Bin: bin, DataDir: dataDir}
	if len(args) > 0 {
		b.args = append([]string{"--cores", "2"}, args...)
	}
	if host, port, err := net.SplitHostPort(listen); err == nil && port == "0" && net.ParseIP(host).To4() != nil {
		h, err := holdPort(host)
		if err != nil {
			t.Fatalf("start broker: %v", err)
		}
		b.hold = h
		listen = h.addr
	}
	t.Cleanup(func() {
		_ = b.Stop()
		if b.hold != nil {
			b.hold.release()
		}
	})
	if err := b.start(listen); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	return b
}

// restartBindAttempts bounds the starts of a restart that fail because
// the port is still taken; restartBindBackoff is the wait between them.
// Restart first waits for the old listeners to go (waitPortFree), and a
// held port is taken by nothing else, so a retry covers only a
// caller-chosen port that another process briefly holds.
const (
	restartBindAttempts = 5
	restartBindBackoff  = 200 * time.Millisecond
)

// Restart starts the broker again on the same data folder and address.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	if err := waitPortFree(b.Addr, readyTimeout); err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	var err error
	for attempt := 1; attempt <= restartBindAttempts; attempt++ {
		if err = b.start(b.Addr); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(restartBindBackoff)
	}
	if err != nil {
		t.Fatalf("restart broker: %v", err)
	}
}

// RestartInBackground starts the broker again like Restart but returns at
// once: the channel gets nil once the broker says it is ready, or the
// error that stopped it. A test uses it to reach the broker while it is
// still joining its cluster (it listens before then, answering
// LEADER_NOT_AVAILABLE to all but ApiVersions). The caller must receive
// from the channel before it uses the Broker again.
func (b *Broker) RestartInBackground() <-chan error {
	done := make(chan error, 1)
	if err := waitPortFree(b.Addr, readyTimeout); err != nil {
		done <- err
		return done
	}
	go func() { done <- b.start(b.Addr) }()
	return done
}

// errAddrInUse marks a start that failed because the port was taken.
var errAddrInUse = errors.New("address in use")

// Running reports whether the broker process is up.
func (b *Broker) Running() bool {
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.waited:
		return false
	default:
		return true
	}
}

// Kill ends the broker with SIGKILL, as a crash would: nothing is flushed
// or handed over, and its connections are cut.
func (b *Broker) Kill() {
	if b.cmd == nil {
		return
	}
	select {
	case <-b.waited:
	default:
		_ = b.cmd.Process.Kill()
		<-b.waited
	}
	b.cmd = nil
}

func (b *Broker) start(listen string) error {
	args := []string{"serve", "--data-dir", b.DataDir, "--listen", listen, "--admin", "", "--pin=false"}
	if b.args == nil {
		args = append(args, "--cores", "2")
	} else {
		args = append(args, b.args...)
	}
	cmd := exec.Command(b.Bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	b.cmd = cmd
	waited := make(chan struct{})
	b.waited = waited
	lt := &tail{}
	b.logTail = lt
	ready := make(chan string, 1)
	// Wait closes the pipe, so it is called only once the log is read to
	// its end (the process exited): no line is lost from a failure report.
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			lt.add(line)
			if m := readyLine.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	exited := make(chan error, 1)
	go func() {
		<-logDone
		exited <- cmd.Wait()
		close(waited)
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case addr := <-ready:
		if b.Addr != addr {
			// Written only on a first start (a restart listens where the
			// broker did), so a test may read Addr while a restart runs.
			b.Addr = addr
		}
		return nil
	case err := <-exited:
		log := lt.String()
		if strings.Contains(log, "address already in use") || strings.Contains(log, "is in use") {
			err = errors.Join(err, errAddrInUse)
		}
		return fmt.Errorf("broker exited before it was ready: %w\n%s", err, log)
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-waited
		return fmt.Errorf("broker not ready after %v\n%s", readyTimeout, lt.String())
	}
}

// Stop sends SIGTERM and waits for the process to exit (SIGKILL if it does
// not within readyTimeout). Stopping a stopped broker does nothing.
func (b *Broker) Stop() error {
	if b.cmd == nil {
		return nil
	}
	select {
	case <-b.waited:
		b.cmd = nil
		return nil
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-b.waited:
	case <-timer.C:
		_ = b.cmd.Process.Kill()
		<-b.waited
		b.cmd = nil
		return errors.New("broker did not stop on SIGTERM; killed")
	}
	b.cmd = nil
	return nil
}

// Log is the last lines the broker wrote to stderr.
func (b *Broker) Log() string { return b.logTail.String() }

// tail keeps the last lines of a log; the reader goroutine adds, the
// test reads.
type tail struct {
	mu    sync.Mutex
	lines []string
}

// tailLines is how many log lines a failure report shows.
const tailLines = 50

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = t.lines[len(t.lines)-tailLines:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// TempDir makes a folder for a test binary build outside any test's
// lifetime (TestMain has no testing.T); the caller removes it.
func TempDir() (string, error) { return os.MkdirTemp("", "strata-bin-") }
