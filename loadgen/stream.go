package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// stream is one workload stream over a TCP connection: a sending half that
// moves chunks chosen by the budget, and a receiving half that reads into a
// reused buffer and hands each read to take. Modes differ only in how a chunk
// is sent and what is done with what arrives.
type stream struct {
	sender, receiver *net.TCPConn
	chunkBytes       int64
	budget           budget
	progress         *progress

	// clamp, when set, shortens a chunk the budget allowed (consume mode
	// ends chunks at the end of its file).
	clamp func(n int64) int64
	// send moves the next n bytes into the sender's socket.
	send func(n int64) error
	// take handles bytes the receiver read; the slice is reused afterwards.
	take func(p []byte) error
	// drain, when set, runs once the receiver has seen the end of the stream
	// and before the clock stops (produce mode's final fdatasync).
	drain func() error
}

// errShortStream reports that the two ends of a stream (or the receiver and
// its file) disagree on how much crossed; no figure is reported then.
var errShortStream = errors.New("byte counts differ")

// streamResult is what a stream moved and how long it took.
type streamResult struct {
	sentBytes, receivedBytes int64
	elapsed                  time.Duration
	stoppedBy                stopReason
	latency                  latencySummary
}

// run moves the stream until the budget is spent, then half-closes the
// sender so the receiver sees the end. Times count from just before the
// first chunk to when the receiver has handled the last byte.
func (s *stream) run(start time.Time) (streamResult, error) {
	var res streamResult
	clock := newChunkClock(start)
	rbuf := make([]byte, receiveBufferBytes)

	send := func() error {
		for {
			n, why := s.budget.next(res.sentBytes, s.chunkBytes, time.Now())
			if n == 0 {
				res.stoppedBy = why
				return s.sender.CloseWrite()
			}
			if s.clamp != nil {
				n = s.clamp(n)
			}
			if err := clock.starting(res.sentBytes + n); err != nil {
				return err
			}
			if err := s.send(n); err != nil {
				return err
			}
			res.sentBytes += n
		}
	}
	receive := func() error {
		for {
			n, err := s.receiver.Read(rbuf)
			if n > 0 {
				if terr := s.take(rbuf[:n]); terr != nil {
					return terr
				}
				res.receivedBytes += int64(n)
				s.progress.add(int64(n))
				clock.arrived(res.receivedBytes)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("receive: %w", err)
			}
		}
		if s.drain != nil {
			if err := s.drain(); err != nil {
				return err
			}
		}
		res.elapsed = time.Since(start)
		return nil
	}
	abort := func() {
		clock.abort()
		s.sender.Close()
		s.receiver.Close()
	}
	if err := runPair(send, receive, abort); err != nil {
		return res, err
	}
	if res.sentBytes != res.receivedBytes {
		return res, fmt.Errorf("%w: sent %d, received %d", errShortStream, res.sentBytes, res.receivedBytes)
	}
	res.latency = clock.latencies.summary()
	return res, nil
}

// chunkSize is the bytes one send carries: --batch-bytes rounded down to
// whole records, and at least one record, so every run moves whole records.
func chunkSize(batchBytes, recordSizeBytes int64) int64 {
	return max(batchBytes/recordSizeBytes, 1) * recordSizeBytes
}

// fillRecords writes a recognisable, non-zero pattern that restarts at every
// record boundary of buf.
func fillRecords(buf []byte, recordSizeBytes int64) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range buf {
		buf[i] = alphabet[(int64(i)%recordSizeBytes)%int64(len(alphabet))]
	}
}
