// Package cpuset splits a machine's CPUs between the processes of a
// benchmark: a broker on some, the load generator on the others, as if
// they ran on machines of their own.
//
// A CPU list is written as Linux writes it (cpuset(7), taskset -c): CPU
// numbers and inclusive ranges separated by commas, such as "0-3,8,10-11".
//
// Affinity in Linux belongs to threads, not processes. A child process
// inherits the mask of the thread that forked it, so StartOn forks from a
// locked thread whose mask it sets for the moment of the fork; Confine
// sets the mask of every thread of the calling process, which is what a
// Go program needs, as its goroutines move between threads.
package cpuset

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpusMax is the number of CPUs an affinity mask (unix.CPUSet) can name.
const cpusMax = 1024

// listBytesMax bounds a CPU list's text, so that a bad flag cannot make
// Parse build a huge list.
const listBytesMax = 4096

// confinePassesMax bounds Confine's walks over the process's threads. A
// thread started during a walk inherits the mask of the thread that
// started it, which the walk may not have set yet; walks repeat until one
// finds no thread the walks before it had not seen.
const confinePassesMax = 16

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("cpuset: bad CPU list")

// Parse reads a CPU list into sorted CPU numbers without duplicates.
func Parse(list string) ([]int, error) {
	if len(list) > listBytesMax {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrSyntax, len(list), listBytesMax)
	}
	if strings.TrimSpace(list) == "" {
		return nil, fmt.Errorf("%w: empty", ErrSyntax)
	}
	seen := make([]bool, cpusMax)
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := cpuNumber(lo)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrSyntax, part, err)
		}
		last := first
		if isRange {
			if last, err = cpuNumber(hi); err != nil {
				return nil, fmt.Errorf("%w: %q: %w", ErrSyntax, part, err)
			}
			if last < first {
				return nil, fmt.Errorf("%w: %q: range runs backwards", ErrSyntax, part)
			}
		}
		for cpu := first; cpu <= last; cpu++ {
			seen[cpu] = true
		}
	}
	var cpus []int
	for cpu, ok := range seen {
		if ok {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, nil
}

func cpuNumber(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, errors.New("not a CPU number")
	}
	if n < 0 || n >= cpusMax {
		return 0, fmt.Errorf("CPU %d outside 0 to %d", n, cpusMax-1)
	}
	return n, nil
}

// Format writes sorted CPU numbers as a CPU list, with ranges where the
// numbers run on.
func Format(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Allowed lists the CPUs the calling thread may run on, in order.
func Allowed() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("cpuset: sched_getaffinity: %w", err)
	}
	var cpus []int
	for cpu := range cpusMax {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, nil
}

// mask is the affinity mask of cpus; it fails on an empty list or a CPU
// it cannot name.
func mask(cpus []int) (unix.CPUSet, error) {
	var set unix.CPUSet
	if len(cpus) == 0 {
		return set, errors.New("cpuset: no CPUs")
	}
	for _, cpu := range cpus {
		if cpu < 0 || cpu >= cpusMax {
			return set, fmt.Errorf("cpuset: CPU %d outside 0 to %d", cpu, cpusMax-1)
		}
		set.Set(cpu)
	}
	return set, nil
}

// Confine lets every thread of the calling process run only on cpus.
func Confine(cpus []int) error {
	set, err := mask(cpus)
	if err != nil {
		return err
	}
	seen := map[int]bool{}
	for range confinePassesMax {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("cpuset: threads of this process: %w", err)
		}
		fresh := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || seen[tid] {
				continue
			}
			seen[tid], fresh = true, true
			if ioWorker(tid) {
				// io_uring's workers belong to the kernel's io-wq,
				// which sets their CPUs itself (some kernels refuse a
				// move with EINVAL); they serve rings, not Go code.
				continue
			}
			// A thread that has exited since the listing is no matter.
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("cpuset: confine thread %d to CPUs %s: %w", tid, Format(cpus), err)
			}
		}
		if !fresh {
			return nil
		}
	}
	return fmt.Errorf("cpuset: threads kept starting through %d walks", confinePassesMax)
}

// ioWorker reports whether thread tid of this process is an io_uring
// worker (iou-wrk-*, iou-sqp-*).
func ioWorker(tid int) bool {
	comm, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/comm")
	return err == nil && strings.HasPrefix(string(comm), "iou-")
}

// StartOn starts cmd with its process (and every thread it starts)
// allowed only on cpus, as taskset -c would.
func StartOn(cmd *exec.Cmd, cpus []int) error {
	set, err := mask(cpus)
	if err != nil {
		return err
	}
	// The fork happens on this goroutine's thread, which keeps its own
	// mask for the moment of the fork only.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var saved unix.CPUSet
	if err := unix.SchedGetaffinity(0, &saved); err != nil {
		return fmt.Errorf("cpuset: sched_getaffinity: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("cpuset: CPUs %s: %w", Format(cpus), err)
	}
	startErr := cmd.Start()
	if err := unix.SchedSetaffinity(0, &saved); err != nil {
		// The thread keeps the child's mask: it stays locked to this
		// goroutine, and ends with it, instead of going back to the
		// runtime for others to run on.
		runtime.LockOSThread()
		return errors.Join(startErr, fmt.Errorf("cpuset: restore this thread's CPUs: %w", err))
	}
	return startErr
}

// Split divides the allowed CPUs in two: the last n for a client, the
// rest, first, for a server. It fails unless both get at least one.
func Split(allowed []int, n int) (server, client []int, err error) {
	if n < 1 || n >= len(allowed) {
		return nil, nil, fmt.Errorf("cpuset: cannot give %d of %d CPUs to the client and keep at least one for the server", n, len(allowed))
	}
	cut := len(allowed) - n
	return slices.Clone(allowed[:cut]), slices.Clone(allowed[cut:]), nil
}
