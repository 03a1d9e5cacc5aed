package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/client/brokertest"
)

// groupProcessWait bounds each wait of the process tests: the
// coordinator's session (45 s) for a killed member, and rebalances that
// move at its heartbeat interval (5 s), on a loaded machine.
const groupProcessWait = 3 * time.Minute

// memberProcess is one `strata consume --group` process and the lines it
// printed (`PARTITION:VALUE`).
type memberProcess struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out []string
	// done is closed when its stdout ends.
	done chan struct{}
}

func startMemberProcess(t *testing.T, brokers, topic, group string) *memberProcess {
	t.Helper()
	cmd := exec.Command(strataBin, "consume", topic, "--group", group, "--from", "earliest", "--format", `%p:%v\n`, "--brokers", brokers)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &memberProcess{cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-m.done
		cmd.Wait()
	})
	go func() {
		defer close(m.done)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			m.mu.Lock()
			m.out = append(m.out, s.Text())
			m.mu.Unlock()
		}
	}()
	return m
}

// printed reports whether the process printed line.
func (m *memberProcess) printed(line string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.out, line)
}

// awaitGroup describes the group until cond holds of it.
func awaitGroup(t *testing.T, admin *client.Admin, group, what string, cond func(client.GroupDescription) bool) client.GroupDescription {
	t.Helper()
	deadline := time.Now().Add(groupProcessWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d, err := admin.DescribeGroup(ctx, group)
		cancel()
		if err == nil && cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last description %+v (%v)", what, groupProcessWait, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// oneEach reports whether the group is stable with members members, each
// partition of the topic held by exactly one of them, none holding two.
func oneEach(members, partitions int) func(client.GroupDescription) bool {
	return func(d client.GroupDescription) bool {
		if d.State != client.GroupStateStable || len(d.Members) != members || d.GroupEpoch != d.AssignmentEpoch {
			return false
		}
		held := map[int32]bool{}
		for _, m := range d.Members {
			if len(m.Assignment) > 1 || len(m.PendingRevocation) > 0 {
				return false
			}
			for _, tp := range m.Assignment {
				if held[tp.Partition] {
					return false
				}
				held[tp.Partition] = true
			}
		}
		return len(held) == partitions
	}
}

// holderOf waits until one of the processes printed line and returns it.
func holderOf(t *testing.T, procs []*memberProcess, line string) *memberProcess {
	t.Helper()
	deadline := time.Now().Add(groupProcessWait)
	for {
		var got []*memberProcess
		for _, p := range procs {
			if p.printed(line) {
				got = append(got, p)
			}
		}
		if len(got) > 1 {
			t.Fatalf("%q printed by %d members", line, len(got))
		}
		if len(got) == 1 {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no member printed %q within %v", line, groupProcessWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGroupProcessesFiveOnFourAndKill: five `strata consume --group`
// processes on a topic of four partitions: the group settles with one
// partition each and exactly one member idle, and a record written to each
// partition is printed by one process each, four in all. Then the holder
// of partition 0 is killed with SIGKILL (no leave, no commit): once its
// session runs out at the coordinator, its partition goes to the idle
// member, and the next record of partition 0 is printed by a live one.
func TestGroupProcessesFiveOnFourAndKill(t *testing.T) {
	// A short member session, so the killed member's partition moves in
	// seconds rather than the 45 s default.
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0",
		"--group-session-timeout", "6s", "--group-heartbeat-interval", "1s")
	const topic, group, partitions = "shared", "five-on-four", 4
	mustRun := func(stdin string, args ...string) {
		t.Helper()
		if _, errOut, code := run(t, b.Addr, stdin, args...); code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
	}
	mustRun("", "topic", "create", topic, "--partitions", fmt.Sprint(partitions))
	cl, err := client.Dial(context.Background(), client.Config{Brokers: []string{b.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)

	var procs []*memberProcess
	for range 5 {
		procs = append(procs, startMemberProcess(t, b.Addr, topic, group))
	}
	d := awaitGroup(t, admin, group, "five members, one partition each, one idle", oneEach(5, partitions))
	idle := 0
	for _, m := range d.Members {
		if len(m.Assignment) == 0 {
			idle++
		}
	}
	if idle != 1 {
		t.Fatalf("%d idle members: %+v", idle, d)
	}

	// Which process holds what: a record to each partition, printed by its
	// holder alone.
	for p := range partitions {
		mustRun(fmt.Sprintf("round1-%d\n", p), "produce", topic, "-p", fmt.Sprint(p))
	}
	holders := map[*memberProcess]int{}
	var victim *memberProcess
	for p := range partitions {
		h := holderOf(t, procs, fmt.Sprintf("%d:round1-%d", p, p))
		holders[h]++
		if p == 0 {
			victim = h
		}
	}
	if len(holders) != partitions {
		t.Fatalf("%d processes printed the four partitions' records, want four", len(holders))
	}

	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	victim.cmd.Wait()
	awaitGroup(t, admin, group, "the killed member gone, its partition handed on", oneEach(4, partitions))
	mustRun("round2-0\n", "produce", topic, "-p", "0")
	live := slices.DeleteFunc(slices.Clone(procs), func(p *memberProcess) bool { return p == victim })
	h := holderOf(t, live, "0:round2-0")
	if holders[h] != 0 {
		t.Fatalf("partition 0 went to a member that held a partition already; the idle one should have taken it")
	}
	if out := strings.Join(victim.out, "\n"); strings.Contains(out, "round2") {
		t.Fatalf("the killed process printed after its death: %q", out)
	}
}
