package main

import (
	"strings"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
)

// TestTopicAlterConfigAndAddPartitions drives alter-config, describe
// --configs and add-partitions against a broker process: a change shows
// in the configs table, a refused key fails with its name and changes
// nothing, --validate-only changes nothing, and a grown topic takes
// records in its new partition and serves them back.
func TestTopicAlterConfigAndAddPartitions(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	// configRow is the DESCRIBE --configs row of one key, as fields.
	configRow := func(key string) []string {
		t.Helper()
		out := mustRun("", "topic", "describe", "events", "--configs")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if strings.Join(strings.Fields(lines[0]), " ") != "TOPIC CONFIG VALUE DEFAULT DYNAMIC" {
			t.Fatalf("configs header %q", lines[0])
		}
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) == 5 && f[0] == "events" && f[1] == key {
				return f[2:]
			}
		}
		t.Fatalf("no row for %s in\n%s", key, out)
		return nil
	}
	mustRun("", "topic", "create", "events", "--partitions", "1", "--config", "retention.ms=86400000")
	if got := strings.Join(configRow("retention.ms"), " "); got != "86400000 no yes" {
		t.Fatalf("retention.ms row %q", got)
	}
	if got := strings.Join(configRow("retention.bytes"), " "); got != "-1 yes yes" {
		t.Fatalf("retention.bytes row %q", got)
	}
	if got := strings.Join(configRow("partitions"), " "); got != "1 no no" {
		t.Fatalf("partitions row %q", got)
	}

	out := mustRun("", "topic", "alter-config", "events", "--set", "retention.bytes=1073741824", "--delete", "retention.ms")
	if out != "altered the configs of topic events\n" {
		t.Fatalf("alter-config said %q", out)
	}
	if got := strings.Join(configRow("retention.bytes"), " "); got != "1073741824 no yes" {
		t.Fatalf("retention.bytes row after alter %q", got)
	}
	if got := strings.Join(configRow("retention.ms"), " "); got != "604800000 yes yes" {
		t.Fatalf("retention.ms row after delete %q", got)
	}
	mustRun("", "topic", "alter-config", "events", "--set", "cleanup.policy=compact", "--validate-only")
	if got := configRow("cleanup.policy")[0]; got != "delete" {
		t.Fatalf("cleanup.policy %q after --validate-only", got)
	}
	for _, tc := range []struct{ args, want []string }{
		{[]string{"--set", "partitions=4"}, []string{"INVALID_CONFIG", "partitions cannot be changed", "add-partitions"}},
		{[]string{"--set", "no.such.key=1"}, []string{"INVALID_CONFIG", `"no.such.key"`}},
		{[]string{"--set", "compression.type=gzip"}, []string{"INVALID_CONFIG", "compression.type"}},
	} {
		_, errOut, code := run(t, b.Addr, "", append([]string{"topic", "alter-config", "events"}, tc.args...)...)
		for _, w := range tc.want {
			if code != 1 || !strings.Contains(errOut, w) {
				t.Fatalf("alter-config %v: exit %d, stderr %q; want exit 1 naming %q", tc.args, code, errOut, w)
			}
		}
	}
	// The whole line, as docs/operations.md shows it.
	_, errOut, _ := run(t, b.Addr, "", "topic", "alter-config", "events", "--set", "partitions=4")
	if want := "strata: alter configs of topic \"events\": INVALID_CONFIG: partitions cannot be changed: " +
		"the partition count grows with CreatePartitions (strata topic add-partitions), never by a config\n"; errOut != want {
		t.Fatalf("refusal line %q, want %q", errOut, want)
	}
	if _, _, code := run(t, b.Addr, "", "topic", "describe", "events", "--configs", "--unavailable-partitions"); code != 2 {
		t.Fatalf("--configs with a partition filter: exit %d, want 2", code)
	}
	if _, _, code := run(t, b.Addr, "", "topic", "alter-config", "events"); code != 2 {
		t.Fatalf("alter-config with nothing to change: exit %d, want 2", code)
	}

	if out := mustRun("", "topic", "add-partitions", "events", "--count", "3"); out != "topic events now has 3 partitions\n" {
		t.Fatalf("add-partitions said %q", out)
	}
	_, errOut, code := run(t, b.Addr, "", "topic", "add-partitions", "events", "--count", "2")
	if code != 1 || !strings.Contains(errOut, "INVALID_PARTITIONS") {
		t.Fatalf("shrinking: exit %d, stderr %q", code, errOut)
	}
	if got := strings.Join(strings.Fields(strings.Split(mustRun("", "topic", "list"), "\n")[1]), " "); got != "events 3 1" {
		t.Fatalf("topic list row %q", got)
	}
	mustRun("x\ny\n", "produce", "events", "-p", "2")
	if out := mustRun("", "consume", "events", "-p", "2", "--from", "earliest", "-c", "2"); out != "x\ny\n" {
		t.Fatalf("consumed %q from the new partition", out)
	}
}
