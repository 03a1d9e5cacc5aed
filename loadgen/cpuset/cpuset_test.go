package cpuset

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/ring"
)

func TestParseAndFormat(t *testing.T) {
	cases := []struct {
		list   string
		cpus   []int
		format string
	}{
		{"0", []int{0}, "0"},
		{"0-3", []int{0, 1, 2, 3}, "0-3"},
		{"8,0-1, 3", []int{0, 1, 3, 8}, "0-1,3,8"},
		{"2,2,1-2", []int{1, 2}, "1-2"},
		{"1023", []int{1023}, "1023"},
		{"5-5", []int{5}, "5"},
	}
	for _, c := range cases {
		got, err := Parse(c.list)
		if err != nil || !slices.Equal(got, c.cpus) {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.list, got, err, c.cpus)
			continue
		}
		if f := Format(got); f != c.format {
			t.Errorf("Format(%v) = %q, want %q", got, f, c.format)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, list := range []string{"", " ", "a", "1-", "-1", "3-1", "1024", "0-1024", "1,,2", "1-2-3", "0x1",
		strings.Repeat("1,", listBytesMax)} {
		if cpus, err := Parse(list); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%.20q) = %v, %v; want ErrSyntax", list, cpus, err)
		}
	}
}

func TestSplit(t *testing.T) {
	server, client, err := Split([]int{0, 1, 2, 3, 5}, 2)
	if err != nil || !slices.Equal(server, []int{0, 1, 2}) || !slices.Equal(client, []int{3, 5}) {
		t.Errorf("Split = %v %v %v", server, client, err)
	}
	for _, n := range []int{0, -1, 5, 6} {
		if _, _, err := Split([]int{0, 1, 2, 3, 5}, n); err == nil {
			t.Errorf("Split of 5 CPUs giving %d to the client succeeded", n)
		}
	}
}

// threadMasks returns the CPU list of every thread of this process but
// io_uring's workers (ioWorkerMasks).
func threadMasks(t *testing.T) map[int]string {
	t.Helper()
	masks := allThreadMasks(t)
	for tid := range masks {
		if ioWorker(tid) {
			delete(masks, tid)
		}
	}
	return masks
}

// ioWorkerMasks returns the CPU list of every io_uring worker thread of
// this process.
func ioWorkerMasks(t *testing.T) map[int]string {
	t.Helper()
	masks := allThreadMasks(t)
	for tid := range masks {
		if !ioWorker(tid) {
			delete(masks, tid)
		}
	}
	return masks
}

func allThreadMasks(t *testing.T) map[int]string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	masks := map[int]string{}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // exited
		}
		var cpus []int
		for cpu := range cpusMax {
			if set.IsSet(cpu) {
				cpus = append(cpus, cpu)
			}
		}
		masks[tid] = Format(cpus)
	}
	return masks
}

func TestConfineSetsEveryThread(t *testing.T) {
	allowed, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	// Threads beyond the test's own: goroutines blocked on locked threads.
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			<-release
		})
	}
	defer func() { close(release); wg.Wait() }()
	last := allowed[len(allowed)-1:]
	if err := Confine(last); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := Confine(allowed); err != nil {
			t.Fatal(err)
		}
	}()
	for tid, m := range threadMasks(t) {
		if m != Format(last) {
			t.Errorf("thread %d may run on %s after Confine(%s)", tid, m, Format(last))
		}
	}
	if err := Confine(allowed); err != nil {
		t.Fatal(err)
	}
	for tid, m := range threadMasks(t) {
		if m != Format(allowed) {
			t.Errorf("thread %d may run on %s after Confine back to %s", tid, m, Format(allowed))
		}
	}
	if err := Confine(nil); err == nil {
		t.Error("Confine to no CPUs succeeded")
	}
}

func TestStartOnConfinesTheChildOnly(t *testing.T) {
	allowed, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	first := allowed[:1]
	cmd := exec.Command("grep", "Cpus_allowed_list", "/proc/self/status")
	var out strings.Builder
	cmd.Stdout = &out
	if err := StartOn(cmd, first); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(strings.TrimPrefix(out.String(), "Cpus_allowed_list:")); got != Format(first) {
		t.Errorf("child may run on %q, want %q", got, Format(first))
	}
	for tid, m := range threadMasks(t) {
		if m != Format(allowed) {
			t.Errorf("thread %d of the parent may run on %s after StartOn, want %s", tid, m, Format(allowed))
		}
	}
	if err := StartOn(exec.Command("true"), nil); err == nil {
		t.Error("StartOn with no CPUs succeeded")
	}
}

// TestConfineLeavesIOWorkersAlone: io_uring's workers belong to the
// kernel's io-wq (some kernels refuse to move them), so Confine skips
// them. A SPLICE (always run by a worker) starts one here.
func TestConfineLeavesIOWorkersAlone(t *testing.T) {
	allowed, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := ring.New(8, ring.Options{Flags: ring.ShardFlags, CQEntries: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := os.CreateTemp(t.TempDir(), "splice")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	sqe := r.GetSQE()
	sqe.PrepSplice(int(f.Fd()), 0, p[1], -1, 4096, unix.SPLICE_F_MOVE)
	if _, err := r.SubmitAndWait(1); err != nil {
		t.Fatal(err)
	}
	cqe, err := r.WaitCQE()
	if err != nil || cqe.Res != 4096 {
		t.Fatalf("splice: %v %+v", err, cqe)
	}
	r.CQESeen()

	last := allowed[len(allowed)-1:]
	if err := Confine(last); err != nil {
		t.Fatal(err)
	}
	defer Confine(allowed)
	for tid, mask := range threadMasks(t) {
		if mask != Format(last) {
			t.Errorf("thread %d may run on %s after Confine(%s)", tid, mask, Format(last))
		}
	}
	workers := ioWorkerMasks(t)
	if len(workers) == 0 {
		t.Error("no io_uring worker after a splice")
	}
	for tid, mask := range workers {
		if mask != Format(allowed) {
			t.Errorf("io_uring worker %d was moved to %s", tid, mask)
		}
	}
}
