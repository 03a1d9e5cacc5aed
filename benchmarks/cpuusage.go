package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPU accounting for the replication cases: three brokers and the client
// share two CPUs, so a case's throughput is read beside the CPU time the
// brokers spent on it and how busy the machine was (other processes
// included).

// clockTicksPerSecond is USER_HZ, the unit of /proc's CPU times: 100 on
// every Linux architecture Strata runs on.
const clockTicksPerSecond = 100

// procCPUSeconds is the user and system CPU time process pid has used.
func procCPUSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after the last ')' start at field 3 (state).
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(s[i+1:])
	// utime and stime are fields 14 and 15: 11 and 12 after the state.
	const utimeAfterState, stimeAfterState = 11, 12
	if len(fields) <= stimeAfterState {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	u, err1 := strconv.ParseUint(fields[utimeAfterState], 10, 64)
	st, err2 := strconv.ParseUint(fields[stimeAfterState], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fields[utimeAfterState], fields[stimeAfterState])
	}
	return float64(u+st) / clockTicksPerSecond, nil
}

// machineCPUTicks are the machine's busy and total CPU ticks so far, from
// the first line of /proc/stat.
func machineCPUTicks() (busy, total uint64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	// user nice system idle iowait irq softirq steal ...: idle and iowait
	// are not busy.
	const idleField, iowaitField = 4, 5
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q", f)
		}
		total += v
		if i+1 != idleField && i+1 != iowaitField {
			busy += v
		}
	}
	return busy, total, nil
}

// cpuSample is the brokers' CPU seconds and the machine's ticks at one
// moment.
type cpuSample struct {
	brokers     float64
	busy, total uint64
}

// sampleCPU reads c's brokers and the machine.
func (c *cluster) sampleCPU() (cpuSample, error) {
	var s cpuSample
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		v, err := procCPUSeconds(n.cmd.Process.Pid)
		if err != nil {
			return s, err
		}
		s.brokers += v
	}
	var err error
	s.busy, s.total, err = machineCPUTicks()
	return s, err
}

// cpuUse is what a case cost in CPU.
type cpuUse struct {
	// BrokerCPUSeconds is the three brokers' user and system time.
	BrokerCPUSeconds float64 `json:"broker_cpu_seconds"`
	// MachineBusy is the fraction of every CPU's time that was busy
	// (any process, the client's and other users' too).
	MachineBusy float64 `json:"machine_busy"`
}

func cpuBetween(a, b cpuSample) cpuUse {
	u := cpuUse{BrokerCPUSeconds: b.brokers - a.brokers}
	if b.total > a.total {
		u.MachineBusy = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	return u
}
