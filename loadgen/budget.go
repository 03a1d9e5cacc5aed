package main

import (
	"context"
	"time"
)

// stopReason says what ended a run; it is reported so that a short figure
// read later is not mistaken for a slow one.
type stopReason string

const (
	stopNone        stopReason = ""
	stopRecords     stopReason = "records"
	stopDuration    stopReason = "duration"
	stopDiskSpace   stopReason = "disk space"
	stopInterrupted stopReason = "interrupted"
)

// budget decides, chunk by chunk, how much the sending side moves next. Only
// the sender consults it, so it needs no locking.
type budget struct {
	ctx context.Context
	// limitBytes caps the bytes moved (0: no cap); limitReason names the cap.
	limitBytes  int64
	limitReason stopReason
	// deadline ends the run by time (zero: no time limit).
	deadline time.Time
}

func newBudget(ctx context.Context, f *workloadFlags, start time.Time) budget {
	b := budget{ctx: ctx, limitBytes: f.limitBytes(), limitReason: stopRecords}
	if f.duration > 0 {
		b.deadline = start.Add(f.duration)
	}
	return b
}

// capBytes lowers the byte cap to n (e.g. the free disk space), naming why.
func (b *budget) capBytes(n int64, why stopReason) {
	if b.limitBytes == 0 || n < b.limitBytes {
		b.limitBytes = n
		b.limitReason = why
	}
}

// next returns the size of the next chunk given the bytes sent so far and the
// preferred chunk size, or 0 and the reason the run is over. A chunk is cut
// short only by the byte cap, so runs end on whole chunks otherwise.
func (b *budget) next(sent, chunk int64, now time.Time) (int64, stopReason) {
	if b.ctx.Err() != nil {
		return 0, stopInterrupted
	}
	if !b.deadline.IsZero() && !now.Before(b.deadline) {
		return 0, stopDuration
	}
	if b.limitBytes > 0 {
		left := b.limitBytes - sent
		if left <= 0 {
			return 0, b.limitReason
		}
		chunk = min(chunk, left)
	}
	return chunk, stopNone
}
