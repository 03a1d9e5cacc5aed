package server

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// dataPathSyscalls are the system calls a shard must not make per request:
// its socket and file I/O goes through io_uring.
var dataPathSyscalls = []string{"read", "write", "pread64", "pwrite64", "readv", "writev",
	"sendfile", "recvfrom", "sendto", "recvmsg", "sendmsg"}

// TestDataPathIsIOURing runs a large produce-and-consume against an
// in-process broker and counts, per shard thread, the read/write family of
// system calls: through /proc/self/task/<tid>/io (read and write calls of
// every kind), and, where strace is installed, by tracing the shard threads
// for every call in dataPathSyscalls. Hundreds of requests move tens of
// MiB; the shards may make a handful of such calls in all (none is
// expected), never one per request.
func TestDataPathIsIOURing(t *testing.T) {
	const (
		frames       = 400
		recordsEach  = 32
		valueBytes   = 1000
		callsAllowed = 8
	)
	b := startBroker(t, t.TempDir(), 2)
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("traced", 2); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	// Warm up: the first request on a fresh connection, partition and
	// splice pipe sets things up once.
	c.call(produceMsg(fb.AcksAll, "traced", 0, bigBatch(t, 1, valueBytes)))
	c.call(produceMsg(fb.AcksAll, "traced", 1, bigBatch(t, 1, valueBytes)))
	c.call(fetchMsg("traced", 0, 0, 0, 0))
	c.call(fetchMsg("traced", 1, 0, 0, 0))

	var tids []int
	for _, sh := range b.Server().Shards() {
		tids = append(tids, sh.ThreadID())
	}
	before := threadIO(t, tids)
	stopTrace := traceThreads(t, tids)

	requests := 0
	payload := [2][]byte{bigBatch(t, recordsEach, valueBytes), bigBatch(t, recordsEach, valueBytes)}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range frames {
			c.send(produceMsg(fb.AcksAll, "traced", int32(i%2), payload[i%2]))
		}
	}()
	for range frames {
		env, _ := c.recv()
		if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
			t.Fatal(r.ErrorCode)
		}
		requests++
	}
	<-sent // the client's sender is done before the fetches reuse it
	consumed := 0
	for p := int32(0); p < 2; p++ {
		for offset := int64(1); ; { // after the warm-up record
			env, trailing := c.call(fetchMsgBytes("traced", p, offset, 1<<20))
			requests++
			fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
			if fr.ErrorCode != fb.ErrorCodeNone {
				t.Fatal(fr.ErrorCode)
			}
			if len(trailing) == 0 {
				break
			}
			recs := records(t, trailing)
			consumed += len(recs)
			offset = recs[len(recs)-1].Offset + 1
		}
	}
	if consumed != frames*recordsEach {
		t.Fatalf("consumed %d records, want %d", consumed, frames*recordsEach)
	}
	var spliced, nanos uint64
	for _, sh := range b.Server().Shards() {
		spliced += sh.Stats().SplicedAnswers.Load()
		nanos += sh.Stats().SpliceNanos.Load()
	}
	if spliced == 0 || nanos == 0 {
		t.Fatalf("fetch answers spliced: %d, splice time %d ns; want both counted", spliced, nanos)
	}
	traced := stopTrace()
	after := threadIO(t, tids)
	calls := after.calls - before.calls
	moved := 2 * frames * len(payload[0])
	t.Logf("%d requests moved %d MiB in and out; shard threads made %d read/write-family calls (/proc); strace counted %v",
		requests, moved>>20, calls, traced)
	if calls > callsAllowed {
		t.Fatalf("shard threads made %d read/write calls for %d requests", calls, requests)
	}
	if traced != nil && traced["io_uring_enter"] == 0 {
		t.Fatalf("strace saw no io_uring_enter from the shards: it did not trace them (%v)", traced)
	}
	for name, n := range traced {
		if name != "io_uring_enter" && n > callsAllowed {
			t.Fatalf("shard threads made %d %s calls for %d requests", n, name, requests)
		}
	}
}

// bigBatch is a frame of n records of size bytes each.
func bigBatch(t testing.TB, n, size int) []byte {
	t.Helper()
	bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := bytes.Repeat([]byte{'v'}, size)
	for i := range n {
		if err := bb.Append(&schema.Record{Key: []byte(strconv.Itoa(i)), Value: v, TimestampMs: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := bb.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fetchMsgBytes(topic string, partition int32, offset int64, maxBytes int32) *fb.MessageT {
	m := fetchMsg(topic, partition, offset, 0, 0)
	m.Value.(*fb.FetchRequestT).Topics[0].Partitions[0].PartitionMaxBytes = maxBytes
	return m
}

type ioCounts struct{ calls int64 }

// threadIO sums syscr+syscw (read and write calls of every kind: read,
// pread, readv, sendfile, write, ...) over threads.
func threadIO(t *testing.T, tids []int) ioCounts {
	t.Helper()
	var sum ioCounts
	for _, tid := range tids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/io", tid))
		if err != nil {
			t.Skipf("per-thread I/O counters unavailable: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "syscr", "syscw":
				sum.calls += n
			}
		}
	}
	return sum
}

// traceThreads attaches strace to the shard threads, counting the data
// path calls; the returned function detaches and returns the counts (nil
// when strace is not installed or may not trace).
func traceThreads(t *testing.T, tids []int) func() map[string]int {
	path, err := exec.LookPath("strace")
	if err != nil {
		t.Log("strace not installed: counting through /proc only")
		return func() map[string]int { return nil }
	}
	// io_uring_enter is traced too: a count of it proves strace attached
	// and counted the shards' calls.
	args := []string{"-c", "-e", "trace=" + strings.Join(append(dataPathSyscalls, "io_uring_enter"), ",")}
	for _, tid := range tids {
		args = append(args, "-p", strconv.Itoa(tid))
	}
	cmd := exec.Command(path, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Logf("strace: %v", err)
		return func() map[string]int { return nil }
	}
	// strace reports each attachment on stderr; wait for all of them.
	sc := bufio.NewScanner(stderr)
	attached := 0
	var out []string
	for attached < len(tids) && sc.Scan() {
		line := sc.Text()
		out = append(out, line)
		if strings.Contains(line, "attached") {
			attached++
		}
		if strings.Contains(line, "Operation not permitted") {
			cmd.Wait()
			t.Logf("strace may not attach here: %s", line)
			return func() map[string]int { return nil }
		}
	}
	return func() map[string]int {
		cmd.Process.Signal(syscall.SIGINT)
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		cmd.Wait()
		counts := map[string]int{}
		row := regexp.MustCompile(`^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$`)
		for _, line := range out {
			if m := row.FindStringSubmatch(line); m != nil && m[2] != "total" {
				n, _ := strconv.Atoi(m[1])
				counts[m[2]] = n
			}
		}
		return counts
	}
}
