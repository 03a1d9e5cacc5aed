package transport

import (
	"sync"
	"time"
)

// Refusals are logged, one line per refused connection or message, but a
// stranger hammering the port must not flood the log: at most
// refusalLogLines lines per refusalLogPeriod, and the first line after a
// quiet spell says how many were left out.
const (
	refusalLogLines  = 10
	refusalLogPeriod = 10 * time.Second
)

// LogLimit decides which refusals are logged. Its zero value is ready.
type LogLimit struct {
	mu         sync.Mutex
	start      time.Time
	lines      int
	suppressed int
}

// Allow reports whether a line may be logged now and, when it may, how
// many were left out since the last logged one.
func (l *LogLimit) Allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= refusalLogPeriod {
		l.start, l.lines = now, 0
	}
	if l.lines >= refusalLogLines {
		l.suppressed++
		return false, 0
	}
	l.lines++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
