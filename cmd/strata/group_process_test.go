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

// The short member session the kill tests give the broker, so that a
// killed member's partitions move in seconds rather than the 45 s default.
const (
	groupSessionTimeout    = 6 * time.Second
	groupHeartbeatInterval = 1 * time.Second
)

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
	return startMemberProcessFormat(t, brokers, topic, group, `%p:%v\n`)
}

// startMemberProcessFormat is startMemberProcess printing each record as
// format says.
func startMemberProcessFormat(t *testing.T, brokers, topic, group, format string) *memberProcess {
	t.Helper()
	cmd := exec.Command(strataBin, "consume", topic, "--group", group, "--from", "earliest", "--format", format, "--brokers", brokers)
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

// lines is a copy of what the process printed so far.
func (m *memberProcess) lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.out)
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

// awaitSessionExpiry describes the group from the kill (at killed) of the
// member victimID, which held partition held, until the member is gone
// and settled holds of the group without it, and returns when it
// was first seen gone and when settled. It fails the test if the
// coordinator dropped the member at once: a description asked for within
// a heartbeat interval of the kill must still list it, since a SIGKILL
// sends no leave and its session has seconds to run, so the member is
// removed by its session running out, not by its connections closing.
// While it is listed, its partition is nobody else's; once gone it does
// not come back.
func awaitSessionExpiry(t *testing.T, admin *client.Admin, group, victimID string, held client.TopicPartition, killed time.Time,
	settled func(client.GroupDescription) bool) (gone, settledAt time.Time) {
	t.Helper()
	listed := false
	deadline := time.Now().Add(groupProcessWait)
	for {
		asked := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d, err := admin.DescribeGroup(ctx, group)
		cancel()
		if err == nil {
			in := slices.ContainsFunc(d.Members, func(m client.GroupMemberDescription) bool { return m.MemberID == victimID })
			switch {
			case in && !gone.IsZero():
				t.Fatalf("the killed member %s is back in the group after it was gone: %+v", victimID, d)
			case in:
				listed = true
				for _, m := range d.Members {
					if m.MemberID != victimID && (slices.Contains(m.Assignment, held) || slices.Contains(m.Target, held)) {
						t.Fatalf("%s/%d is %s's while the killed member %s is still in the group: %+v", held.Topic, held.Partition, m.MemberID, victimID, d)
					}
				}
			case gone.IsZero():
				if !listed && asked.Sub(killed) < groupHeartbeatInterval {
					t.Fatalf("the killed member %s was gone from the group %v after the SIGKILL, well inside its %v session: the coordinator did not wait for the session to run out: %+v",
						victimID, asked.Sub(killed), groupSessionTimeout, d)
				}
				if !listed {
					t.Logf("the first description after the SIGKILL came %v after it, and the killed member was gone already", asked.Sub(killed))
				}
				gone = asked
			}
			if !in && settled(d) {
				return gone, asked
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed member gone, the group settled without it: not within %v; last description %+v (%v)", groupProcessWait, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGroupProcessesFiveOnFourAndKill: five `strata consume --group`
// processes on a topic of four partitions: the group settles with one
// partition each and exactly one member idle, and a record written to each
// partition is printed by one process each, four in all. Then the holder
// of partition 0 is killed with SIGKILL (no leave, no commit): the
// coordinator keeps it in the group, partition 0 its alone, until its
// session runs out; then it is gone, its partition goes to the idle
// member, and the next record of partition 0 is printed by a live one.
// How long the handover took from the kill is logged beside the session.
func TestGroupProcessesFiveOnFourAndKill(t *testing.T) {
	// A short member session, so the killed member's partition moves in
	// seconds rather than the 45 s default.
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0",
		"--group-session-timeout", groupSessionTimeout.String(), "--group-heartbeat-interval", groupHeartbeatInterval.String())
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

	// The victim's member id: the one member the coordinator has
	// holding partition 0 (the assignment has not moved since the group
	// settled: nobody joined or left).
	d = awaitGroup(t, admin, group, "the group still settled", oneEach(5, partitions))
	victimID := ""
	for _, m := range d.Members {
		if slices.Contains(m.Assignment, client.TopicPartition{Topic: topic, Partition: 0}) {
			victimID = m.MemberID
		}
	}
	if victimID == "" {
		t.Fatalf("no member holds partition 0: %+v", d)
	}

	killed := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	victim.cmd.Wait()
	gone, handedOn := awaitSessionExpiry(t, admin, group, victimID, client.TopicPartition{Topic: topic, Partition: 0}, killed,
		oneEach(4, partitions))
	t.Logf("after the SIGKILL (member session %v, heartbeat %v): the killed member left the group's description after %v, partition 0 was handed on after %v",
		groupSessionTimeout, groupHeartbeatInterval, gone.Sub(killed).Round(time.Millisecond), handedOn.Sub(killed).Round(time.Millisecond))
	mustRun("round2-0\n", "produce", topic, "-p", "0")
	live := slices.DeleteFunc(slices.Clone(procs), func(p *memberProcess) bool { return p == victim })
	h := holderOf(t, live, "0:round2-0")
	t.Logf("the record written to partition 0 after the handover was printed %v after the SIGKILL", time.Since(killed).Round(time.Millisecond))
	if holders[h] != 0 {
		t.Fatalf("partition 0 went to a member that held a partition already; the idle one should have taken it")
	}
	if out := strings.Join(victim.out, "\n"); strings.Contains(out, "round2") {
		t.Fatalf("the killed process printed after its death: %q", out)
	}
}
