package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-db/strata/client"
)

// stampBytes is the size of the send time an e2e producer writes at the
// start of each value: nanoseconds since the run's clock base, little
// endian.
const stampBytes = 8

// monoClock reads nanoseconds since a base time on the monotonic clock, so
// stamps taken by producers and read by consumers of the same process
// compare without wall-clock steps.
type monoClock struct{ base time.Time }

func (c monoClock) since(t time.Time) int64 { return int64(t.Sub(c.base)) }
func (c monoClock) nowNs() int64            { return c.since(time.Now()) }

// produceJob is one run of producers: each dials its own connection, owns
// one client.Producer, and sends its share of the records at its share of
// the rate.
type produceJob struct {
	cfg        client.Config
	pcfg       client.ProducerConfig
	topic      string
	producers  int
	recordSize int64
	values     string // --values
	// records is the total to send (0: no limit); deadline ends the
	// sending by time (zero: no limit).
	records  int64
	deadline time.Time
	// rate is records per second across all producers (0: unthrottled).
	rate float64
	// stamp writes the send time into the first stampBytes of each value.
	stamp    bool
	clock    monoClock
	progress *progress
}

// produceResult is what the producers had acknowledged.
type produceResult struct {
	acked, bytes int64
	// elapsed runs from the first send to the last acknowledgement.
	elapsed   time.Duration
	stoppedBy stopReason
	latency   *latencyRecorder
}

// ackState collects one producer's acknowledgements. Callbacks run on the
// client library's goroutines, so it is guarded by a mutex; it is taken once
// per record and never contended by the sending goroutine.
type ackState struct {
	mu       sync.Mutex
	lat      *latencyRecorder
	acked    int64
	lastNs   int64
	failed   int64
	firstErr error
}

// callback returns the record's callback: it records send-to-acknowledgement
// latency against sentNs.
func (a *ackState) callback(clock monoClock, sentNs, recordSize int64, prog *progress) client.Callback {
	return func(_ int32, _ int64, err error) {
		now := clock.nowNs()
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			a.failed++
			if a.firstErr == nil {
				a.firstErr = err
			}
			return
		}
		a.acked++
		a.lastNs = max(a.lastNs, now)
		a.lat.record(time.Duration(now - sentNs))
		prog.add(recordSize)
	}
}

// producerOutcome is one producer's share of a produceResult.
type producerOutcome struct {
	acks      *ackState
	stoppedBy stopReason
}

// run sends until the records or the time are spent, flushes, and returns
// what was acknowledged. Rates and elapsed times count from start.
func (j *produceJob) run(ctx context.Context, start time.Time) (produceResult, error) {
	outcomes := make([]producerOutcome, j.producers)
	errs := make([]error, j.producers)
	var wg sync.WaitGroup
	for i := range j.producers {
		quota := shareOf(j.records, i, j.producers)
		if j.records > 0 && quota == 0 {
			outcomes[i] = producerOutcome{acks: &ackState{lat: newLatencyRecorder()}, stoppedBy: stopRecords}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes[i], errs[i] = j.runOne(ctx, i, quota, j.rate/float64(j.producers), start)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return produceResult{}, err
	}
	res := produceResult{latency: newLatencyRecorder(), stoppedBy: stopRecords}
	var lastNs int64
	for _, o := range outcomes {
		a := o.acks
		if a.failed > 0 {
			return produceResult{}, fmt.Errorf("%d records failed, the first with: %w", a.failed, a.firstErr)
		}
		res.acked += a.acked
		lastNs = max(lastNs, a.lastNs)
		res.latency.h.Merge(a.lat.h)
		// The run stopped by the first reason other than the record
		// quota: a duration or an interrupt ends every producer.
		if o.stoppedBy != stopRecords {
			res.stoppedBy = o.stoppedBy
		}
	}
	res.bytes = res.acked * j.recordSize
	res.elapsed = time.Duration(lastNs - j.clock.since(start))
	return res, nil
}

// shareOf splits total among n workers: worker i gets total/n, and the first
// total%n get one more. A total of 0 (no limit) gives every worker 0.
func shareOf(total int64, i, n int) int64 {
	share := total / int64(n)
	if int64(i) < total%int64(n) {
		share++
	}
	return share
}

// runOne is producer index (which seeds its values). quota 0 sends until
// the deadline; rate 0 sends as fast as Send returns.
func (j *produceJob) runOne(ctx context.Context, index int, quota int64, rate float64, start time.Time) (producerOutcome, error) {
	out := producerOutcome{acks: &ackState{lat: newLatencyRecorder()}}
	cl, err := client.Dial(ctx, j.cfg)
	if err != nil {
		return out, fmt.Errorf("dial: %w", err)
	}
	defer cl.Close()
	p, err := client.NewProducer(cl, j.pcfg)
	if err != nil {
		return out, err
	}
	pool := newValuePool(j.values, j.recordSize, uint64(index)+1)

	var sent int64
	var sendErr error
	for {
		if quota > 0 && sent >= quota {
			out.stoppedBy = stopRecords
			break
		}
		now := time.Now()
		if !j.deadline.IsZero() && !now.Before(j.deadline) {
			out.stoppedBy = stopDuration
			break
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			if wait := due.Sub(now); wait > 0 {
				if !sleepCtx(ctx, wait) {
					out.stoppedBy = stopInterrupted
					break
				}
				now = time.Now()
			}
		}
		sentNs := j.clock.since(now)
		value := pool.value()
		if j.stamp {
			binary.LittleEndian.PutUint64(value, uint64(sentNs))
		}
		rec := client.Record{Topic: j.topic, Value: value}
		if err := p.Send(ctx, &rec, out.acks.callback(j.clock, sentNs, j.recordSize, j.progress)); err != nil {
			if ctx.Err() != nil {
				out.stoppedBy = stopInterrupted
			} else {
				sendErr = fmt.Errorf("send: %w", err)
			}
			break
		}
		sent++
	}
	// The sending is over; what was sent is flushed even after an
	// interrupt, so the figure counts only acknowledged records.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	flushErr := p.Flush(fctx)
	closeErr := p.Close(fctx)
	if sendErr != nil {
		return out, sendErr
	}
	if flushErr != nil {
		return out, fmt.Errorf("flush: %w", flushErr)
	}
	if closeErr != nil {
		return out, fmt.Errorf("close producer: %w", closeErr)
	}
	return out, nil
}

// sleepCtx sleeps for d unless ctx ends first; it reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
