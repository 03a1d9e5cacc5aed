package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/client/brokertest"
)

// hotCLILines is how many lines of hotCLILineBytes each produce of the hot
// partition test sends: 4 MiB, well past the 64 KiB/s floor over the
// broker's default 1-minute rate window.
const (
	hotCLILines     = 4096
	hotCLILineBytes = 1024
)

// TestTopicDescribeShowsHotPartition produces every record of a topic of
// 6 partitions with one key through the CLI: topic describe shows that
// partition's bytes and records per second and flags it HOT at 6 times
// the topic's mean (all of the traffic on one of six), and the other five
// at no traffic and not hot. A topic given the same lines on each of its
// 6 partitions flags none.
func TestTopicDescribeShowsHotPartition(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	lines := strings.Repeat(strings.Repeat("x", hotCLILineBytes-1)+"\n", hotCLILines)
	// rows are a topic's describe rows by partition: BYTES/S, RECORDS/S
	// and HOT.
	rows := func(topic string) map[int32][3]string {
		t.Helper()
		out := mustRun("", "topic", "describe", topic)
		ls := strings.Split(strings.TrimSpace(out), "\n")
		if h := strings.Join(strings.Fields(ls[0]), " "); !strings.HasSuffix(h, " SIZE BYTES/S RECORDS/S HOT") {
			t.Fatalf("topic describe header %q", ls[0])
		}
		got := map[int32][3]string{}
		for _, l := range ls[1:] {
			f := strings.Fields(l)
			p, err := strconv.Atoi(f[1])
			if len(f) != 15 || f[0] != topic || err != nil {
				t.Fatalf("topic describe row %q", l)
			}
			got[int32(p)] = [3]string{f[12], f[13], f[14]}
		}
		if len(got) != 6 {
			t.Fatalf("topic describe %s: %d rows:\n%s", topic, len(got), out)
		}
		return got
	}
	rate := func(s string) float64 {
		t.Helper()
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || r < 0 {
			t.Fatalf("rate cell %q", s)
		}
		return r
	}

	mustRun("", "topic", "create", "clicks", "--partitions", "6")
	mustRun(lines, "produce", "clicks", "-k", "null")
	hot := client.KeyPartition([]byte("null"), 6)
	for p, r := range rows("clicks") {
		switch {
		case p == hot:
			if r[2] != "6.0x" || rate(r[0]) <= 0 || rate(r[1]) <= 0 {
				t.Fatalf("partition %d of every record: %v, want HOT 6.0x with its rates", p, r)
			}
		case r != [3]string{"0", "0.0", "no"}:
			t.Fatalf("partition %d of no record: %v", p, r)
		}
	}

	mustRun("", "topic", "create", "even", "--partitions", "6")
	for p := range 6 {
		mustRun(lines, "produce", "even", "-p", fmt.Sprint(p))
	}
	for p, r := range rows("even") {
		if r[2] != "no" || rate(r[0]) <= 0 || rate(r[1]) <= 0 {
			t.Fatalf("partition %d of an even spread: %v, want its rates and not hot", p, r)
		}
	}
}
