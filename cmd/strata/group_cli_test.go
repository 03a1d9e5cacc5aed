package main

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/client/brokertest"
)

// groupRow is one row of the partition table of `group describe`.
var groupRow = regexp.MustCompile(`(?m)^clicks\s+(\d+)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)\s+(\S+)$`)

// groupRows returns each partition's committed offset, log end and lag
// as `group describe` prints them.
func groupRows(t *testing.T, out string) map[int][3]string {
	t.Helper()
	rows := map[int][3]string{}
	for _, m := range groupRow.FindAllStringSubmatch(out, -1) {
		p, _ := strconv.Atoi(m[1])
		rows[p] = [3]string{m[2], m[3], m[4]}
	}
	return rows
}

// TestGroupCLI consumes as a group member with --count, describes the
// group (committed offsets, log ends, lag), goes on from the committed
// offsets, resets them (refused while a member is in the group), and
// deletes the group.
func TestGroupCLI(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out, errOut
	}
	mustRun("", "topic", "create", "clicks", "--partitions", "2")
	mustRun("a\nb\nc\n", "produce", "clicks", "-p", "0")
	mustRun("d\ne\nf\n", "produce", "clicks", "-p", "1")

	first, _ := mustRun("", "consume", "clicks", "--group", "g1", "--from", "earliest", "--count", "4")
	if n := strings.Count(first, "\n"); n != 4 {
		t.Fatalf("consume --count 4 printed %d lines: %q", n, first)
	}
	if out, _ := mustRun("", "group", "list"); !regexp.MustCompile(`(?m)^GROUP\s+STATE\n(.*\n)*g1\s+Empty$`).MatchString(out) {
		t.Fatalf("group list: %q", out)
	}
	out, _ := mustRun("", "group", "describe", "g1")
	for _, want := range []string{"group: g1\n", "state: Empty\n", "\nmembers: 0\n", "MEMBER  INSTANCE  CLIENT  HOST  EPOCH  ASSIGNED  REVOKING\n",
		"TOPIC   PARTITION  COMMITTED  LOG END  LAG  MEMBER\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("group describe lacks %q:\n%s", want, out)
		}
	}
	rows := groupRows(t, out)
	committed, lag := 0, 0
	for p := range 2 {
		r, ok := rows[p]
		if !ok || r[1] != "3" {
			t.Fatalf("partition %d: row %v, want log end 3:\n%s", p, r, out)
		}
		c, _ := strconv.Atoi(r[0])
		l, _ := strconv.Atoi(r[2])
		committed, lag = committed+c, lag+l
		if c+l != 3 {
			t.Fatalf("partition %d: committed %d and lag %d do not add up to the log end 3", p, c, l)
		}
	}
	if committed != 4 || lag != 2 {
		t.Fatalf("committed %d in all and lag %d, want 4 and 2 (the records printed):\n%s", committed, lag, out)
	}

	// The next member goes on from the commits: the two records left.
	second, _ := mustRun("", "consume", "clicks", "--group", "g1", "--count", "2")
	if got := strings.Fields(first + second); len(got) != 6 || !sameSet(got, []string{"a", "b", "c", "d", "e", "f"}) {
		t.Fatalf("the two members printed %q then %q: want every record once", first, second)
	}
	out, _ = mustRun("", "group", "describe", "g1")
	for p, r := range groupRows(t, out) {
		if r != [3]string{"3", "3", "0"} {
			t.Fatalf("partition %d after reading everything: %v\n%s", p, r, out)
		}
	}

	out, _ = mustRun("", "group", "reset-offsets", "g1", "--topic", "clicks", "--to-earliest", "--dry-run")
	if want := "TOPIC   PARTITION  OLD  NEW\nclicks  0          3    0\nclicks  1          3    0\ndry run: nothing committed\n"; out != want {
		t.Fatalf("dry run: %q, want %q", out, want)
	}
	out, _ = mustRun("", "group", "reset-offsets", "g1", "--topic", "clicks", "--to-offset", "1")
	if !strings.HasSuffix(out, "reset the offsets of group g1 for 2 partitions of clicks\n") {
		t.Fatalf("reset: %q", out)
	}
	out, _ = mustRun("", "group", "describe", "g1")
	for p, r := range groupRows(t, out) {
		if r != [3]string{"1", "3", "2"} {
			t.Fatalf("partition %d after the reset to 1: %v\n%s", p, r, out)
		}
	}

	// A member in the group: reset and delete are refused, on one line
	// that says what to do.
	member := exec.Command(strataBin, "consume", "clicks", "--group", "g1", "--brokers", b.Addr)
	var memberErr strings.Builder
	member.Stderr = &memberErr
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	defer member.Process.Kill()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ = mustRun("", "group", "describe", "g1")
		if strings.Contains(out, "\nmembers: 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member never showed in describe:\n%s\nits stderr: %s", out, memberErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Its row: no instance id, the CLI's client id and host, its epoch, both
	// partitions (once the coordinator gave it both) and nothing revoking.
	memberRow := regexp.MustCompile(`(?m)^\S+\s+-\s+strata-cli\s+127\.0\.0\.1\s+[1-9]\d*\s+clicks/0,1\s+-$`)
	for !memberRow.MatchString(out) {
		if time.Now().After(deadline) {
			t.Fatalf("the member's row never showed both partitions:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
		out, _ = mustRun("", "group", "describe", "g1")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "reset-offsets", "g1", "--topic", "clicks", "--to-latest"},
			"strata: reset the offsets of group \"g1\": group g1 has 1 member; stop its consumers first (`strata group describe g1` lists them)\n"},
		{[]string{"group", "delete", "g1"},
			"strata: delete group \"g1\": group g1 has members; stop its consumers first (`strata group describe g1` lists them)\n"},
	} {
		if _, errOut, code := run(t, b.Addr, "", c.args...); code != 1 || errOut != c.want {
			t.Errorf("strata %v with a member: exit %d, stderr %q; want exit 1 and %q", c.args, code, errOut, c.want)
		}
	}
	if err := member.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := member.Wait(); err != nil {
		t.Fatalf("interrupted member: %v, stderr %q", err, memberErr.String())
	}
	if out, _ := mustRun("", "group", "delete", "g1"); out != "deleted group g1\n" {
		t.Fatalf("delete: %q", out)
	}
	_, errOut, code := run(t, b.Addr, "", "group", "describe", "g1")
	if code != 1 || !strings.Contains(errOut, "GROUP_ID_NOT_FOUND") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("describe of a deleted group: exit %d, stderr %q", code, errOut)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"consume", "clicks", "--group", "g1", "-p", "0"}, "--partition with --group"},
		{[]string{"consume", "clicks", "--group", "g1", "--from", "5"}, "--from with --group takes earliest or latest"},
		{[]string{"consume", "clicks", "--group", "g1", "-e"}, "--exit-at-end with --group"},
		{[]string{"group", "reset-offsets", "g1", "--topic", "clicks"}, "exactly one of --to-earliest"},
		{[]string{"group", "reset-offsets", "g1", "--to-latest"}, "--topic is required"},
		{[]string{"group", "reset-offsets", "g1", "--topic", "clicks", "--to-time", "noon"}, "--to-time \"noon\""},
	} {
		if _, errOut, code := run(t, b.Addr, "", c.args...); code != 2 || !strings.Contains(errOut, c.msg) {
			t.Errorf("strata %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errOut, c.msg)
		}
	}
}

