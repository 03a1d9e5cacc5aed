package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The peer: NATS JetStream, built from the Go module proxy.
const (
	natsServerModule = "github.com/nats-io/nats-server/v2@v2.15.2"
	natsCLIModule    = "github.com/nats-io/natscli/nats@v0.5.0"
	natsServerBin    = "nats-server"
	natsCLIBin       = "nats"

	defaultPeerMsgsSmall = 2_000_000
	defaultPeerMsgsLarge = 1_000_000
	quickPeerMsgs        = 20_000

	// A stream's size limit is twice what its run writes (with a per
	// message allowance for the store's framing), at least
	// peerStreamMinMB, so no message is discarded before the consumer
	// reads it and the store's total limit is not exceeded.
	peerStreamMinMB          = 64
	peerMessageOverheadBytes = 128
	peerStreamHeadroom       = 2

	peerSmallBytes = 100
	peerLargeBytes = 1024
)

// natsReady is nats-server's readiness line.
var natsReady = regexp.MustCompile(`Server is ready`)

// natsStats matches the summary line of `nats bench`, e.g.
// "NATS JetStream asynchronous publisher stats: 120,632 msgs/sec ~ 12 MiB/sec
// ~ min: ... ~ P50: 3,578.40us ~ P90: ... ~ P99: 10,646.65us ~ P99.9: ..."
var (
	natsStats      = regexp.MustCompile(`stats: ([\d,]+) msgs/sec`)
	natsPercentile = regexp.MustCompile(`(P50|P99|P99\.9): ([\d,.]+)us`)
)

type peerMessages struct{ small, large int64 }

