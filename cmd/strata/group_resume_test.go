package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/client/brokertest"
)

// offsetLines parses a member process's `OFFSET:VALUE` lines, failing the
// test on a line that is not one or whose value is not "r" and its
// offset (what the test wrote there).
func offsetLines(t *testing.T, who string, lines []string) []int64 {
	t.Helper()
	out := make([]int64, 0, len(lines))
	for _, l := range lines {
		o, v, ok := strings.Cut(l, ":")
		off, err := strconv.ParseInt(o, 10, 64)
		if !ok || err != nil || v != "r"+o {
			t.Fatalf("%s printed %q, want OFFSET:rOFFSET", who, l)
		}
		out = append(out, off)
	}
	return out
}

// awaitCommitted polls the group's committed offset of tp until cond
// holds of it, and returns it.
func awaitCommitted(t *testing.T, admin *client.Admin, group string, tp client.TopicPartition, what string, cond func(int64) bool) int64 {
	t.Helper()
	deadline := time.Now().Add(groupProcessWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		offs, err := admin.CommittedOffsets(ctx, group)
		cancel()
		if off, ok := offs[tp]; err == nil && ok && cond(off) {
			return off
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; committed %v (%v)", what, groupProcessWait, offs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGroupProcessKilledResumesAtCommit: a `strata consume --group`
// process prints a topic's records and commits what it printed; more are
// written and printed, and it is killed with SIGKILL (no last commit, no
// leave). After more records, a new process of the group starts exactly
// at the offset committed when the first died, once the dead member's
// session has run out: it prints every record from there to the end
// once, in order, and the two together printed every record, the only
// ones printed twice being those the first printed after its last
// commit.
func TestGroupProcessKilledResumesAtCommit(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0",
		"--group-session-timeout", groupSessionTimeout.String(), "--group-heartbeat-interval", groupHeartbeatInterval.String())
	const topic, group = "resume", "resumers"
	const n1, n2, m = 20, 10, 15 // first batch, second batch, after the kill
	tp := client.TopicPartition{Topic: topic, Partition: 0}
	mustRun := func(stdin string, args ...string) {
		t.Helper()
		if _, errOut, code := run(t, b.Addr, stdin, args...); code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
	}
	produce := func(from, to int) {
		t.Helper()
		var in strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&in, "r%d\n", i)
		}
		mustRun(in.String(), "produce", topic, "-p", "0")
	}
	mustRun("", "topic", "create", topic, "--partitions", "1")
	cl, err := client.Dial(context.Background(), client.Config{Brokers: []string{b.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)
	const format = `%o:%v\n`
	awaitPrinted := func(p *memberProcess, who string, off int) {
		t.Helper()
		deadline := time.Now().Add(groupProcessWait)
		for !p.printed(fmt.Sprintf("%d:r%d", off, off)) {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not print offset %d within %v; it printed %q", who, off, groupProcessWait, p.lines())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	first := startMemberProcessFormat(t, b.Addr, topic, group, format)
	produce(0, n1)
	awaitPrinted(first, "the first process", n1-1)
	// consume --group commits what it printed every few seconds.
	awaitCommitted(t, admin, group, tp, "the first batch committed", func(off int64) bool { return off == n1 })
	produce(n1, n1+n2)
	awaitPrinted(first, "the first process", n1+n2-1)
	killed := time.Now()
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	first.cmd.Wait()
	// What counts is what was committed when it died: it commits nothing
	// after.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	offs, err := admin.CommittedOffsets(ctx, group)
	cancel()
	c, ok := offs[tp]
	if err != nil || !ok || c < n1 || c > n1+n2 {
		t.Fatalf("committed after the kill: %v (%v), want an offset in [%d, %d]", offs, err, n1, n1+n2)
	}
	firstOut := offsetLines(t, "the first process", first.lines())
	for i, off := range firstOut {
		if off != int64(i) || len(firstOut) != n1+n2 {
			t.Fatalf("the first process printed offsets %v, want 0 to %d in order", firstOut, n1+n2-1)
		}
	}

	produce(n1+n2, n1+n2+m)
	second := startMemberProcessFormat(t, b.Addr, topic, group, format)
	awaitPrinted(second, "the second process", n1+n2+m-1)
	t.Logf("committed %d when the first process was killed (it had printed to %d); the second printed the last record %v after the kill (member session %v)",
		c, n1+n2-1, time.Since(killed).Round(time.Millisecond), groupSessionTimeout)
	secondOut := offsetLines(t, "the second process", second.lines())
	if len(secondOut) == 0 || secondOut[0] != c {
		t.Fatalf("the second process started at %v, want the offset committed when the first died, %d", secondOut[:min(1, len(secondOut))], c)
	}
	for i, off := range secondOut {
		if off != c+int64(i) || len(secondOut) != n1+n2+m-int(c) {
			t.Fatalf("the second process printed offsets %v, want %d to %d, each once, in order", secondOut, c, n1+n2+m-1)
		}
	}
	// Together: every offset printed, and twice only those the first
	// printed after its last commit.
	times := map[int64]int{}
	for _, off := range append(firstOut, secondOut...) {
		times[off]++
	}
	for off := int64(0); off < n1+n2+m; off++ {
		want := 1
		if off >= c && off < n1+n2 {
			want = 2
		}
		if times[off] != want {
			t.Fatalf("offset %d printed %d times between the two processes, want %d (committed %d at the kill, first printed to %d)", off, times[off], want, c, n1+n2-1)
		}
	}
}
