package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/client/brokertest"
)

// TestConsumeFormatsAndStarts reads one topic with format strings, JSON of
// binary values, -N and offsets outside the log, and --exit-at-end over
// partitions that end before and after the start offset.
func TestConsumeFormatsAndStarts(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out, errOut
	}
	mustRun("", "topic", "create", "mixed", "--partitions", "3")
	// Partition 0 stays empty, 1 takes one record, 2 takes three.
	mustRun("only\n", "produce", "mixed", "-p", "1", "-k", "k1")
	mustRun("x\xff\x00y\nsecond\nthird\n", "produce", "mixed", "-p", "2", "-H", "bin=\xfe")

	out, errOut := mustRun("", "consume", "mixed", "--from", "1", "-e", "-f", `%p:%o %k=%v|%h\n`)
	if out != "2:1 =second|bin=\xfe\n2:2 =third|bin=\xfe\n" {
		t.Fatalf("from 1: %q", out)
	}
	// Partition 0 ends before offset 1; partition 1 ends at it.
	if want := "strata: partition 0: offset 1 is past the log end 0 (log start 0); reading from 0\n"; errOut != want {
		t.Fatalf("from 1 warned %q, want %q", errOut, want)
	}
	if out, _ := mustRun("", "consume", "mixed", "-p", "2", "--from", "-2", "-e", "-f", `%o\t%v\n`); out != "1\tsecond\n2\tthird\n" {
		t.Fatalf("from -2: %q", out)
	}
	if out, _ := mustRun("", "consume", "mixed", "--from", "-1", "-e", "-f", `%t/%p/%o\n`); out != "mixed/1/0\nmixed/2/2\n" &&
		out != "mixed/2/2\nmixed/1/0\n" {
		t.Fatalf("from -1 over every partition: %q", out)
	}
	out, errOut = mustRun("", "consume", "mixed", "-p", "2", "--from", "999", "-e")
	if want := "strata: partition 2: offset 999 is past the log end 3 (log start 0); reading from 3\n"; out != "" || errOut != want {
		t.Fatalf("from 999: out %q, stderr %q, want %q", out, errOut, want)
	}
	if out, _ := mustRun("", "consume", "mixed", "-p", "0", "--from", "earliest", "-e"); out != "" {
		t.Fatalf("empty partition: %q", out)
	}

	out, _ = mustRun("", "consume", "mixed", "-p", "2", "--from", "earliest", "--count", "1", "--format", "json")
	var rec struct {
		Key           *string `json:"key"`
		Value         string  `json:"value"`
		ValueEncoding string  `json:"value_encoding"`
		Headers       []struct {
			Key           string `json:"key"`
			Value         string `json:"value"`
			ValueEncoding string `json:"value_encoding"`
		} `json:"headers"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	v, err := base64.StdEncoding.DecodeString(rec.Value)
	if err != nil || rec.ValueEncoding != "base64" || !bytes.Equal(v, []byte("x\xff\x00y")) || rec.Key != nil {
		t.Fatalf("binary value: %+v (%q)", rec, v)
	}
	if len(rec.Headers) != 1 || rec.Headers[0].Key != "bin" || rec.Headers[0].ValueEncoding != "base64" || rec.Headers[0].Value != "/g==" {
		t.Fatalf("binary header: %+v", rec.Headers)
	}
	out, _ = mustRun("", "consume", "mixed", "-p", "1", "--from", "earliest", "-e", "--format", "json", "--value-encoding", "hex")
	if !strings.Contains(out, `"key":"6b31","key_encoding":"hex","value":"6f6e6c79","value_encoding":"hex"`) {
		t.Fatalf("hex: %q", out)
	}

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"consume", "mixed", "-f", "%x"}, "--format: unknown verb %x"},
		{[]string{"consume", "mixed", "-f", "plain"}, "want text, json or a format string"},
		{[]string{"consume", "mixed", "-f", "%v%"}, "ends in a lone %"},
		{[]string{"consume", "mixed", "--value-encoding", "rot13"}, "--value-encoding \"rot13\""},
		{[]string{"consume", "mixed", "--from", "-0"}, "--from \"-0\""},
	} {
		_, errOut, code := run(t, b.Addr, "", c.args...)
		if code != 2 || !strings.Contains(errOut, c.msg) {
			t.Errorf("strata %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errOut, c.msg)
		}
	}
}

// TestConsumeEndsOnDeletedTopicAndOnSignal deletes the topic under a
// running consume, which ends with an error, and interrupts another,
// which ends at once with status 0.
func TestConsumeEndsOnDeletedTopicAndOnSignal(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	if _, errOut, code := run(t, b.Addr, "", "topic", "create", "brief", "--partitions", "2"); code != 0 {
		t.Fatal(errOut)
	}
	if _, errOut, code := run(t, b.Addr, "one\ntwo\n", "produce", "brief"); code != 0 {
		t.Fatal(errOut)
	}
	start := func() (*exec.Cmd, *bufio.Reader, *strings.Builder) {
		cmd := exec.Command(strataBin, "consume", "brief", "--from", "earliest", "--brokers", b.Addr)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errOut strings.Builder
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stdout)
		// Both records printed: the consumer is past its start-up.
		for range 2 {
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatalf("consume printed: %v; stderr %s", err, errOut.String())
			}
		}
		return cmd, r, &errOut
	}
	wait := func(cmd *exec.Cmd, within time.Duration) error {
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			return err
		case <-time.After(within):
			cmd.Process.Kill()
			t.Fatalf("consume still running %s later", within)
			return nil
		}
	}

	interrupted, _, errOut := start()
	if err := interrupted.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := wait(interrupted, 10*time.Second); err != nil || errOut.String() != "" {
		t.Fatalf("interrupted consume: %v, stderr %q", err, errOut.String())
	}

	watching, _, errOut := start()
	if _, msg, code := run(t, b.Addr, "", "topic", "delete", "brief"); code != 0 {
		t.Fatal(msg)
	}
	err := wait(watching, 20*time.Second)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || errOut.String() != "strata: consume \"brief\": topic brief was deleted\n" {
		t.Fatalf("consume of a deleted topic: %v, stderr %q", err, errOut.String())
	}
}

// TestFormatPrinter checks every verb and escape on one record.
func TestFormatPrinter(t *testing.T) {
	p, err := newFormatPrinter(`%t|%p|%o|%T|%k|%v|%h|100%%\t\\\n`, encodingAuto)
	if err != nil {
		t.Fatal(err)
	}
	r := &client.Record{Topic: "t", Partition: 3, Offset: 42, Timestamp: time.UnixMilli(1700000000123), Key: []byte("k"), Value: []byte("v"),
		Headers: []client.Header{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: nil}}}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := p.print(w, r); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if want := "t|3|42|1700000000123|k|v|a=1,b=|100%\t\\\n"; buf.String() != want {
		t.Fatalf("printed %q, want %q", buf.String(), want)
	}
}
