package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
)

// strataBin is this command, built once for the package's tests; it runs
// both the broker and the client commands.
var strataBin string

func TestMain(m *testing.M) {
	dir, err := brokertest.TempDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	strataBin, err = brokertest.Build(dir)
	if err == nil && os.Getenv(brokertest.BinEnv) != "" {
		// The CLI under test is always this tree's, whatever broker runs.
		strataBin = dir + "/strata"
		out, berr := exec.Command("go", "build", "-o", strataBin, ".").CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("%v\n%s", berr, out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the CLI with stdin and returns stdout, stderr and exit code.
func run(t *testing.T, brokers, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(os.Environ(), "STRATA_BROKERS="+brokers)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// TestCLIEndToEnd creates a topic, produces lines, reads them back as text
// and JSON, and checks that bad input fails clearly with the right code.
func TestCLIEndToEnd(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	addr := b.Addr
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	mustRun("", "topic", "create", "logs", "--partitions", "1", "--config", "retention.ms=3600000")
	if out := mustRun("", "topic", "list"); out != "TOPIC  PARTITIONS  REPLICATION\nlogs   1           1\n" {
		t.Fatalf("topic list: %q", out)
	}
	if out := mustRun("", "topic", "describe", "logs"); !strings.Contains(out, "logs") || !strings.Contains(out, "LEADER") {
		t.Fatalf("topic describe: %q", out)
	}
	if out := mustRun("", "cluster", "describe"); !strings.Contains(out, "cluster id: ") || !strings.Contains(out, addr) ||
		!strings.Contains(out, "live") || !strings.Contains(out, "controller quorum: leader 1") ||
		!regexp.MustCompile(`(?m)^1\s+\d+\s+0\s+true$`).MatchString(out) {
		t.Fatalf("cluster describe: %q", out)
	}
	mustRun("a=first\nb=second\nthird\n", "produce", "logs", "--key-separator", "=")
	if out := mustRun("", "consume", "logs", "--from", "earliest", "--exit-at-end"); out != "first\nsecond\nthird\n" {
		t.Fatalf("consume text: %q", out)
	}
	out := mustRun("", "consume", "logs", "--from", "1", "--count", "2", "--format", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("consume json: %q", out)
	}
	var rec struct {
		Topic     string  `json:"topic"`
		Partition int32   `json:"partition"`
		Offset    int64   `json:"offset"`
		Timestamp int64   `json:"timestamp"`
		Key       *string `json:"key"`
		Value     string  `json:"value"`
		Headers   []any   `json:"headers"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Topic != "logs" || rec.Offset != 1 || rec.Key == nil || *rec.Key != "b" || rec.Value != "second" || rec.Timestamp <= 0 {
		t.Fatalf("json record %+v", rec)
	}
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.Key != nil || rec.Value != "third" {
		t.Fatalf("json record %+v %v", rec, err)
	}
	if out := mustRun("", "consume", "logs", "--from", "@0", "--exit-at-end"); out != "first\nsecond\nthird\n" {
		t.Fatalf("consume from @0: %q", out)
	}

	for _, c := range []struct {
		name    string
		brokers string
		args    []string
		code    int
		msg     string
	}{
		{"unknown topic", addr, []string{"consume", "nope", "--exit-at-end"}, 1, "UNKNOWN_TOPIC_OR_PARTITION"},
		{"produce unknown topic", addr, []string{"produce", "nope"}, 1, "UNKNOWN_TOPIC_OR_PARTITION"},
		{"bad --from", addr, []string{"consume", "logs", "--from", "yesterday"}, 2, "--from"},
		{"bad --acks", addr, []string{"produce", "logs", "--acks", "2"}, 2, "--acks"},
		{"bad flag", addr, []string{"topic", "create", "x", "--partitions", "many"}, 2, "invalid argument"},
		{"missing name", addr, []string{"topic", "create"}, 2, "topic name"},
		{"unreachable broker", "127.0.0.1:1", []string{"topic", "list"}, 1, "cannot reach 127.0.0.1:1: "},
		{"unreachable brokers", "127.0.0.1:1,127.0.0.1:2", []string{"topic", "list"}, 1,
			"strata: cannot reach 127.0.0.1:1, 127.0.0.1:2: dial tcp 127.0.0.1:1: connect: connection refused; dial tcp 127.0.0.1:2: connect: connection refused\n"},
		{"existing topic", addr, []string{"topic", "create", "logs"}, 1, "TOPIC_ALREADY_EXISTS"},
	} {
		_, errOut, code := run(t, c.brokers, "x\n", c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and one line with %q", c.name, code, errOut, c.code, c.msg)
		}
	}
	mustRun("", "topic", "delete", "logs")
	if out := mustRun("", "topic", "list"); out != "TOPIC  PARTITIONS  REPLICATION\n" {
		t.Fatalf("after delete: %q", out)
	}
}

// brokertestBin is the binary brokers run from: this tree's, unless
// brokertest.BinEnv names another.
func brokertestBin() string {
	if bin := os.Getenv(brokertest.BinEnv); bin != "" {
		return bin
	}
	return strataBin
}
