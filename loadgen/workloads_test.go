package main

import (
	"strings"
	"testing"

	"github.com/strata-db/strata/client"
)

// logEnds sums the log end offsets of a topic's partitions: how many
// records the broker holds.
func logEnds(t *testing.T, addr, topic string) (total int64, partitions int) {
	t.Helper()
	cl, err := client.Dial(t.Context(), client.Config{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	parts, err := cl.Partitions(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := cl.ListOffsets(t.Context(), topic, parts, client.OffsetLatest)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ends {
		total += e
	}
	return total, len(parts)
}

func mustRun(t *testing.T, args ...string) map[string]any {
	t.Helper()
	stdout, stderr, code := loadgenRun(t, args...)
	if code != exitOK {
		t.Fatalf("loadgen %s: exit %d\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), code, stderr, stdout)
	}
	if stderr != "" {
		t.Errorf("stderr is not a terminal, yet got output:\n%s", stderr)
	}
	m := lastJSONLine(t, stdout)
	checkConsistent(t, m)
	return m
}

func TestProduceConsumeAgainstBroker(t *testing.T) {
	b := startBroker(t)
	const records, size = 5000, 200

	p := mustRun(t, append([]string{"produce"}, clientArgs(b, "t1",
		"--records", records, "--record-size", size, "--partitions", 3, "--producers", 2,
		"--linger", "1ms", "--batch-bytes", "16KiB")...)...)
	if got := jsonInt(t, p, "records"); got != records {
		t.Errorf("produce records = %d, want %d", got, records)
	}
	if got := jsonInt(t, p, "latency_samples"); got != records {
		t.Errorf("produce latency_samples = %d, want one per record = %d", got, records)
	}
	if !p["topic_created"].(bool) || jsonInt(t, p, "partitions") != 3 || jsonInt(t, p, "producers") != 2 {
		t.Errorf("topic_created %v partitions %v producers %v, want true 3 2", p["topic_created"], p["partitions"], p["producers"])
	}
	if got := jsonString(t, p, "stopped_by"); got != "records" {
		t.Errorf("stopped_by = %q, want records", got)
	}
	// The broker holds exactly what was acknowledged.
	if held, parts := logEnds(t, b.Addr, "t1"); held != records || parts != 3 {
		t.Errorf("broker holds %d records in %d partitions, want %d in 3", held, parts, records)
	}

	c := mustRun(t, append([]string{"consume"}, clientArgs(b, "t1", "--consumers", 2)...)...)
	if got := jsonInt(t, c, "records"); got != records {
		t.Errorf("consume records = %d, want %d", got, records)
	}
	if got := jsonInt(t, c, "bytes"); got != records*size {
		t.Errorf("consume bytes = %d, want %d", got, records*size)
	}
	if got := jsonString(t, c, "stopped_by"); got != "log end" {
		t.Errorf("consume stopped_by = %q, want log end", got)
	}
	if jsonInt(t, c, "consumers") != 2 || c["topic_created"].(bool) {
		t.Errorf("consumers %v topic_created %v, want 2 false", c["consumers"], c["topic_created"])
	}

	// A second produce to the same topic appends; --records bounds a
	// consume that would otherwise read both runs' records.
	mustRun(t, append([]string{"produce"}, clientArgs(b, "t1", "--records", 1000, "--record-size", size)...)...)
	c = mustRun(t, append([]string{"consume"}, clientArgs(b, "t1")...)...)
	if got := jsonInt(t, c, "records"); got != records+1000 {
		t.Errorf("consume after a second produce read %d records, want %d", got, records+1000)
	}
}

func TestConsumeFill(t *testing.T) {
	b := startBroker(t)
	m := mustRun(t, append([]string{"consume", "--fill"}, clientArgs(b, "filled",
		"--records", 3000, "--record-size", 64, "--flush-policy", "never", "--compression", "lz4", "--procs", 1)...)...)
	if got := jsonInt(t, m, "client_procs"); got != 1 {
		t.Errorf("client_procs = %d, want 1", got)
	}
	if got := jsonInt(t, m, "records"); got != 3000 {
		t.Errorf("records = %d, want 3000", got)
	}
	if got := jsonInt(t, m, "produced"); got != 3000 {
		t.Errorf("produced = %d, want 3000", got)
	}
	if got := jsonString(t, m, "flush_policy"); got != "never" {
		t.Errorf("flush_policy = %q, want never", got)
	}
	if held, _ := logEnds(t, b.Addr, "filled"); held != 3000 {
		t.Errorf("broker holds %d records, want 3000", held)
	}
}

func TestE2EAgainstBroker(t *testing.T) {
	b := startBroker(t)
	const records = 400
	m := mustRun(t, append([]string{"e2e"}, clientArgs(b, "lat",
		"--records", records, "--rate", 4000, "--record-size", 128, "--partitions", 2, "--linger", "0")...)...)
	if got := jsonInt(t, m, "records"); got != records {
		t.Errorf("records read = %d, want %d", got, records)
	}
	if got := jsonInt(t, m, "produced"); got != records {
		t.Errorf("produced = %d, want %d", got, records)
	}
	if got := jsonInt(t, m, "latency_samples"); got != records {
		t.Errorf("latency_samples = %d, want one per record = %d", got, records)
	}
	// 400 records at 4000/s: the last is due 99.75 ms after the first.
	if secs := jsonFloat(t, m, "seconds"); secs < 0.099 {
		t.Errorf("seconds = %v: the rate was not held", secs)
	}
	if got := jsonString(t, m, "latency_of"); !strings.Contains(got, "stamped") {
		t.Errorf("latency_of = %q", got)
	}
}

func TestProduceDurationAndRate(t *testing.T) {
	b := startBroker(t)
	m := mustRun(t, append([]string{"produce"}, clientArgs(b, "paced",
		"--duration", "300ms", "--rate", 1000, "--record-size", 16)...)...)
	if got := jsonString(t, m, "stopped_by"); got != "duration" {
		t.Errorf("stopped_by = %q, want duration", got)
	}
	// At 1000 records/s for 300 ms the pacing allows at most 301 records
	// (the first at once, then one each millisecond). How close a loaded
	// machine comes to that is a timing, not a property: only the cap and
	// progress are checked.
	if got := jsonInt(t, m, "records"); got < 1 || got > 301 {
		t.Errorf("records = %d, want 1..301 at --rate 1000 for 300ms", got)
	}
	if held, _ := logEnds(t, b.Addr, "paced"); held != jsonInt(t, m, "records") {
		t.Errorf("broker holds %d records, report says %d", held, jsonInt(t, m, "records"))
	}
}

// TestProduceCreatesReplicatedTopic creates the topic with the
// replication flags: on one broker, replication factor 1 and
// min.insync.replicas 1 reach the broker, which accepts them, and the
// report names them.
func TestProduceCreatesReplicatedTopic(t *testing.T) {
	b := startBroker(t)
	stdout, stderr, code := loadgenRun(t, "produce", "--brokers", b.Addr, "--topic", "rf1", "--records", "10",
		"--replication-factor", "1", "--min-insync-replicas", "1", "--json")
	if code != 0 || !strings.Contains(stdout, `"replication_factor":1,"min_insync_replicas":1`) {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestClientWorkloadErrors(t *testing.T) {
	b := startBroker(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"produce", "--acks", "2"}, exitUsage, "--acks must be all"},
		{[]string{"produce", "--compression", "zstd"}, exitUsage, "--compression must be none or lz4"},
		{[]string{"produce", "--flush-policy", "sometimes"}, exitUsage, "--flush-policy must be"},
		{[]string{"consume", "--procs", "-1"}, exitUsage, "--procs must be between 0 and"},
		{[]string{"produce", "--replication-factor", "-1"}, exitUsage, "--replication-factor must be between 0 and 64"},
		{[]string{"produce", "--min-insync-replicas", "65"}, exitUsage, "--min-insync-replicas must be between 0 and 64"},
		{[]string{"produce", "--replication-factor", "1", "--min-insync-replicas", "2"}, exitUsage, "no produce with acks=all could succeed"},
		{[]string{"e2e", "--record-size", "4"}, exitUsage, "at least 8 bytes"},
		{[]string{"e2e", "--rate", "0"}, exitUsage, "--rate must be above 0"},
		{[]string{"suite", "--record-size", "10"}, exitUsage, "does not apply"},
		{[]string{"consume", "--brokers", b.Addr, "--topic", "nothing-here", "--records", "1"}, exitFailure, "nothing-here"},
		{[]string{"consume", "--brokers", b.Addr, "--topic", "two", "--fill", "--records", "10",
			"--partitions", "1", "--consumers", "2"}, exitFailure, "more consumers than partitions"},
	}
	for _, c := range cases {
		stdout, stderr, code := loadgenRun(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("loadgen %s: exit %d, stderr %q; want exit %d and %q\nstdout:\n%s",
				strings.Join(c.args, " "), code, stderr, c.code, c.want, stdout)
		}
	}
}
