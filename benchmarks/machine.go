package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// machine describes where the figures were measured.
type machine struct {
	Hostname   string `json:"hostname"`
	NProc      int    `json:"nproc"`
	CPUModel   string `json:"cpu_model"`
	MemoryGiB  string `json:"memory_gib"`
	Kernel     string `json:"kernel"`
	Filesystem string `json:"filesystem"`
	GoVersion  string `json:"go_version"`
	// PageReporting says whether a virtio balloon hands freed guest
	// memory back to the host (free page reporting). On such a VM the
	// first write to a page the host took back waits for the host to
	// supply it, so writing new page cache (produce, and the produce
	// ceiling) slows as earlier runs' freed memory is reported.
	PageReporting string `json:"page_reporting"`
}

const unknown = "unknown"

// describeMachine collects the machine's facts; dir is where the data
// lives, whose file system is named.
func describeMachine(ctx context.Context, dir string) machine {
	m := machine{
		Hostname:   unknown,
		NProc:      runtime.NumCPU(),
		CPUModel:   unknown,
		MemoryGiB:  unknown,
		Kernel:     unknown,
		Filesystem: unknown,
		GoVersion:  unknown,
	}
	if h, err := os.Hostname(); err == nil {
		m.Hostname = h
	}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.CPUModel = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		// "24607088 kB"
		if kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64); err == nil {
			m.MemoryGiB = strconv.FormatFloat(float64(kb)/(1<<20), 'f', 1, 64)
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if fs := filesystemOf(dir); fs != "" {
		m.Filesystem = fs
	}
	m.PageReporting = pageReporting()
	if out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	return m
}

// pageReporting describes free page reporting: "off" without a virtio
// balloon device bound to its driver, else the order of the free blocks
// reported (blocks of 2^order pages).
func pageReporting() string {
	devices, _ := filepath.Glob("/sys/bus/virtio/drivers/virtio_balloon/virtio*")
	if len(devices) == 0 {
		return "off (no virtio balloon)"
	}
	order, err := os.ReadFile("/sys/module/page_reporting/parameters/page_reporting_order")
	if err != nil {
		return "virtio balloon present, reporting order unknown"
	}
	return "virtio balloon, free blocks of order >= " + strings.TrimSpace(string(order)) + " reported to the host"
}

// procField is the value of the first "key : value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// filesystemOf names the file system holding dir from /proc/self/mounts:
// the type, the device and the mount point of the longest mount point that
// contains it.
func filesystemOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return ""
	}
	defer f.Close()
	best, bestLen := "", -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		dev, mnt, typ := fields[0], fields[1], fields[2]
		if mnt != "/" && abs != mnt && !strings.HasPrefix(abs, mnt+"/") {
			continue
		}
		if len(mnt) > bestLen {
			best, bestLen = typ+" ("+dev+" on "+mnt+")", len(mnt)
		}
	}
	return best
}
