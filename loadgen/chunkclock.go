package main

import (
	"errors"
	"time"
)

// errStreamAborted is what the sender sees when the receiver failed first.
var errStreamAborted = errors.New("stream aborted")

// chunkStamp marks when the sender began a chunk and the stream offset just
// past its last byte.
type chunkStamp struct {
	end     int64
	startNs int64
}

// chunkClock measures per-chunk latency across the connection: from the moment
// the sender starts a chunk until the receiving side has taken in (and, in
// produce mode, written) its last byte. The sender queues a stamp before it
// writes the chunk, so by the time any byte of a chunk reaches the receiver
// its stamp is already queued and the receiver never waits on the queue.
type chunkClock struct {
	base   time.Time
	stamps chan chunkStamp
	// quit is closed when the stream is aborted, so a sender waiting for
	// room in stamps does not wait for a receiver that is gone.
	quit chan struct{}

	// Receiver-side state.
	latencies *latencyRecorder
	pending   chunkStamp
	havePend  bool
	doneEnd   int64
}

func newChunkClock(base time.Time) *chunkClock {
	return &chunkClock{
		base:      base,
		stamps:    make(chan chunkStamp, maxChunksInFlight),
		quit:      make(chan struct{}),
		latencies: newLatencyRecorder(),
	}
}

// starting is called by the sender just before it writes the chunk that ends
// at stream offset end. It returns errStreamAborted if the stream was aborted
// while it waited for room.
func (c *chunkClock) starting(end int64) error {
	select {
	case c.stamps <- chunkStamp{end: end, startNs: int64(time.Since(c.base))}:
		return nil
	case <-c.quit:
		return errStreamAborted
	}
}

// abort releases a sender waiting in starting.
func (c *chunkClock) abort() { close(c.quit) }

// arrived is called by the receiver after it has taken in the stream up to
// offset total; it records the latency of every chunk that completed.
func (c *chunkClock) arrived(total int64) {
	var nowNs int64
	for total > c.doneEnd {
		if !c.havePend {
			c.pending = <-c.stamps
			c.havePend = true
		}
		if total < c.pending.end {
			return
		}
		if nowNs == 0 {
			nowNs = int64(time.Since(c.base))
		}
		c.latencies.record(time.Duration(nowNs - c.pending.startNs))
		c.doneEnd = c.pending.end
		c.havePend = false
	}
}