// sameSet reports whether a and b hold the same strings, each once.
func sameSet(a, b []string) bool {
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s] != 1 {
			return false
		}
		delete(seen, s)
	}
	return len(seen) == 0
}

// TestGroupResetToTime: two batches written to each partition of a
// topic with a moment between them (the clock past the first batch's
// acknowledgement before the second is written): reset-offsets --to-time
// of the first millisecond after it (unix ms, or the same moment in RFC
// 3339) sets each partition's committed offset to the first record of the
// second batch; a time after every record sets the log end.
func TestGroupResetToTime(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	mustRun("", "topic", "create", "stamped", "--partitions", "2")
	lines := func(prefix string, n int) string {
		var s strings.Builder
		for i := range n {
			fmt.Fprintf(&s, "%s%d\n", prefix, i)
		}
		return s.String()
	}
	// The first batch: 3 records to partition 0, 2 to partition 1.
	mustRun(lines("a", 3), "produce", "stamped", "-p", "0")
	mustRun(lines("b", 2), "produce", "stamped", "-p", "1")
	// Every record of the first batch is stamped at or before boundary;
	// the second is written once the clock is past its millisecond.
	boundary := time.Now().UnixMilli()
	for time.Now().UnixMilli() <= boundary {
		time.Sleep(time.Millisecond)
	}
	mustRun(lines("c", 2), "produce", "stamped", "-p", "0")
	mustRun(lines("d", 3), "produce", "stamped", "-p", "1")
	at := boundary + 1

	cl, err := client.Dial(context.Background(), client.Config{Brokers: []string{b.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)
	committed := func() map[client.TopicPartition]int64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		offs, err := admin.CommittedOffsets(ctx, "stamps")
		if err != nil {
			t.Fatal(err)
		}
		return offs
	}
	p0, p1 := client.TopicPartition{Topic: "stamped", Partition: 0}, client.TopicPartition{Topic: "stamped", Partition: 1}

	rfc := time.UnixMilli(at).UTC().Format(time.RFC3339Nano)
	out := mustRun("", "group", "reset-offsets", "stamps", "--topic", "stamped", "--to-time", rfc, "--dry-run")
	if want := "TOPIC    PARTITION  OLD  NEW\nstamped  0          -    3\nstamped  1          -    2\ndry run: nothing committed\n"; out != want {
		t.Fatalf("dry run to %s: %q, want %q", rfc, out, want)
	}
	out = mustRun("", "group", "reset-offsets", "stamps", "--topic", "stamped", "--to-time", strconv.FormatInt(at, 10))
	if !strings.HasSuffix(out, "reset the offsets of group stamps for 2 partitions of stamped\n") {
		t.Fatalf("reset to %d: %q", at, out)
	}
	if got, want := committed(), map[client.TopicPartition]int64{p0: 3, p1: 2}; !maps.Equal(got, want) {
		t.Fatalf("committed after the reset to %d (the first millisecond after the first batch): %v, want %v (the second batch's first records)", at, got, want)
	}
	mustRun("", "group", "reset-offsets", "stamps", "--topic", "stamped", "--to-time", "2100-01-01T00:00:00Z")
	if got, want := committed(), map[client.TopicPartition]int64{p0: 5, p1: 5}; !maps.Equal(got, want) {
		t.Fatalf("committed after a reset to a time after every record: %v, want the log ends %v", got, want)
	}
}
