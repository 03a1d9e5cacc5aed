package main

import (
	"strings"
	"testing"
)

func TestCPUModel(t *testing.T) {
	cases := map[string]string{
		"processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n" +
			"processor\t: 1\nmodel name\t: AMD EPYC 7B13\n": "AMD EPYC 7B13",
		"processor\t: 0\nBogoMIPS\t: 50.00\nHardware\t: BCM2835\n": "BCM2835",
		"cpu model\t\t: Loongson-3A5000\nmodel name\t: \n":         "Loongson-3A5000",
		"processor\t: 0\nCPU implementer\t: 0x41\n":                "",
	}
	for text, want := range cases {
		if got := cpuModel(strings.NewReader(text)); got != want {
			t.Errorf("cpuModel(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestCollectMachineFacts(t *testing.T) {
	m := collectMachineFacts()
	if m.NProc < 1 || m.Hostname == "" || m.KernelRelease == "" || m.CPUModel == "" {
		t.Errorf("incomplete machine facts: %+v", m)
	}
}
