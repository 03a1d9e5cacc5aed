package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-db/strata/client"
)

// stopLogEnd: every consumer reached the log end it found when it started.
const stopLogEnd stopReason = "log end"

// consumeJob is one run of consumers: each dials its own connection and
// reads a share of the partitions (round robin by partition id), so that
// several consumers read in parallel as the members of a group would.
type consumeJob struct {
	cfg        client.Config
	ccfg       client.ConsumerConfig
	topic      string
	partitions []int32
	consumers  int
	// records stops the run once this many were read in all (0: no
	// limit); deadline stops it by time (zero: no limit).
	records  int64
	deadline time.Time
	// untilEnd stops each consumer at the log end it found at the start.
	untilEnd bool
	// fromLatest starts at the log end (e2e) instead of the log start.
	fromLatest bool
	// stamped takes latency from each value's send stamp (e2e); otherwise
	// latency is the time each Poll took.
	stamped  bool
	clock    monoClock
	progress *progress
}

// consumerState is one consumer: its connection, its partitions and what it
// read. Only its own goroutine touches it while the run goes.
type consumerState struct {
	cl    *client.Client
	c     *client.Consumer
	parts []int32
	ends  map[int32]int64

	lat            *latencyRecorder
	records, bytes int64
	lastNs         int64
	shortValues    int64
}

// consumeRun is a consume job with its consumers connected and positioned.
type consumeRun struct {
	job    *consumeJob
	states []*consumerState

	// total counts records read by every consumer; target, once non-zero,
	// is the total at which the run is over.
	total  atomic.Int64
	target atomic.Int64

	// ctx ends every Poll when the run is stopped; reason says why.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	reason stopReason
}

// consumeResult is what the consumers read.
type consumeResult struct {
	records, bytes int64
	elapsed        time.Duration
	stoppedBy      stopReason
	latency        *latencyRecorder
}

// errTooManyConsumers: every consumer needs at least one partition.
var errTooManyConsumers = errors.New("more consumers than partitions")

// open connects the consumers and positions them (at the log start, or at
// the log end for fromLatest), and takes the log ends for untilEnd.
func (j *consumeJob) open(ctx context.Context) (*consumeRun, error) {
	if j.consumers > len(j.partitions) {
		return nil, fmt.Errorf("%w: %d consumers, %d partitions of %s", errTooManyConsumers,
			j.consumers, len(j.partitions), j.topic)
	}
	r := &consumeRun{job: j}
	r.target.Store(j.records)
	if j.deadline.IsZero() {
		r.ctx, r.cancel = context.WithCancel(ctx)
	} else {
		r.ctx, r.cancel = context.WithDeadline(ctx, j.deadline)
	}
	for i := range j.consumers {
		st := &consumerState{lat: newLatencyRecorder()}
		for k := i; k < len(j.partitions); k += j.consumers {
			st.parts = append(st.parts, j.partitions[k])
		}
		r.states = append(r.states, st)
		if err := r.openOne(ctx, st); err != nil {
			r.close()
			return nil, err
		}
	}
	return r, nil
}

func (r *consumeRun) openOne(ctx context.Context, st *consumerState) error {
	j := r.job
	cl, err := client.Dial(ctx, j.cfg)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	st.cl = cl
	st.c = client.NewConsumer(cl, j.ccfg)
	if err := st.c.Assign(j.topic, st.parts...); err != nil {
		return fmt.Errorf("assign %s %v: %w", j.topic, st.parts, err)
	}
	if j.fromLatest {
		err = st.c.SeekToLatest(ctx, j.topic, st.parts...)
	} else {
		err = st.c.SeekToEarliest(ctx, j.topic, st.parts...)
	}
	if err != nil {
		return fmt.Errorf("seek %s %v: %w", j.topic, st.parts, err)
	}
	if j.untilEnd {
		st.ends, err = cl.ListOffsets(ctx, j.topic, st.parts, client.OffsetLatest)
		if err != nil {
			return fmt.Errorf("log ends of %s %v: %w", j.topic, st.parts, err)
		}
	}
	return nil
}

// stop ends the run for every consumer, for the first reason given.
func (r *consumeRun) stop(why stopReason) {
	r.once.Do(func() {
		r.reason = why
		r.cancel()
	})
}

// setTarget sets the number of records at which the run is over (e2e: what
// the producers had acknowledged, known only once they are done).
func (r *consumeRun) setTarget(n int64) {
	r.target.Store(n)
	if r.total.Load() >= n {
		r.stop(stopRecords)
	}
}

func (r *consumeRun) close() {
	r.cancel()
	for _, st := range r.states {
		if st.c != nil {
			_ = st.c.Close()
		}
		if st.cl != nil {
			_ = st.cl.Close()
		}
	}
}

// run reads until the records, the time or the log ends are reached, or
// stop is called. Elapsed time counts from start to the last record read.
func (r *consumeRun) run(start time.Time) (consumeResult, error) {
	reasons := make([]stopReason, len(r.states))
	errs := make([]error, len(r.states))
	var wg sync.WaitGroup
	for i, st := range r.states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reasons[i], errs[i] = r.runOne(st)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return consumeResult{}, err
	}
	res := consumeResult{latency: newLatencyRecorder(), stoppedBy: stopLogEnd}
	var lastNs int64
	for i, st := range r.states {
		if st.shortValues > 0 {
			return consumeResult{}, fmt.Errorf("%d records were shorter than the %d-byte send stamp", st.shortValues, stampBytes)
		}
		res.records += st.records
		res.bytes += st.bytes
		lastNs = max(lastNs, st.lastNs)
		res.latency.h.Merge(st.lat.h)
		if reasons[i] != stopLogEnd {
			res.stoppedBy = reasons[i]
		}
	}
	res.elapsed = time.Duration(lastNs - r.job.clock.since(start))
	return res, nil
}

// atEnd reports whether a consumer has read up to the log ends it took.
func (r *consumeRun) atEnd(st *consumerState) bool {
	for _, p := range st.parts {
		pos, ok := st.c.Position(r.job.topic, p)
		if !ok || pos < st.ends[p] {
			return false
		}
	}
	return true
}

func (r *consumeRun) runOne(st *consumerState) (stopReason, error) {
	j := r.job
	for {
		if j.untilEnd && r.atEnd(st) {
			return stopLogEnd, nil
		}
		before := time.Now()
		recs, err := st.c.Poll(r.ctx)
		if err != nil {
			switch {
			case r.ctx.Err() == nil:
				return stopNone, fmt.Errorf("poll: %w", err)
			case errors.Is(r.ctx.Err(), context.DeadlineExceeded):
				return stopDuration, nil
			}
			r.once.Do(func() { r.reason = stopInterrupted })
			return r.reason, nil
		}
		after := time.Now()
		nowNs := j.clock.since(after)
		var n int64
		for i := range recs {
			v := recs[i].Value
			n += int64(len(v))
			if !j.stamped {
				continue
			}
			if len(v) < stampBytes {
				st.shortValues++
				continue
			}
			st.lat.record(time.Duration(nowNs - int64(binary.LittleEndian.Uint64(v))))
		}
		if !j.stamped {
			st.lat.record(after.Sub(before))
		}
		st.records += int64(len(recs))
		st.bytes += n
		st.lastNs = nowNs
		j.progress.add(n)
		total := r.total.Add(int64(len(recs)))
		if t := r.target.Load(); t > 0 && total >= t {
			r.stop(stopRecords)
		}
	}
}
