package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"

	"github.com/strata-db/strata/client/brokertest"
	"github.com/strata-db/strata/schema"
)

// TestProduceKeyHeadersPartition produces with a fixed key, headers and a
// chosen partition, and reads the records back from that partition only.
// --compression lz4 is checked where it lands: in the partition's segment
// file the broker keeps the frames as sent, the first (two records)
// uncompressed and the second lz4 by its attributes; and a value lz4
// shrinks is stored as a frame a fraction of its size that holds none of
// its text, whose body lz4 itself (not Strata's reader) expands to bytes
// holding the value, which consume gives back byte for byte.
func TestProduceKeyHeadersPartition(t *testing.T) {
	dataDir := t.TempDir()
	b := brokertest.Start(t, brokertestBin(), dataDir, "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out, errOut
	}
	mustRun("", "topic", "create", "tagged", "--partitions", "3")
	_, errOut := mustRun("a\r\nb\n", "produce", "tagged", "-k", "K", "-H", "h1=v1", "--header", "h2=", "-p", "2")
	if errOut != "produced 2 records to tagged\n" {
		t.Fatalf("produce said %q", errOut)
	}
	if _, errOut := mustRun("c", "produce", "tagged", "--partition", "2", "--compression", "lz4"); errOut != "produced 1 record to tagged\n" {
		t.Fatalf("produce said %q", errOut)
	}
	out, _ := mustRun("", "consume", "tagged", "--partition", "2", "--from", "earliest", "--exit-at-end", "--format", "json")
	type header struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}
	type record struct {
		Partition int32    `json:"partition"`
		Offset    int64    `json:"offset"`
		Key       *string  `json:"key"`
		Value     string   `json:"value"`
		Headers   []header `json:"headers"`
	}
	var recs []record
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v in %q", err, out)
		}
		recs = append(recs, r)
	}
	if len(recs) != 3 {
		t.Fatalf("partition 2 holds %d records: %q", len(recs), out)
	}
	for i, want := range []string{"a", "b", "c"} {
		r := recs[i]
		if r.Partition != 2 || r.Offset != int64(i) || r.Value != want {
			t.Fatalf("record %d: %+v", i, r)
		}
		if i < 2 && (r.Key == nil || *r.Key != "K" || len(r.Headers) != 2 || r.Headers[0].Key != "h1" ||
			*r.Headers[0].Value != "v1" || r.Headers[1].Key != "h2" || *r.Headers[1].Value != "") {
			t.Fatalf("record %d: key %v headers %+v", i, r.Key, r.Headers)
		}
	}
	for _, p := range []string{"0", "1"} {
		if out, _ := mustRun("", "consume", "tagged", "--partition", p, "--from", "earliest", "--exit-at-end"); out != "" {
			t.Fatalf("partition %s holds %q", p, out)
		}
	}
	frames := storedFrames(t, filepath.Join(dataDir, "tagged-2", "00000000000000000000.log"))
	if len(frames) != 2 || frames[0].hdr.Compression() != schema.CompressionNone || frames[0].hdr.RecordCount != 2 ||
		frames[1].hdr.Compression() != schema.CompressionLZ4 || frames[1].hdr.RecordCount != 1 {
		t.Fatalf("partition 2 stores %v; want 2 records uncompressed, then 1 in lz4", frames)
	}
	big := strings.Repeat("strata keeps the bytes it was sent; ", 256)
	mustRun(big+"\n", "produce", "tagged", "-p", "0", "--compression", "lz4")
	frames = storedFrames(t, filepath.Join(dataDir, "tagged-0", "00000000000000000000.log"))
	if len(frames) != 1 || frames[0].hdr.Compression() != schema.CompressionLZ4 || frames[0].hdr.RecordCount != 1 {
		t.Fatalf("partition 0 stores %v; want 1 record in lz4", frames)
	}
	body := frames[0].b[schema.FrameHeaderSize:]
	if len(frames[0].b) > len(big)/4 || bytes.Contains(body, []byte(big[:64])) {
		t.Fatalf("the lz4 frame of a %d-byte value is %d bytes, holding its text: %v", len(big), len(frames[0].b), bytes.Contains(body, []byte(big[:64])))
	}
	raw := make([]byte, binary.LittleEndian.Uint32(body))
	if n, err := lz4.UncompressBlock(body[4:], raw); err != nil || n != len(raw) || !bytes.Contains(raw, []byte(big)) {
		t.Fatalf("the lz4 body (%d bytes) expands to %d bytes (%v), holding the value: %v", len(body), n, err, bytes.Contains(raw, []byte(big)))
	}
	if out, _ := mustRun("", "consume", "tagged", "--partition", "0", "--from", "earliest", "--exit-at-end"); out != big+"\n" {
		t.Fatalf("partition 0 gives back %d bytes, not the %d produced", len(out), len(big)+1)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"produce", "tagged", "-p", "3"}, 1, "topic tagged has no partition 3 (it has 3)"},
		{[]string{"produce", "tagged", "-H", "novalue"}, 2, `--header "novalue": want key=value`},
		{[]string{"produce", "tagged", "--compression", "zip"}, 2, `--compression "zip": want none or lz4`},
		{[]string{"produce", "tagged", "-k", "x", "--key-separator", ":"}, 2, "--key and --key-separator: give one"},
	} {
		_, errOut, code := run(t, b.Addr, "x\n", c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("strata %v: exit %d, stderr %q; want exit %d and %q", c.args, code, errOut, c.code, c.msg)
		}
	}
}

