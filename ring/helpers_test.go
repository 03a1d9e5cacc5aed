package ring

import (
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitLimit bounds every wait for a completion so a lost CQE fails the test
// instead of hanging it.
const waitLimit = 10 * time.Second

// newShardRing locks the test goroutine to its thread (SINGLE_ISSUER needs
// every submission from the creating thread) and sets up a ring with the
// flags a shard uses.
func newShardRing(t testing.TB, entries uint32) *Ring {
	t.Helper()
	runtime.LockOSThread()
	r, err := New(entries, Options{Flags: ShardFlags, CQEntries: entries * 4})
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		r.Close()
		runtime.UnlockOSThread()
	})
	return r
}

func mustSQE(t testing.TB, r *Ring) *SQE {
	t.Helper()
	sqe := r.GetSQE()
	if sqe == nil {
		t.Fatal("submission queue full")
	}
	return sqe
}

// reap submits what is pending and collects n completions (copied), failing
// the test if they do not all arrive within waitLimit.
func reap(t testing.TB, r *Ring, n int) []CQE {
	t.Helper()
	out := make([]CQE, 0, n)
	deadline := time.Now().Add(waitLimit)
	for len(out) < n {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("got %d of %d completions: %+v", len(out), n, out)
		}
		c, err := r.WaitCQETimeout(left)
		if err == unix.ETIME {
			continue
		}
		if err != nil {
			t.Fatalf("WaitCQETimeout: %v", err)
		}
		out = append(out, *c)
		r.CQESeen()
	}
	return out
}

// byUserData indexes completions by their tag; a duplicate tag fails.
func byUserData(t testing.TB, cqes []CQE) map[uint64]CQE {
	t.Helper()
	m := make(map[uint64]CQE, len(cqes))
	for _, c := range cqes {
		if _, dup := m[c.UserData]; dup {
			t.Fatalf("duplicate completion for %d", c.UserData)
		}
		m[c.UserData] = c
	}
	return m
}

func socketpair(t testing.TB) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func pipe(t testing.TB) (int, int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p[0], p[1]
}

// tcpListener listens on an ephemeral loopback port.
func tcpListener(t testing.TB) (int, *unix.SockaddrInet4) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1024); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4)
}

// tcpDial connects a blocking socket to addr.
func tcpDial(t testing.TB, addr *unix.SockaddrInet4) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Connect(fd, addr); err != nil {
		t.Fatal(err)
	}
	return fd
}

func tempFile(t testing.TB) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "ring")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func wantRes(t testing.TB, what string, c CQE, want int32) {
	t.Helper()
	if c.Res != want {
		t.Fatalf("%s: res %d (%v), want %d", what, c.Res, c.Err(), want)
	}
}
