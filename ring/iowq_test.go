package ring

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIOWQAffinityConfinesWorkers: after RegisterIOWQAffinity, the io-wq
// worker that runs a SPLICE (always punted to io-wq) may run only on the
// CPUs given. The ring's workers are the threads of this process named
// iou-wrk-<tid of the ring's creator>.
//
// It runs in a process of its own (the test binary started again): the
// rings a thread sets up share its io-wq, whose workers keep the CPUs
// they were started with, and the last of them stays while the thread
// lives; a worker an earlier test's ring left on this thread could run
// the splice.
func TestIOWQAffinityConfinesWorkers(t *testing.T) {
	if os.Getenv(childTestEnv) == "" {
		runInChild(t, "TestIOWQAffinityConfinesWorkers")
		return
	}
	r := newShardRing(t, 8)
	creator := unix.Gettid()
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for i := range 1024 {
		if allowed.IsSet(i) {
			cpu = i // the last allowed CPU
		}
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := r.RegisterIOWQAffinity(&one); err != nil {
		t.Fatalf("RegisterIOWQAffinity: %v", err)
	}

	f := tempFile(t)
	if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	_, pwr := pipe(t)
	sqe := mustSQE(t, r)
	sqe.PrepSplice(int(f.Fd()), 0, pwr, -1, 4096, unix.SPLICE_F_MOVE)
	sqe.SetUserData(1)
	wantRes(t, "splice file->pipe", reap(t, r, 1)[0], 4096)

	// The worker stays a while after its work; it is looked up now.
	workers := 0
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	name := "iou-wrk-" + strconv.Itoa(creator)
	for _, task := range tasks {
		comm, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		tid, _ := strconv.Atoi(task.Name())
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // exited
		}
		workers++
		if set.Count() != 1 || !set.IsSet(cpu) {
			t.Errorf("io-wq worker %d may run on %d CPUs, want only CPU %d", tid, set.Count(), cpu)
		}
	}
	if workers == 0 {
		t.Fatalf("no io-wq worker named %s after a splice", name)
	}
}

// childTestEnv, set, tells the test binary it runs one test for a parent.
const childTestEnv = "STRATA_TEST_CHILD"

// runInChild runs the test named name alone in a new process of the test
// binary and fails unless it passes there.
func runInChild(t *testing.T, name string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childTestEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s in a process of its own: %v\n%s", name, err, out)
	}
}
