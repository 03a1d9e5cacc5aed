package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
	"golang.org/x/sys/unix"
)

// TestServeRefusesBadSegmentAllocateStep: an allocation step of 0, a
// negative one, one below a page and one above the largest segment.bytes
// are refused before anything starts, from the flag and the TOML key
// alike, with the valid range in the message.
func TestServeRefusesBadSegmentAllocateStep(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"0", "-1", "4095", "1073741825"} {
		conf := filepath.Join(dir, "strata.toml")
		if err := os.WriteFile(conf, []byte("log_segment_allocate_step_bytes = "+v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		want := "strata: --log-segment-allocate-step-bytes " + v + ": want 4096 (4 KiB) to 1073741824 (1 GiB, the largest segment.bytes)\n"
		for _, args := range [][]string{
			{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", "--log-segment-allocate-step-bytes", v},
			{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "", "--config", conf},
		} {
			_, errOut, code := run(t, "", "", args...)
			if code != 2 || !strings.HasSuffix(errOut, want) {
				t.Fatalf("strata %v: exit %d, %q; want exit 2 and %q", args, code, errOut, want)
			}
		}
	}
	// A controller-only node keeps no partition logs.
	args := []string{"serve", "--data-dir", dir, "--roles", "controller", "--node-id", "1",
		"--controller-voters", "1@127.0.0.1:1", "--cluster-insecure", "--log-segment-allocate-step-bytes", "1048576"}
	if _, errOut, code := run(t, "", "", args...); code != 2 || !strings.Contains(errOut, "are broker settings") {
		t.Fatalf("strata %v: exit %d, %q; want a usage error", args, code, errOut)
	}
}

// allocation is a segment data file's length and the bytes of its
// allocated blocks.
func allocation(t *testing.T, path string) (size, blocks int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Size, st.Blocks * 512
}

// TestServeSegmentAllocateStep runs a broker with
// --log-segment-allocate-step-bytes 1048576 and watches a partition's
// first segment data file grow by it: no blocks while the partition is
// empty, one 1 MiB step after about 0.6 MiB of records, two after about
// 1.5 MiB (the file's length is the allocated end: fallocate mode 0), and
// the same after a clean restart and after a kill (recovery cuts the
// file to its data and allocates it again to the step that holds it). A topic whose segment.bytes (256 KiB) is below
// the step allocates its segment whole, and so does a topic whose
// segment.bytes is lowered below the step at run time. With the default
// step (32 MiB) the first append would allocate 32 MiB.
func TestServeSegmentAllocateStep(t *testing.T) {
	const step = 1 << 20
	dataDir := t.TempDir()
	b := brokertest.Start(t, brokertestBin(), dataDir, "127.0.0.1:0", "--log-segment-allocate-step-bytes", fmt.Sprint(step))
	mustRun := func(stdin string, args ...string) {
		t.Helper()
		if _, errOut, code := run(t, b.Addr, stdin, args...); code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
	}
	mustRun("", "topic", "create", "steps", "--partitions", "1")
	mustRun("", "topic", "create", "small", "--partitions", "1", "--config", "segment.bytes=262144")
	data := filepath.Join(dataDir, "steps-0", "00000000000000000000.log")
	small := filepath.Join(dataDir, "small-0", "00000000000000000000.log")
	// lines is n records of about 1000 bytes, one a line.
	lines := func(n int) string {
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, "%06d %s\n", i, strings.Repeat("x", 993))
		}
		return sb.String()
	}
	check := func(path, when string, want int64) {
		t.Helper()
		size, blocks := allocation(t, path)
		t.Logf("%s %s: length %d, %d bytes of blocks", path, when, size, blocks)
		// Blocks round up to the file system's and may hold its extent
		// metadata; never another step.
		if size != want || blocks < want || blocks >= want+step/2 {
			t.Fatalf("%s %s: length %d, %d bytes of blocks; want the allocated end at %d", filepath.Base(path), when, size, blocks, want)
		}
	}
	check(data, "while the partition is empty", 0)
	mustRun(lines(600), "produce", "steps")
	check(data, "after 0.6 MiB", step)
	mustRun(lines(900), "produce", "steps")
	check(data, "after 1.5 MiB", 2*step)
	mustRun(lines(100), "produce", "small")
	check(small, "after 0.1 MiB in 256 KiB segments", 256<<10)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b.Restart(t)
	mustRun("", "consume", "steps", "--from", "latest", "--exit-at-end") // the log is open
	check(data, "after a clean restart", 2*step)
	b.Kill()
	b.Restart(t)
	mustRun("", "consume", "steps", "--from", "latest", "--exit-at-end") // the log is open
	check(data, "after a kill and a restart", 2*step)
	// A segment.bytes lowered below the step at run time lowers the step
	// with it: the next segment is allocated whole, at its new size. (A
	// step left above it would make the log refuse the new configs.) The
	// configs reach the partition through the metadata log: produce until
	// the active segment rolls by the new size.
	mustRun("", "topic", "alter-config", "steps", "--set", "segment.bytes=262144")
	var newest string
	for range alterWaitProduces {
		mustRun(lines(1), "produce", "steps")
		logs, err := filepath.Glob(filepath.Join(dataDir, "steps-0", "*.log"))
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) > 1 {
			newest = logs[len(logs)-1]
			break
		}
	}
	if newest == "" {
		t.Fatalf("no roll after segment.bytes went to 262144 and %d produces; broker log:\n%s", alterWaitProduces, b.Log())
	}
	check(newest, "after segment.bytes went to 256 KiB", 256<<10)
}

// alterWaitProduces bounds the produces that wait for altered
// topic configs to reach a partition.
const alterWaitProduces = 200
