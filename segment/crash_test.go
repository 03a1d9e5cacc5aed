package segment

import (
	"bufio"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "STRATA_SEGMENT_CRASH_CHILD_DIR"

func crashConfig() Config {
	// Segments grow in 16 KiB steps, so the kill lands between steps too.
	return Config{SegmentBytes: 256 << 10, AllocateStepBytes: 16 << 10, IndexIntervalBytes: 4096, IndexBytes: 4096, Flush: FlushEveryAck}
}

// TestMain lets the test binary double as the crash test's writer process.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	flag.Parse()
	// The model test is the main net for the log: unless told otherwise,
	// run longer sequences than rapid's defaults (still a few seconds).
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, value := range map[string]string{"rapid.steps": "100", "rapid.checks": "300"} {
		if !set[name] && flag.Lookup(name) != nil {
			flag.Set(name, value)
		}
	}
	os.Exit(m.Run())
}

// crashChild appends from several goroutines under FlushEveryAck and prints
// "offset crc" for every acknowledged frame until it is killed.
func crashChild(dir string) {
	l, err := Open(dir, crashConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(g)))
			for i := 0; ; i++ {
				f := testFrame(uint32(1+r.IntN(8)), 16+r.IntN(9000), time.Now().UnixMilli(), r.Uint64())
				base, err := l.Append(f)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %d\n", base, crc32.ChecksumIEEE(f))
				out.Flush()
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
}

func TestCrashKill9(t *testing.T) {
	dir := t.TempDir()
	acked := make(map[int64]uint32)
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	const rounds = 8
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill after a random number of acknowledgements, so the kill
		// lands at varying points of append, sync and roll.
		want := 20 + r.IntN(400)
		got := 0
		for line := range lines {
			fields := strings.Fields(line)
			if len(fields) != 2 {
				t.Fatalf("child said %q", line)
			}
			off, err1 := strconv.ParseInt(fields[0], 10, 64)
			sum, err2 := strconv.ParseUint(fields[1], 10, 32)
			if err1 != nil || err2 != nil {
				t.Fatalf("child said %q", line)
			}
			acked[off] = uint32(sum)
			if got++; got == want {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		cmd.Wait()
		if got < want {
			t.Fatalf("round %d: child exited after %d acks: %s", round, got, stderr.String())
		}
		verifyCrashLog(t, dir, acked)
	}
}

// verifyCrashLog reopens the log and finds every acknowledged frame byte for
// byte; ReadSpans checks every frame's CRC, so garbage cannot pass.
func verifyCrashLog(t *testing.T, dir string, acked map[int64]uint32) {
	t.Helper()
	l, err := Open(dir, crashConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	frames := splitFrames(t, readAll(t, l, 0))
	seen := make(map[int64]bool)
	for _, f := range frames {
		base := int64(0)
		for i := 0; i < 8; i++ {
			base |= int64(f[16+i]) << (8 * i)
		}
		if sum, ok := acked[base]; ok {
			if crc32.ChecksumIEEE(f) != sum {
				t.Fatalf("frame %d differs from what was acknowledged", base)
			}
			seen[base] = true
		}
	}
	for off := range acked {
		if !seen[off] {
			t.Fatalf("acknowledged frame %d lost (log end %d)", off, l.End())
		}
	}
	if err := l.CheckConsistency(); err != nil {
		t.Fatal(err)
	}
}
