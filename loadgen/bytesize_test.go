package main

import (
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "4096": 4096, "1B": 1, "64KiB": 64 << 10, "1MiB": 1 << 20,
		"1GiB": 1 << 30, "2TiB": 2 << 40, " 3 MiB ": 3 << 20,
	}
	for in, want := range good {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"-1":         "negative",
		"-1MiB":      "negative",
		"1.5MiB":     "not a size",
		"1MB":        "not a size",
		"":           "not a size",
		"9999999TiB": "overflows",
	}
	for in, want := range bad {
		if _, err := parseByteSize(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseByteSize(%q) error = %v, want one containing %q", in, err, want)
		}
	}
}

func TestFormatByteSizeRoundTrips(t *testing.T) {
	for _, n := range []int64{0, 1, 1000, 1024, 65000, 1 << 20, 3 << 30, 1<<40 + 1} {
		s := formatByteSize(n)
		back, err := parseByteSize(s)
		if err != nil || back != n {
			t.Errorf("formatByteSize(%d) = %q, which parses to %d, %v", n, s, back, err)
		}
	}
	if got := formatByteSize(1 << 20); got != "1MiB" {
		t.Errorf("formatByteSize(1MiB) = %q", got)
	}
}
