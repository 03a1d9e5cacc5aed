package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestBadCommandLinesFailClearly(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ceiling", "--mode", "bogus"}, `--mode must be produce, consume or splice, got "bogus"`},
		{[]string{"ceiling"}, "--mode is required"},
		{[]string{"ceiling", "--mode", "produce", "--record-size", "-5"}, `invalid argument "-5" for "--record-size" flag: size must not be negative`},
		{[]string{"ceiling", "--mode", "produce", "--record-size", "0"}, "--record-size must be at least 1 byte"},
		{[]string{"ceiling", "--mode", "produce", "--record-size", "65MiB"}, "more than the 64MiB limit"},
		{[]string{"ceiling", "--mode", "produce", "--records", "-1"}, "--records must not be negative, got -1"},
		{[]string{"ceiling", "--mode", "produce", "--duration", "-1s"}, "--duration must not be negative"},
		{[]string{"ceiling", "--mode", "produce", "--duration", "0"}, "nothing bounds the run"},
		{[]string{"ceiling", "--mode", "produce", "--batch-bytes", "0"}, "--batch-bytes must be between 1 and 256MiB, got 0"},
		{[]string{"ceiling", "--mode", "produce", "--batch-bytes", "-1"}, "size must not be negative"},
		{[]string{"ceiling", "--mode", "consume", "--file-bytes", "-1"}, "size must not be negative"},
		{[]string{"ceiling", "--mode", "consume", "--fsync-every-bytes", "1MiB"}, "--fsync-every-bytes applies to --mode produce only"},
		{[]string{"ceiling", "--mode", "produce", "--file-bytes", "1MiB"}, "--file-bytes applies to --mode consume or splice only"},
		{[]string{"ceiling", "--mode", "consume", "--record-size", "4KiB", "--file-bytes", "1KiB"}, "must hold at least one record"},
		{[]string{"ceiling", "--mode", "produce", "--dir", dir + "/missing"}, "--dir"},
		{[]string{"ceiling", "--mode", "produce", "--record-size", "big"}, "not a size in bytes"},
		{[]string{"ceiling", "--mode", "produce", "extra"}, `unknown command "extra"`},
		{[]string{"suite", "--paired-rounds", "-1"}, "--paired-rounds -1: want 0 to 25"},
		{[]string{"suite", "--paired-rounds", "26"}, "--paired-rounds 26: want 0 to 25"},
		{[]string{"suite", "--case-cpus", "1-x"}, `--case-cpus: cpuset: bad CPU list: "1-x"`},
		{[]string{"nope"}, `unknown command "nope"`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			stdout, stderr, code := loadgenRun(t, c.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, stderr)
			}
			if !strings.HasPrefix(stderr, "loadgen: ") {
				t.Errorf("stderr does not start with the program name:\n%s", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout not empty on a bad command line:\n%s", stdout)
			}
		})
	}
}

func TestRecordsAloneLiftsTheDefaultDuration(t *testing.T) {
	var wf workloadFlags
	fs := pflag.NewFlagSet("records", pflag.ContinueOnError)
	wf.register(fs)
	if err := fs.Parse([]string{"--records", "10"}); err != nil {
		t.Fatal(err)
	}
	if err := wf.resolve(fs); err != nil {
		t.Fatal(err)
	}
	if wf.duration != 0 {
		t.Errorf("duration = %v with --records alone, want no time limit", wf.duration)
	}

	var both workloadFlags
	fs = pflag.NewFlagSet("both", pflag.ContinueOnError)
	both.register(fs)
	if err := fs.Parse([]string{"--records", "10", "--duration", "3s"}); err != nil {
		t.Fatal(err)
	}
	if err := both.resolve(fs); err != nil {
		t.Fatal(err)
	}
	if both.duration.String() != "3s" || both.limitBytes() != 10*defaultRecordSizeBytes {
		t.Errorf("duration %v, limit %d bytes; want 3s and %d", both.duration, both.limitBytes(), 10*defaultRecordSizeBytes)
	}
}
