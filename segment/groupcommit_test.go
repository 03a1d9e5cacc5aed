package segment

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// gatedFS holds the first Datasync of a data file until released, so a test
// can line appends up behind one sync.
type gatedFS struct {
	*MemFS
	gate    chan struct{}
	syncs   atomic.Int64
	waiting atomic.Bool
}

type gatedFile struct {
	File
	g    *gatedFS
	data bool
}

func (g *gatedFS) Create(name string) (File, error) {
	f, err := g.MemFS.Create(name)
	return &gatedFile{File: f, g: g, data: strings.HasSuffix(name, logSuffix)}, err
}

func (f *gatedFile) Datasync() error {
	if f.data {
		if f.g.syncs.Add(1) == 1 {
			f.g.waiting.Store(true)
			<-f.g.gate
		}
	}
	return f.File.Datasync()
}

func TestGroupCommit(t *testing.T) {
	mem := NewMemFS()
	g := &gatedFS{MemFS: mem, gate: make(chan struct{})}
	cfg := memConfig(g)
	cfg.SegmentBytes = 1 << 20
	l, err := Open("/g", cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.syncs.Store(0)
	const writers = 8
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := l.Append(testFrame(1, 10, 1, 1)); err != nil {
			t.Error(err)
		}
	}()
	for !g.waiting.Load() {
		runtime.Gosched()
	}
	writesBefore := mem.Writes
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := l.Append(testFrame(1, 10, 1, uint64(i+2))); err != nil {
				t.Error(err)
			}
		}(i)
	}
	// Every writer has written its frame and waits for a sync.
	for {
		mem.mu.Lock()
		n := mem.Writes
		mem.mu.Unlock()
		if n-writesBefore == writers {
			break
		}
		runtime.Gosched()
	}
	close(g.gate)
	wg.Wait()
	if n := g.syncs.Load(); n > 2 {
		t.Fatalf("%d appends took %d syncs; want the %d waiting behind the first to share one", writers+1, n, writers)
	}
	if l.RecoveryPoint() != writers+1 {
		t.Fatalf("recovery point %d, want %d", l.RecoveryPoint(), writers+1)
	}
	mem.Crash()
	l2, err := Open("/g", memConfig(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.End() != writers+1 {
		t.Fatalf("after crash end %d, want %d acknowledged", l2.End(), writers+1)
	}
}

// TestConcurrentAppendRead runs appenders, a reader and retention together
// (for the race detector) and checks that every read sees whole frames.
func TestConcurrentAppendRead(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	cfg.RetentionBytes = 16 << 10
	l, err := Open("/cc", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	var done atomic.Bool
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				if _, err := l.Append(testFrame(2, 200, int64(i), uint64(w*1000+i))); err != nil {
					t.Error(err)
					return
				}
				if i%20 == 0 {
					if err := l.ApplyRetention(0); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}(w)
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for !done.Load() {
			spans, err := l.Read(l.LogStart(), 4096, -1)
			if errors.Is(err, ErrOffsetOutOfRange) || errors.Is(err, ErrStaleRead) {
				continue
			}
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := l.ReadSpans(nil, spans); err != nil && !errors.Is(err, ErrStaleRead) {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	done.Store(true)
	<-readerDone
	if l.End() != 600 {
		t.Fatalf("end %d, want 600", l.End())
	}
}