// TestProduceInterrupted sends SIGINT and SIGTERM to produce commands
// waiting on stdin that never ends: each exits at once with the shell's
// status for the signal and the count of the records it delivered.
func TestProduceInterrupted(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	if _, errOut, code := run(t, b.Addr, "", "topic", "create", "waiting", "--partitions", "1"); code != 0 {
		t.Fatal(errOut)
	}
	for _, c := range []struct {
		sig   syscall.Signal
		lines int
	}{{syscall.SIGINT, 0}, {syscall.SIGINT, 1}, {syscall.SIGTERM, 2}} {
		cmd := exec.Command(strataBin, "produce", "waiting", "--brokers", b.Addr)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errOut strings.Builder
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		before := logEnd(t, b.Addr, "waiting")
		for i := range c.lines {
			io.WriteString(stdin, "line "+string(rune('a'+i))+"\n")
		}
		// Wait until the lines are in the log, so that the count the
		// command reports is known.
		deadline := time.Now().Add(20 * time.Second)
		for logEnd(t, b.Addr, "waiting") < before+int64(c.lines) {
			if time.Now().After(deadline) {
				t.Fatalf("%d lines never reached the log", c.lines)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if c.lines == 0 {
			waitForListening(t, cmd.Process.Pid)
		}
		if err := cmd.Process.Signal(c.sig); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 128+int(c.sig) {
				t.Fatalf("%v: ended with %v, want exit %d", c.sig, err, 128+int(c.sig))
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%v: produce still running 10 s after the signal", c.sig)
		}
		want := "produced " + plural(c.lines, "record") + " to waiting\n"
		if errOut.String() != want {
			t.Fatalf("%v: stderr %q, want %q", c.sig, errOut.String(), want)
		}
		stdin.Close()
	}
}

// logEnd is the topic's partition 0 log end, through the CLI.
func logEnd(t *testing.T, addr, topic string) int64 {
	t.Helper()
	out, errOut, code := run(t, addr, "", "consume", topic, "--from", "earliest", "--exit-at-end")
	if code != 0 {
		t.Fatalf("consume: %s", errOut)
	}
	return int64(strings.Count(out, "\n"))
}

// waitForListening waits until the process has connected to the broker: a
// signal before the command installs its handler would kill it outright.
func waitForListening(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !hasTCPConnection(pid) {
		if time.Now().After(deadline) {
			t.Fatal("produce never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hasTCPConnection reports whether the process holds a socket.
func hasTCPConnection(pid int) bool {
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			return true
		}
	}
	return false
}

// TestSilentBrokerTimesOut points commands at a listener that accepts and
// never answers: each fails after --timeout, naming the address.
func TestSilentBrokerTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	addr := ln.Addr().String()
	for _, args := range [][]string{
		{"topic", "list", "--timeout", "300ms"},
		{"cluster", "describe", "--timeout", "300ms"},
		{"produce", "t", "--timeout", "300ms"},
		{"consume", "t", "--timeout", "300ms"},
	} {
		_, errOut, code := run(t, addr, "x\n", args...)
		want := "strata: no answer from " + addr + " within 300ms (--timeout)\n"
		if code != 1 || errOut != want {
			t.Errorf("strata %v: exit %d, stderr %q; want exit 1 and %q", args, code, errOut, want)
		}
	}
	if _, errOut, code := run(t, addr, "", "topic", "list", "--timeout", "0s"); code != 2 || !strings.Contains(errOut, "--timeout 0s: must be positive") {
		t.Errorf("--timeout 0s: exit %d, stderr %q", code, errOut)
	}
}

// storedFrame is one frame of a segment file, and its header.
type storedFrame struct {
	hdr schema.FrameHeader
	b   []byte
}

func (f storedFrame) String() string {
	return fmt.Sprintf("{%d bytes, %d records, codec %d}", len(f.b), f.hdr.RecordCount, f.hdr.Compression())
}

// storedFrames walks a segment data file's frames from its start (each
// checked as the broker checks them: length, magic, version, CRC) up to
// the zeros of its allocation step.
func storedFrames(t *testing.T, path string) []storedFrame {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The frames of these tests lie in the first MiB; the rest of the
	// step is zeros.
	data := make([]byte, 1<<20)
	n, err := f.ReadAt(data, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	data = data[:n]
	var out []storedFrame
	for pos := 0; pos+schema.FrameHeaderSize <= len(data) && !bytes.Equal(data[pos:pos+4], []byte{0, 0, 0, 0}); {
		h, err := schema.CheckFrame(data[pos:])
		if err != nil {
			t.Fatalf("%s at %d: %v", path, pos, err)
		}
		out = append(out, storedFrame{hdr: h, b: data[pos : pos+int(h.Length)]})
		pos += int(h.Length)
	}
	return out
}
