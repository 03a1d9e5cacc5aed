package server

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// holdConnsEnv makes the test binary a helper process that opens
// connections and holds them: the broker's process could not also hold the
// client ends of 10,000 connections under the descriptor limit.
const holdConnsEnv = "STRATA_TEST_HOLD_CONNS"

func init() {
	spec := os.Getenv(holdConnsEnv)
	if spec == "" {
		return
	}
	addr, countStr, _ := strings.Cut(spec, ",")
	count, _ := strconv.Atoi(countStr)
	conns := make([]net.Conn, 0, count)
	for range count {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	// Hold until the parent closes stdin.
	bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

// TestTenThousandIdleConnectionsStayBounded: 10,000 idle connections cost
// the broker a bounded, small amount of memory each (no receive buffer is
// held per connection: they share the shard's provided buffers).
func TestTenThousandIdleConnectionsStayBounded(t *testing.T) {
	const conns = 10_000
	const heapPerConnMaxBytes = 4 << 10
	b := startBroker(t, t.TempDir(), 2)
	defer b.Stop()
	before := heapInUse()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", holdConnsEnv, b.Addr(), conns))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("connection holder: %q %v", line, err)
	}
	open := func() int64 {
		var n int64
		for _, sh := range b.Server().Shards() {
			n += sh.Stats().Open.Load()
		}
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	for open() < conns {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d connections accepted", open(), conns)
		}
		runtime.Gosched()
	}
	after := heapInUse()
	perConn := (int64(after) - int64(before)) / conns
	t.Logf("Go heap in use: %d -> %d bytes, %d bytes per idle connection", before, after, perConn)
	if perConn > heapPerConnMaxBytes {
		t.Fatalf("%d heap bytes per idle connection, above %d", perConn, heapPerConnMaxBytes)
	}
	// The broker still serves a new client among them.
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("among-many", 1); code != 0 {
		t.Fatalf("create topic with 10,000 idle connections open: %v", code)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
