package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
)

// TestProduceJSONRoundTrip reads a topic as JSON and produces those lines
// to another topic: every record comes back with the same partition,
// offset, timestamp, key, value and headers, binary bytes included.
func TestProduceJSONRoundTrip(t *testing.T) {
	b := brokertest.Start(t, brokertestBin(), t.TempDir(), "127.0.0.1:0")
	mustRun := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := run(t, b.Addr, stdin, args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out, errOut
	}
	for _, topic := range []string{"source", "copy"} {
		mustRun("", "topic", "create", topic, "--partitions", "3")
	}
	mustRun("k1:plain\nk2:bin\xff\xfe\n:empty key\n", "produce", "source", "--key-separator", ":", "-H", "h=\x01\x02")
	mustRun("no key\n", "produce", "source", "-p", "2")
	original, _ := mustRun("", "consume", "source", "--from", "earliest", "-e", "-f", "json")
	mustRun(original, "produce", "copy", "--format", "json")
	copied, _ := mustRun("", "consume", "copy", "--from", "earliest", "-e", "-f", "json")
	norm := func(out string) map[string]bool {
		set := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%v: %q", err, line)
			}
			delete(m, "topic")
			b, _ := json.Marshal(m)
			set[string(b)] = true
		}
		return set
	}
	want, got := norm(original), norm(copied)
	if len(want) != 4 || len(got) != len(want) {
		t.Fatalf("source %d records, copy %d:\n%s\n%s", len(want), len(got), original, copied)
	}
	for r := range want {
		if !got[r] {
			t.Fatalf("record %s not in the copy:\n%s", r, copied)
		}
	}

	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{`{"value":"a"}` + "\n" + `{"value":` + "\n", []string{"produce", "copy", "-f", "json"}, 1, "stdin line 2: unexpected EOF"},
		{`{"value":"a","colour":"red"}`, []string{"produce", "copy", "-f", "json"}, 1, `stdin line 1: json: unknown field "colour"`},
		{`{"value":"zz","value_encoding":"hex"}`, []string{"produce", "copy", "-f", "json"}, 1, "stdin line 1: value: encoding/hex: invalid byte"},
		{`{"value":"a","partition":7}`, []string{"produce", "copy", "-f", "json"}, 1, "topic copy has no partition 7 (it has 3)"},
		{"", []string{"produce", "copy", "-f", "json", "--key-separator", ":"}, 2, "--key-separator and --format json: give one"},
		{"", []string{"produce", "copy", "-f", "yaml"}, 2, `--format "yaml": want text or json`},
	} {
		_, errOut, code := run(t, b.Addr, c.stdin, c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("strata %v: exit %d, stderr %q; want exit %d and %q", c.args, code, errOut, c.code, c.msg)
		}
	}
}
