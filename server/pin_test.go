package server

import (
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStoppedPinnedShardLeavesNoPinnedThread: a pinned shard's thread ends
// with the shard instead of going back to the Go runtime bound to the
// shard's CPU, where any goroutine could land on it.
func TestStoppedPinnedShardLeavesNoPinnedThread(t *testing.T) {
	// NumCPU is taken from the process's affinity at start-up, before any
	// thread was pinned.
	all := runtime.NumCPU()
	if all < 2 {
		t.Skip("one CPU: a pinned thread is not told apart from any other")
	}
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Pin: true, Handler: echoHandler{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// The shard's goroutine ends just after Stop returns, and its thread
	// with it (the main thread, which the runtime cannot end, it parks
	// for good). A thread handed back to the runtime instead would stay
	// pinned and run other goroutines: goroutines on every thread the
	// runtime hands out look for one.
	for round := range 200 {
		var wg sync.WaitGroup
		counts := make([]int, 4*runtime.GOMAXPROCS(0))
		for i := range counts {
			wg.Go(func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var set unix.CPUSet
				if unix.SchedGetaffinity(0, &set) == nil {
					counts[i] = set.Count()
				}
				time.Sleep(100 * time.Microsecond) // hold the thread, so others take other threads
			})
		}
		wg.Wait()
		for _, n := range counts {
			if n != 0 && n < all {
				t.Fatalf("round %d: a goroutine ran on a thread with %d of %d CPUs after the pinned shard stopped", round, n, all)
			}
		}
	}
}
