package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/client/brokertest"
)

// The attack of TestRequestBudgetBoundsBrokerMemory: connections that each
// announce a large request, send its first MiB at once and then trickle
// the rest a byte at a time, and the budget the broker runs with.
const (
	rssBudgetBytes      = 64 << 20
	rssAttackConns      = 200
	rssClaimBytes       = 24 << 20 // two fit in the budget; the rest wait
	rssHeadBytes        = 1 << 20
	rssTrickleEvery     = 50 * time.Millisecond
	rssRecords          = 5000
	rssRecordValueBytes = 200
	// rssOverheadBytes is what the broker process may hold beyond the
	// budget: the Go runtime and heap of an idle broker (about 20 MiB),
	// the shard's provided receive buffers (32 MiB once all are used),
	// its pool of free request buffers (a quarter of the budget), and the
	// first bytes of each waiting request in its partial buffer (at most
	// a receive's worth, 64 KiB, each). Without the budget the attack
	// alone holds 200 MiB.
	rssOverheadBytes = 96 << 20
)

// TestRequestBudgetBoundsBrokerMemory runs `strata serve` with a 64 MiB
// request budget, opens 200 connections that each claim a 24 MiB request
// and trickle its body, and checks that the broker's peak resident memory
// stays under the budget plus a fixed overhead while a producer and a
// consumer on other connections move every record; once the attackers go,
// the budget is whole again.
func TestRequestBudgetBoundsBrokerMemory(t *testing.T) {
	cmd, addr, admin := startServeProcess(t, "--request-budget-bytes", strconv.Itoa(rssBudgetBytes))
	metric := func(name string) int64 { return scrapeMetric(t, admin, name) }
	t.Cleanup(func() {
		if t.Failed() {
			logMetrics(t, admin)
		}
	})

	stop := make(chan struct{})
	var stopOnce sync.Once
	var attackers sync.WaitGroup
	conns := make([]net.Conn, 0, rssAttackConns)
	endAttack := func() {
		stopOnce.Do(func() { close(stop) })
		for _, c := range conns {
			c.Close()
		}
		attackers.Wait()
	}
	t.Cleanup(endAttack)
	for i := range rssAttackConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			head := make([]byte, lengthPrefixBytes+rssHeadBytes)
			binary.LittleEndian.PutUint32(head, rssClaimBytes)
			for j := lengthPrefixBytes; j < len(head); j++ {
				head[j] = byte(i + j)
			}
			if _, err := c.Write(head); err != nil {
				return // closed at the end of the test
			}
			tick := time.NewTicker(rssTrickleEvery)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte{byte(i)}); err != nil {
						return
					}
				}
			}
		}()
	}
	// Every attacker ends up holding budget, waiting for it, or closed
	// because what it had sent before its receive stopped passed the
	// bound on waiting bytes.
	bufBytes := directBufBytes(lengthPrefixBytes + rssClaimBytes)
	granted := rssBudgetBytes / bufBytes
	var waiting, closed int64
	waitUntil(t, "every attacker to hold budget, wait for it or be closed", func() bool {
		waiting = metric("strata_request_budget_waiting_connections")
		closed = metric("strata_request_budget_closed_connections_total")
		return metric("strata_request_budget_used_bytes") == granted*bufBytes &&
			granted+waiting+closed == rssAttackConns && metric("strata_connections_open") == granted+waiting
	})
	t.Logf("%d attackers hold budget, %d wait, %d were closed", granted, waiting, closed)
	if waiting == 0 {
		t.Fatal("no attacker waits for budget")
	}

	produceAndConsumeAll(t, addr)
	// The producer's records all went through while the attackers held and
	// waited for the budget (produceAndConsumeAll checks every one). How
	// its large requests got there (going ahead of the waiting attackers,
	// or budget given back meanwhile) depends on the run's timing; the
	// going-ahead rule itself is checked deterministically in
	// request_budget_test.go.
	t.Logf("%v of the producer's requests went ahead of the waiting attackers",
		metric("strata_request_budget_passed_total"))

	peak := procStatusBytes(t, cmd.Process.Pid, "VmHWM")
	t.Logf("broker peak resident memory %d MiB under a %d MiB budget", peak>>20, rssBudgetBytes>>20)
	if peak > rssBudgetBytes+rssOverheadBytes {
		t.Fatalf("broker peak resident memory %d MiB, above the %d MiB budget plus %d MiB",
			peak>>20, rssBudgetBytes>>20, rssOverheadBytes>>20)
	}
	endAttack()
	waitUntil(t, "the budget to be whole again", func() bool {
		return metric("strata_request_budget_used_bytes") == 0 &&
			metric("strata_request_budget_waiting_connections") == 0 && metric("strata_connections_open") == 0
	})
}

