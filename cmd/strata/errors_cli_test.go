package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
)

// TestErrorLines checks, word for word, how client commands report what a
// real broker refused: one "strata: " prefix, the operation, the code
// once, the reason, and exit 1; and a bad command line still exits 2.
func TestErrorLines(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	if _, errOut, code := run(t, b.Addr, "", "topic", "create", "present", "--partitions", "1"); code != 0 {
		t.Fatal(errOut)
	}
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"", []string{"topic", "create", "present"}, 1,
			`strata: create topic "present": TOPIC_ALREADY_EXISTS: topic "present" already exists`},
		{"", []string{"topic", "create", "many", "--partitions", "100000"}, 1,
			`strata: create topic "many": INVALID_PARTITIONS: partitions: 100000 is outside [1, 10000]`},
		{"", []string{"topic", "create", "odd", "--config", "no.such.setting=1"}, 1,
			`strata: create topic "odd": INVALID_CONFIG: unknown config key "no.such.setting"`},
		{"", []string{"topic", "create", "café"}, 1,
			`strata: create topic "café": INVALID_TOPIC: topic name "café" holds 'é' (U+00E9); only [a-zA-Z0-9._-] are allowed`},
		{"", []string{"topic", "create", "a/b"}, 1,
			`strata: create topic "a/b": INVALID_TOPIC: topic name "a/b" holds '/'; only [a-zA-Z0-9._-] are allowed`},
		{"", []string{"topic", "create", ""}, 1,
			`strata: create topic "": INVALID_TOPIC: topic name is empty; it must be 1 to 249 characters`},
		{"", []string{"topic", "create", strings.Repeat("n", 250)}, 1,
			`strata: create topic "` + strings.Repeat("n", 250) + `": INVALID_TOPIC: topic name is 250 characters long; the most is 249`},
		{"", []string{"topic", "describe", "nope"}, 1,
			`strata: describe topic "nope": UNKNOWN_TOPIC_OR_PARTITION: topic "nope" does not exist`},
		{"", []string{"topic", "delete", "nope"}, 1,
			`strata: delete topic "nope": UNKNOWN_TOPIC_OR_PARTITION: topic "nope" does not exist`},
		{"", []string{"consume", "nope", "--exit-at-end"}, 1,
			`strata: consume "nope": UNKNOWN_TOPIC_OR_PARTITION: topic "nope" does not exist`},
		{"", []string{"consume", "café", "--exit-at-end"}, 1,
			`strata: consume "café": INVALID_TOPIC: topic name "café" holds 'é' (U+00E9); only [a-zA-Z0-9._-] are allowed`},
		{"x\n", []string{"produce", "nope"}, 1,
			`strata: produce to "nope": UNKNOWN_TOPIC_OR_PARTITION: topic "nope" does not exist`},
		{"x\n", []string{"produce", "present", "-p", "4"}, 1,
			`strata: produce to "present": no such partition: topic present has no partition 4 (it has 1)`},
		{"", []string{"topic", "create", "x", "--partitions", "-1"}, 2,
			`strata: --partitions -1: want a count, or 0 for the default`},
		{"", []string{"topic", "create", "x", "--replication-factor", "-2"}, 2,
			`strata: --replication-factor -2: want a count, or 0 for the default`},
		{"", []string{"topic", "create", "x", "--config", "retention.ms"}, 2,
			`strata: --config "retention.ms": want key=value`},
	} {
		_, errOut, code := run(t, b.Addr, c.stdin, c.args...)
		if code != c.code || errOut != c.want+"\n" {
			t.Errorf("strata %.60q: exit %d, stderr\n%q\nwant exit %d and\n%q", c.args, code, errOut, c.code, c.want+"\n")
		}
	}
}

// TestMessageTooLargeRemedy produces a record larger than a topic's
// max.message.bytes: the error gives the batch's size, the setting and the
// command that raises it, and that command, run as told, lets the same
// record through.
func TestMessageTooLargeRemedy(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	const limit = 64 << 10 // well below the record, so the default batch carries it whole
	if _, errOut, code := run(t, b.Addr, "", "topic", "create", "small", "--partitions", "1",
		"--config", "max.message.bytes="+strconv.Itoa(limit)); code != 0 {
		t.Fatal(errOut)
	}
	record := strings.Repeat("r", 2*limit)
	_, errOut, code := run(t, b.Addr, record+"\n", "produce", "small")
	line := regexp.MustCompile("^strata: produce to \"small\": MESSAGE_TOO_LARGE: record batch of ([0-9]+) bytes to small/0 " +
		"is larger than the topic's max.message.bytes; raise the limit with " +
		"`strata topic alter-config small --set max.message.bytes=([0-9]+)`\n$")
	m := line.FindStringSubmatch(errOut)
	if code != 1 || m == nil {
		t.Fatalf("exit %d, stderr %q; want exit 1 and a line matching %s", code, errOut, line)
	}
	size, _ := strconv.Atoi(m[1])
	if size <= len(record) || m[2] != m[1] {
		t.Fatalf("batch of %s bytes for a record of %d, remedy %s", m[1], len(record), m[2])
	}
	// The remedy, as the line gives it: the same record is taken.
	if _, errOut, code := run(t, b.Addr, "", "topic", "alter-config", "small", "--set", "max.message.bytes="+m[2]); code != 0 {
		t.Fatal(errOut)
	}
	if _, errOut, code := run(t, b.Addr, record+"\n", "produce", "small"); code != 0 || errOut != "produced 1 record to small\n" {
		t.Fatalf("produce after the remedy: exit %d, %q", code, errOut)
	}
	out, errOut, code := run(t, b.Addr, "", "consume", "small", "--from", "earliest", "--exit-at-end")
	if code != 0 || out != record+"\n" {
		t.Fatalf("consume: exit %d, %d bytes, %q", code, len(out), errOut)
	}
}
