package main

import (
	"strconv"
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
	// A batch's size depends on how the producer batched the lines, so the
	// sizes are checked against each other and against the log folder.
	rows := func(out string) map[string][]string {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if got := strings.Fields(lines[0]); strings.Join(got, " ") != "TOPIC PARTITION LEADER EPOCH REPLICAS ISR ELR LAST KNOWN ELR OFFLINE LOG START LOG END SIZE BYTES/S RECORDS/S HOT" {
			t.Fatalf("topic describe header %q", lines[0])
		}
		byPartition := map[string][]string{}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			// A few records are no load: a rate, not hot.
			if len(f) != 15 || f[0] != "events" || f[2] != "1" || f[3] != "0" || f[4] != "1" || f[5] != "1" ||
				f[6] != "-" || f[7] != "-" || f[8] != "-" || f[9] != "0" || !isRate(f[12]) || !isRate(f[13]) || f[14] != "no" {
				t.Fatalf("topic describe row %q", l)
			}
			byPartition[f[1]] = f[10:12]
		}
		return byPartition
	}
	size := func(s string) int64 {
		t.Helper()
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("size %q", s)
		}
		return n
	}
	got := rows(mustRun("", "topic", "describe", "events"))
	if len(got) != 3 || got["0"][0] != "0" || got["1"][0] != "2" || got["2"][0] != "3" || got["0"][1] != "0" ||
		size(got["1"][1]) <= 0 || size(got["2"][1]) <= size(got["1"][1])/2 {
		t.Fatalf("topic describe: log ends and sizes %v", got)
	}
	// The log end is where the next record goes: one more moves it, and
	// the partition's size with it.
	mustRun("f\n", "produce", "events", "-p", "0")
	got = rows(mustRun("", "topic", "describe", "events"))
	if got["0"][0] != "1" || size(got["0"][1]) <= 0 {
		t.Fatalf("topic describe after one more record: %v", got)
	}
	// The broker's log folder holds all 15 partitions and exactly their
	// bytes (audit's are empty).
	out := mustRun("", "cluster", "describe")
	var total int64
	for _, r := range got {
		total += size(r[1])
	}
	i := strings.Index(out, "NODE  LOG DIR")
	if i < 0 {
		t.Fatalf("cluster describe has no log folders:\n%s", out)
	}
	dirRow := strings.Fields(strings.Split(out[i:], "\n")[1])
	if len(dirRow) != 6 || dirRow[0] != "1" || dirRow[1] != b.DataDir || dirRow[2] != "15" || size(dirRow[3]) != total ||
		size(dirRow[4]) <= 0 || size(dirRow[5]) < size(dirRow[4]) {
		t.Fatalf("log folder row %v, want broker 1 in %s with 15 partitions and %d bytes", dirRow, b.DataDir, total)
	}
}

// isRate tells a rate cell of topic describe: a number, at least 0.
func isRate(s string) bool {
	r, err := strconv.ParseFloat(s, 64)
	return err == nil && r >= 0
}
