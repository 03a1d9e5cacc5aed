package server

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ioWorkers lists the io-wq worker threads of this process by thread id
// and name (iou-wrk-<id of the thread that set up the ring>).
func ioWorkers(t *testing.T) map[string]string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	workers := map[string]string{}
	for _, task := range tasks {
		comm, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "comm"))
		if name := strings.TrimSpace(string(comm)); err == nil && strings.HasPrefix(name, "iou-wrk-") {
			workers[task.Name()] = name
		}
	}
	return workers
}

// ioWorkerMasks returns the CPU masks of the io-wq workers of the thread
// creator (its rings share one io-wq).
func ioWorkerMasks(t *testing.T, creator int) []unix.CPUSet {
	t.Helper()
	var masks []unix.CPUSet
	name := "iou-wrk-" + strconv.Itoa(creator)
	for task, comm := range ioWorkers(t) {
		if comm != name {
			continue
		}
		tid, _ := strconv.Atoi(task)
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err == nil {
			masks = append(masks, set)
		}
	}
	return masks
}

// TestPinnedShardKeepsItsIOWorkersOnItsCPU: a pinned shard's splices run
// in io-wq workers that may use only the shard's CPU, not every CPU of
// the process's cpuset, which the kernel would give them otherwise.
//
// It runs in a process of its own (the test binary started again): the
// rings a thread sets up share its io-wq, whose workers keep the CPUs
// they were started with, and the last of them stays while the thread
// lives. A shard on a thread that had served an earlier test's ring could
// splice through such a worker; a fresh process has none.
func TestPinnedShardKeepsItsIOWorkersOnItsCPU(t *testing.T) {
	if os.Getenv(childTestEnv) == "" {
		runInChild(t, "TestPinnedShardKeepsItsIOWorkersOnItsCPU")
		return
	}
	cpus, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	f, data := spanFile(t, 256<<10)
	s := startServerWith(t, Config{Cores: 1, Pin: true, Handler: spanHandler{fd: int(f.Fd())}})
	shardTID := int(s.shards[0].tid.Load())
	c := dial(t, s)
	spans := [][2]int64{{100, 200 << 10}}
	if _, err := c.Write(spanRequest(spans)); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(c); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, spans[0][1])
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data[100:100+200<<10]) {
		t.Fatalf("spliced bytes differ (%v)", err)
	}
	// The workers linger for seconds after their work.
	masks := ioWorkerMasks(t, shardTID)
	if len(masks) == 0 {
		t.Fatal("no io-wq worker of the shard's ring after a splice")
	}
	for _, m := range masks {
		if m.Count() != 1 || !m.IsSet(cpus[0]) {
			t.Errorf("an io-wq worker of the shard pinned to CPU %d may run on %d CPUs", cpus[0], m.Count())
		}
	}
}

// childTestEnv, set, tells the test binary it runs one test for a parent
// (runInChild): TestMain skips building the strata binary.
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
