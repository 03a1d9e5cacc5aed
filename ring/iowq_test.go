package ring

import (
	"os"
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
func TestIOWQAffinityConfinesWorkers(t *testing.T) {
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
	// The mask belongs to this thread's io-wq, which outlives the ring:
	// it is given back before the thread goes back to the runtime.
	t.Cleanup(func() {
		if err := r.RegisterIOWQAffinity(&allowed); err != nil {
			t.Errorf("RegisterIOWQAffinity back to every CPU: %v", err)
		}
	})

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
