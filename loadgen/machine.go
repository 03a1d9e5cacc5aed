package main

import (
	"bufio"
	"io"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// machineFacts name the machine a figure was measured on; a time means
// nothing without them.
type machineFacts struct {
	Hostname      string `json:"hostname"`
	NProc         int    `json:"nproc"`
	CPUModel      string `json:"cpu_model"`
	KernelRelease string `json:"kernel_release"`
	GoVersion     string `json:"go_version"`
}

const (
	cpuInfoPath  = "/proc/cpuinfo"
	unknownValue = "unknown"
)

// cpuModelKeys are the /proc/cpuinfo fields that name the processor, in order
// of preference: x86 has "model name", some other architectures only
// "cpu model" or "Hardware".
var cpuModelKeys = []string{"model name", "cpu model", "Hardware", "cpu"}

func collectMachineFacts() machineFacts {
	m := machineFacts{
		Hostname:      unknownValue,
		NProc:         runtime.NumCPU(),
		CPUModel:      unknownValue,
		KernelRelease: unknownValue,
		GoVersion:     runtime.Version(),
	}
	if h, err := os.Hostname(); err == nil {
		m.Hostname = h
	}
	if f, err := os.Open(cpuInfoPath); err == nil {
		if model := cpuModel(f); model != "" {
			m.CPUModel = model
		}
		f.Close()
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		m.KernelRelease = unix.ByteSliceToString(u.Release[:])
	}
	return m
}

// cpuModel returns the processor name from /proc/cpuinfo text, or "" if no
// known field names it.
func cpuModel(r io.Reader) string {
	found := make(map[string]string, len(cpuModelKeys))
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if value == "" {
			continue
		}
		if _, seen := found[key]; !seen {
			found[key] = value
		}
	}
	for _, k := range cpuModelKeys {
		if v, ok := found[k]; ok {
			return v
		}
	}
	return ""
}
