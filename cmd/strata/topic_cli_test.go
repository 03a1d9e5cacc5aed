package main

import (
	"strings"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
)

// TestTopicListAndDescribe lists topics with their partition counts and
// replication factor, and describes one with each partition's log start
// and log end as records land in it.
func TestTopicListAndDescribe(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	if out := mustRun("", "topic", "list"); out != "TOPIC  PARTITIONS  REPLICATION\n" {
		t.Fatalf("empty topic list: %q", out)
	}
	mustRun("", "topic", "create", "events", "--partitions", "3")
	mustRun("", "topic", "create", "audit", "--partitions", "12", "--replication-factor", "1")
	want := "" +
		"TOPIC   PARTITIONS  REPLICATION\n" +
		"audit   12          1\n" +
		"events  3           1\n"
	if out := mustRun("", "topic", "list"); out != want {
		t.Fatalf("topic list:\n%s\nwant\n%s", out, want)
	}

	mustRun("a\nb\n", "produce", "events", "-p", "1")
	mustRun("c\nd\ne\n", "produce", "events", "-p", "2")
	want = "" +
		"TOPIC   PARTITION  LEADER  EPOCH  REPLICAS  ISR  LOG START  LOG END\n" +
		"events  0          1       0      1         1    0          0\n" +
		"events  1          1       0      1         1    0          2\n" +
		"events  2          1       0      1         1    0          3\n"
	if out := mustRun("", "topic", "describe", "events"); out != want {
		t.Fatalf("topic describe:\n%s\nwant\n%s", out, want)
	}
	// The log end is where the next record goes: one more moves it.
	mustRun("f\n", "produce", "events", "-p", "0")
	out := mustRun("", "topic", "describe", "events")
	if !strings.Contains(out, "\nevents  0          1       0      1         1    0          1\n") {
		t.Fatalf("topic describe after one more record:\n%s", out)
	}
}