// produceAndConsumeAll produces rssRecords records with the client library
// and reads every one back, in order, with its consumer.
func produceAndConsumeAll(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budgetWait)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{addr}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer cl.Close()
	if err := client.NewAdmin(cl).CreateTopics(ctx, client.TopicSpec{Name: "under-attack", Partitions: 1}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	// Batches are sealed when full (64 KiB), not by the linger, so that
	// every request but the last is one the budget counts, however slowly
	// the loaded machine runs the producer.
	p, err := client.NewProducer(cl, client.ProducerConfig{Acks: client.AcksAll, BatchBytes: 64 << 10, LingerMs: 60_000})
	if err != nil {
		t.Fatal(err)
	}
	value := func(i int) []byte {
		v := []byte(fmt.Sprintf("value-%d-", i))
		for len(v) < rssRecordValueBytes {
			v = append(v, byte('a'+i%26))
		}
		return v
	}
	var mu sync.Mutex
	var sendErr error
	for i := range rssRecords {
		r := &client.Record{Topic: "under-attack", Key: []byte(strconv.Itoa(i)), Value: value(i)}
		if err := p.Send(ctx, r, func(_ int32, _ int64, err error) {
			if err != nil {
				mu.Lock()
				sendErr = err
				mu.Unlock()
			}
		}); err != nil {
			t.Fatalf("send record %d: %v", i, err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("flush the producer: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil {
		t.Fatalf("a record was not delivered: %v", sendErr)
	}
	c := client.NewConsumer(cl, client.ConsumerConfig{Reset: client.ResetEarliest})
	defer c.Close()
	if err := c.Assign("under-attack"); err != nil {
		t.Fatal(err)
	}
	for next := 0; next < rssRecords; {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d records: %v", next, err)
		}
		for _, r := range recs {
			if r.Offset != int64(next) || string(r.Key) != strconv.Itoa(next) || string(r.Value) != string(value(next)) {
				t.Fatalf("record %d: offset %d key %q", next, r.Offset, r.Key)
			}
			next++
		}
	}
}

// serveLogTailLines is how much of the broker's log a failure reports.
const serveLogTailLines = 40

// adminLine captures the admin address of the broker's readiness line.
var adminLine = regexp.MustCompile(`\badmin=(\S+)`)

// startServeProcess runs `strata serve` with one shard and the extra
// arguments, and returns once it is ready, with its client and admin
// addresses. It is killed when the test ends.
func startServeProcess(t *testing.T, args ...string) (cmd *exec.Cmd, addr, admin string) {
	t.Helper()
	cmd = exec.Command(strataBin, append([]string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--cores", "1", "--pin=false"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	})
	ready := make(chan [2]string, 1)
	var logMu sync.Mutex
	var logTail []string
	t.Cleanup(func() {
		if t.Failed() {
			logMu.Lock()
			t.Logf("strata serve said:\n%s", strings.Join(logTail, "\n"))
			logMu.Unlock()
		}
	})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			if logTail = append(logTail, sc.Text()); len(logTail) > serveLogTailLines {
				logTail = logTail[1:]
			}
			logMu.Unlock()
			if a, ok := brokertest.ReadyAddr(sc.Text()); ok {
				m := adminLine.FindStringSubmatch(sc.Text())
				if m == nil {
					m = []string{"", ""}
				}
				ready <- [2]string{a, m[1]}
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(exited)
	}()
	select {
	case r := <-ready:
		if r[1] == "" {
			t.Fatal("the readiness line names no admin address")
		}
		return cmd, r[0], r[1]
	case <-exited:
		t.Fatal("strata serve exited before it was ready")
	case <-time.After(budgetWait):
		t.Fatal("strata serve not ready in time")
	}
	return nil, "", ""
}

// scrapeMetric reads one unlabelled metric from the broker's /metrics.
func scrapeMetric(t *testing.T, admin, name string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return int64(f)
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// logMetrics logs the broker's own metrics, for a failure report.
func logMetrics(t *testing.T, admin string) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Logf("metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "strata_") && !strings.Contains(l, "_bucket") {
			t.Log(l)
		}
	}
}
