package main

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress draws a live progress bar on stderr while a workload runs, when
// stderr is a terminal; otherwise (tests, CI, redirected output) it draws
// nothing. The workload only adds to an atomic counter, once per read or
// write and never per record; a separate goroutine redraws.
type progress struct {
	moved atomic.Int64

	bar  *progressbar.ProgressBar
	stop chan struct{}
	done sync.WaitGroup
}

// newProgress starts the bar if w is a terminal. totalBytes is the expected
// total, or 0 when only time bounds the run (the bar then shows a spinner
// with the byte count and rate).
func newProgress(w io.Writer, description string, totalBytes int64) *progress {
	p := &progress{}
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return p
	}
	barMax := totalBytes
	if barMax == 0 {
		barMax = -1 // unknown total: spinner
	}
	p.bar = progressbar.NewOptions64(barMax,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(40),
		progressbar.OptionThrottle(progressRefreshInterval),
		progressbar.OptionClearOnFinish(),
	)
	p.stop = make(chan struct{})
	p.done.Add(1)
	go p.redraw()
	return p
}

// add counts n more bytes moved.
func (p *progress) add(n int64) { p.moved.Add(n) }

func (p *progress) redraw() {
	defer p.done.Done()
	t := time.NewTicker(progressRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			_ = p.bar.Set64(p.moved.Load())
		}
	}
}

// finish stops redrawing and clears the bar, so the summary that follows is
// not interleaved with it.
func (p *progress) finish() {
	if p.bar == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
	_ = p.bar.Finish()
	_ = p.bar.Clear()
}