// peerRun is one `nats bench` run.
type peerRun struct {
	Name          string  `json:"name"`
	Command       string  `json:"command"`
	Messages      int64   `json:"messages"`
	SizeBytes     int64   `json:"size_bytes"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	// P50Ms, P99Ms and P999Ms are what nats bench reports for the
	// asynchronous publisher (per publish, until its acknowledgement);
	// zero where it reports none.
	P50Ms  float64 `json:"p50_ms,omitempty"`
	P99Ms  float64 `json:"p99_ms,omitempty"`
	P999Ms float64 `json:"p999_ms,omitempty"`
	Stats  string  `json:"stats_line"`
}

type peerResult struct {
	Name       string    `json:"name"`
	Versions   string    `json:"versions"`
	Durability string    `json:"durability"`
	Runs       []peerRun `json:"runs"`
}

// installPeer returns the paths of nats-server and nats in cache/bin,
// installing them with `go install` when absent.
func installPeer(ctx context.Context, cache string) (server, cli string, err error) {
	binDir, err := filepath.Abs(filepath.Join(cache, "bin"))
	if err != nil {
		return "", "", err
	}
	server, cli = filepath.Join(binDir, natsServerBin), filepath.Join(binDir, natsCLIBin)
	for bin, module := range map[string]string{server: natsServerModule, cli: natsCLIModule} {
		if _, err := os.Stat(bin); err == nil {
			continue
		}
		logf("peer: go install %s", module)
		cmd := exec.CommandContext(ctx, "go", "install", module)
		cmd.Env = append(os.Environ(), "GOBIN="+binDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go install %s: %v\n%s", module, err, out)
		}
	}
	return server, cli, nil
}

// freePort finds a loopback port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runPeer starts nats-server with JetStream on file storage and runs the
// publish and consume benchmarks at 100 B and 1 KiB.
func runPeer(ctx context.Context, cfg *config) (*peerResult, error) {
	serverBin, cliBin, err := installPeer(ctx, cfg.cache)
	if err != nil {
		return nil, err
	}
	storeDir := filepath.Join(cfg.work, "nats")
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(storeDir)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv, err := startServer(exec.CommandContext(ctx, serverBin, "-js", "-sd", storeDir,
		"-p", strconv.Itoa(port), "-a", "127.0.0.1"), matchReady(natsReady), cfg.serverCPUs)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	res := &peerResult{
		Name:     "NATS JetStream",
		Versions: versionOf(ctx, serverBin) + ", nats CLI " + versionOf(ctx, cliBin),
		Durability: "file storage, one replica; JetStream acknowledges a publish once the message is in its " +
			"file store's buffers and forces an fsync only every sync_interval (default 2 minutes)",
	}
	for _, c := range []struct {
		size, msgs int64
	}{{peerSmallBytes, cfg.peerMsgs.small}, {peerLargeBytes, cfg.peerMsgs.large}} {
		size := strconv.FormatInt(c.size, 10)
		stream := "bench" + size
		pub, err := natsBench(ctx, cliBin, url, cfg.clientCPUs, "publish-"+size+"B", c.size, c.msgs,
			"bench", "js", "pub", "async", "subj"+size, "--stream", stream, "--create", "--purge",
			"--storage", "file", "--maxbytes", streamMaxBytes(c.size, c.msgs))
		if err != nil {
			return nil, err
		}
		cons, err := natsBench(ctx, cliBin, url, cfg.clientCPUs, "consume-"+size+"B", c.size, c.msgs,
			"bench", "js", "ordered", "--stream", stream)
		if err != nil {
			return nil, err
		}
		res.Runs = append(res.Runs, *pub, *cons)
	}
	return res, nil
}

// streamMaxBytes is the --maxbytes of a stream that holds msgs messages of
// size bytes, in MB as nats bench takes it.
func streamMaxBytes(size, msgs int64) string {
	mb := msgs * (size + peerMessageOverheadBytes) * peerStreamHeadroom / bytesPerMB
	return strconv.FormatInt(max(mb, peerStreamMinMB), 10) + "MB"
}

// natsBench runs one `nats bench` on cpus (nil: every CPU) and parses its
// stats line.
func natsBench(ctx context.Context, cli, url string, cpus []int, name string, size, msgs int64, args ...string) (*peerRun, error) {
	args = append(args, "--msgs", strconv.FormatInt(msgs, 10), "--size", strconv.FormatInt(size, 10),
		"--no-progress", "-s", url)
	logf("peer: nats %s", strings.Join(args, " "))
	out, err := combinedOutputOn(exec.CommandContext(ctx, cli, args...), cpus)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	run := &peerRun{Name: name, Command: "nats " + strings.Join(args, " "), Messages: msgs, SizeBytes: size}
	if err := run.parse(out); err != nil {
		return nil, fmt.Errorf("nats %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return run, nil
}

// parse reads the rate (and latency percentiles where given) from nats
// bench's output. MB/s is computed from the rate and the message size,
// with MB = 10^6 bytes, as loadgen reports it.
func (r *peerRun) parse(out []byte) error {
	for _, line := range bytes.Split(out, []byte("\n")) {
		m := natsStats.FindSubmatch(line)
		if m == nil {
			continue
		}
		rate, err := strconv.ParseFloat(strings.ReplaceAll(string(m[1]), ",", ""), 64)
		if err != nil {
			return err
		}
		r.Stats = strings.TrimSpace(string(line))
		r.RecordsPerSec = rate
		r.MBPerSec = rate * float64(r.SizeBytes) / bytesPerMB
		for _, p := range natsPercentile.FindAllSubmatch(line, -1) {
			us, err := strconv.ParseFloat(strings.ReplaceAll(string(p[2]), ",", ""), 64)
			if err != nil {
				return err
			}
			ms := us / microsPerMs
			switch string(p[1]) {
			case "P50":
				r.P50Ms = ms
			case "P99":
				r.P99Ms = ms
			case "P99.9":
				r.P999Ms = ms
			}
		}
		return nil
	}
	return fmt.Errorf("no stats line in the output")
}

const (
	bytesPerMB  = 1_000_000
	microsPerMs = 1000
)

// versionOf is the first line of `bin --version`.
func versionOf(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return filepath.Base(bin) + " (version unknown)"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
