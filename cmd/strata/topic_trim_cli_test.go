package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
)

// TestTopicTrim produces 1000 lines, trims partition 0 before 400: the
// table shows log start 400, topic describe too, and consume --from
// earliest starts with the line produced at 400. A trim past the high
// watermark fails with OFFSET_OUT_OF_RANGE and moves nothing; bad flags
// are usage errors; --all-partitions --before committed empties every
// partition.
func TestTopicTrim(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	mustRun("", "topic", "create", "events", "--partitions", "2")
	var lines strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&lines, "line-%d\n", i)
	}
	mustRun(lines.String(), "produce", "events", "-p", "0")
	mustRun("x\ny\n", "produce", "events", "-p", "1")

	if out := mustRun("", "topic", "trim", "events", "--partition", "0", "--before", "400"); out != "TOPIC   PARTITION  LOG START\nevents  0          400\n" {
		t.Fatalf("trim output %q", out)
	}
	if out := mustRun("", "consume", "events", "-p", "0", "--from", "earliest", "--count", "1"); out != "line-400\n" {
		t.Fatalf("consume from earliest after trim: %q", out)
	}
	row := strings.Fields(strings.Split(mustRun("", "topic", "describe", "events"), "\n")[1])
	if row[1] != "0" || row[9] != "400" || row[10] != "1000" {
		t.Fatalf("describe after trim: %v", row)
	}

	_, errOut, code := run(t, b.Addr, "", "topic", "trim", "events", "--partition", "0", "--before", "1001")
	if code != 1 || !strings.Contains(errOut, "OFFSET_OUT_OF_RANGE") {
		t.Fatalf("trim past the high watermark: exit %d: %s", code, errOut)
	}
	for _, bad := range [][]string{
		{"topic", "trim", "events", "--partition", "0"},
		{"topic", "trim", "events", "--before", "10"},
		{"topic", "trim", "events", "--partition", "0", "--all-partitions", "--before", "10"},
		{"topic", "trim", "events", "--partition", "0", "--before", "-3"},
		{"topic", "trim", "events", "--partition", "0", "--before", "soon"},
	} {
		if _, errOut, code := run(t, b.Addr, "", bad...); code != 2 {
			t.Fatalf("strata %v: exit %d, want 2 (usage): %s", bad, code, errOut)
		}
	}

	want := "TOPIC   PARTITION  LOG START\nevents  0          1000\nevents  1          2\n"
	if out := mustRun("", "topic", "trim", "events", "--all-partitions", "--before", "committed"); out != want {
		t.Fatalf("trim every partition:\n%s\nwant\n%s", out, want)
	}
}
