package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/strata-db/strata/client/brokertest"
	"github.com/strata-db/strata/loadgen/cpuset"
)

// readyTimeout bounds the wait for a server's readiness line.
const readyTimeout = 60 * time.Second

// stopTimeout bounds the wait for a server to exit after SIGTERM.
const stopTimeout = 30 * time.Second

// buildBinaries builds the broker and the load generator into dir.
func buildBinaries(ctx context.Context, dir string, prebuilt bool) (strata, loadgen string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	strata, _ = filepath.Abs(filepath.Join(dir, "strata"))
	loadgen, _ = filepath.Abs(filepath.Join(dir, "loadgen"))
	if prebuilt {
		for _, bin := range []string{strata, loadgen} {
			if _, err := os.Stat(bin); err != nil {
				return "", "", fmt.Errorf("--prebuilt: %w", err)
			}
		}
		return strata, loadgen, nil
	}
	for bin, pkg := range map[string]string{strata: "./cmd/strata", loadgen: "./loadgen"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return strata, loadgen, nil
}

// server is a process started by the benchmark that announces readiness
// with a log line on stderr.
type server struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    *lockedBuffer
	addr   string
}

// readyFunc reports whether a log line says the server is ready, and the
// address it serves (empty when the line names none).
type readyFunc func(line string) (addr string, ok bool)

// matchReady is a readyFunc for a pattern whose first group, if any, is the
// address.
func matchReady(re *regexp.Regexp) readyFunc {
	return func(line string) (string, bool) {
		m := re.FindStringSubmatch(line)
		if m == nil {
			return "", false
		}
		if len(m) > 1 {
			return m[1], true
		}
		return "", true
	}
}

// startServer runs cmd, on cpus when given, and waits until a stderr line
// is its ready line.
func startServer(cmd *exec.Cmd, ready readyFunc, cpus []int) (*server, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = nil
	if err := startOn(cmd, cpus); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, exited: make(chan struct{}), log: &lockedBuffer{b: &bytes.Buffer{}}}
	lines := make(chan string, 1)
	logW := s.log
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logW.writeLine(line)
			if addr, ok := ready(line); ok {
				select {
				case lines <- addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	waitErr := make(chan error, 1)
	go func() {
		waitErr <- cmd.Wait()
		close(s.exited)
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case s.addr = <-lines:
		return s, nil
	case err := <-waitErr:
		return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", cmd.Path, err, logW.String())
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("%s not ready after %s\n%s", cmd.Path, readyTimeout, logW.String())
	}
}

// stop sends SIGTERM and waits for the exit, killing the process if it
// does not go in time.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// lockedBuffer is the log the reader goroutine writes and a failure report
// reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) writeLine(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
	l.b.WriteByte('\n')
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startOn starts cmd on cpus, or on every CPU when cpus is nil.
func startOn(cmd *exec.Cmd, cpus []int) error {
	if cpus == nil {
		return cmd.Start()
	}
	return cpuset.StartOn(cmd, cpus)
}

// combinedOutputOn runs cmd on cpus (nil: every CPU) and returns its
// stdout and stderr together, as exec.Cmd.CombinedOutput does.
func combinedOutputOn(cmd *exec.Cmd, cpus []int) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := startOn(cmd, cpus); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return out.Bytes(), err
}

// startBroker runs `strata serve` on a fresh data folder under work, on
// cpus (nil: every CPU), with cores shards (0: one per CPU it has).
func startBroker(ctx context.Context, strata, dataDir string, cores int, cpus []int) (*server, error) {
	cmd := exec.CommandContext(ctx, strata, "serve", "--data-dir", dataDir,
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--cores", strconv.Itoa(cores))
	return startServer(cmd, brokertest.ReadyAddr, cpus)
}

// strataRun is the suite under one flush policy.
type strataRun struct {
	FlushPolicy string          `json:"flush_policy"`
	Suite       suiteResult     `json:"-"`
	Raw         json.RawMessage `json:"suite"`
}

// runStrataSuite starts a broker, runs the suite under policy, stops it.
func runStrataSuite(ctx context.Context, cfg *config, strata, loadgen, policy string) (*strataRun, error) {
	dataDir := filepath.Join(cfg.work, "strata-"+sanitizeLabel(policy))
	if err := os.RemoveAll(dataDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	b, err := startBroker(ctx, strata, dataDir, cfg.cores, cfg.serverCPUs)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	args := []string{"suite", "--brokers", b.addr, "--flush-policy", policy,
		"--dir", cfg.work, "--json", "--duration", cfg.duration.String(), "--procs", strconv.Itoa(cfg.clientProcs),
		"--paired-rounds", strconv.Itoa(cfg.pairedRounds)}
	if cfg.clientCPUs != nil {
		args = append(args, "--case-cpus", cpuset.Format(cfg.clientCPUs))
	}
	if cfg.quick {
		args = append(args, "--quick")
	}
	cmd := exec.CommandContext(ctx, loadgen, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("loadgen %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	os.Stderr.Write(tableOf(out))
	line := lastLine(out)
	run := &strataRun{FlushPolicy: policy, Raw: json.RawMessage(line)}
	if err := json.Unmarshal(line, &run.Suite); err != nil {
		return nil, fmt.Errorf("suite output's last line: %w", err)
	}
	if len(run.Suite.Cases) == 0 {
		return nil, errors.New("suite reported no cases")
	}
	return run, nil
}

// lastLine is the last non-empty line of out.
func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	return lines[len(lines)-1]
}

// tableOf is out without its JSON line: the suite's table for the log.
func tableOf(out []byte) []byte {
	trimmed := bytes.TrimRight(out, "\n")
	if i := bytes.LastIndexByte(trimmed, '\n'); i >= 0 {
		return append(trimmed[:i:i], '\n')
	}
	return nil
}

// gitCommit is the short commit of the checkout, with "+dirty" when the work
// tree differs from it, or "unknown".
func gitCommit(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		commit += "+dirty"
	}
	return commit
}
