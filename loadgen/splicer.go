package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/ring"
)

// splicePipeBytes is the splicer's pipe size, the broker's (1 MiB, the
// default fs.pipe-max-size); a chunk is the pipe less one page, as in the
// broker, so a range that starts off a page boundary still fits.
const splicePipeBytes = 1 << 20

// Tags of the splicer's two SQEs.
const (
	spliceTagIn  = 1
	spliceTagOut = 2
)

// splicer sends chunks of a file to a TCP socket the way the broker sends
// fetch answers: io_uring SPLICE file -> pipe, linked to SPLICE pipe ->
// socket. The ring is set up as a broker shard's (ring.ShardFlags) and
// must be driven from one thread, so one goroutine locked to its thread
// owns it and takes each chunk by message.
type splicer struct {
	off     int64 // next file offset to send
	reqs    chan spliceReq
	replies chan error
	sock    *ringSocket
	// done is closed when the ring's goroutine has closed the ring.
	done chan struct{}
}

type spliceReq struct {
	off int64
	n   int
}

// ringSocket is what the splicing goroutine owns.
type ringSocket struct {
	fileFd, sockFd int
	sock           *os.File
	pipe           [2]int
	chunk          int64
}

func newSplicer(conn *net.TCPConn, fileFd int) (*splicer, error) {
	// A duplicate of the socket in blocking mode: an io_uring splice to a
	// blocking socket waits for room instead of moving a part.
	f, err := conn.File()
	if err != nil {
		return nil, err
	}
	rs := &ringSocket{fileFd: fileFd, sockFd: int(f.Fd()), sock: f}
	if err := unix.SetNonblock(rs.sockFd, false); err != nil {
		f.Close()
		return nil, fmt.Errorf("socket to blocking mode: %w", err)
	}
	if err := unix.Pipe2(rs.pipe[:], unix.O_CLOEXEC); err != nil {
		f.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	size, err := unix.FcntlInt(uintptr(rs.pipe[1]), unix.F_SETPIPE_SZ, splicePipeBytes)
	if err != nil {
		size, err = unix.FcntlInt(uintptr(rs.pipe[1]), unix.F_GETPIPE_SZ, 0)
	}
	page := unix.Getpagesize()
	if err != nil || size < 2*page {
		rs.closeFds()
		return nil, fmt.Errorf("pipe size %d: %v", size, err)
	}
	rs.chunk = int64(size - page)
	s := &splicer{reqs: make(chan spliceReq), replies: make(chan error), sock: rs, done: make(chan struct{})}
	ready := make(chan error)
	go s.run(ready)
	if err := <-ready; err != nil {
		rs.closeFds()
		return nil, err
	}
	return s, nil
}

func (rs *ringSocket) closeFds() {
	unix.Close(rs.pipe[0])
	unix.Close(rs.pipe[1])
	rs.sock.Close()
}

// run owns the ring until the requests end.
func (s *splicer) run(ready chan<- error) {
	defer close(s.done)
	// The thread is never unlocked: it ends with the goroutine, and the
	// ring (SINGLE_ISSUER) with it.
	runtime.LockOSThread()
	r, err := ring.New(8, ring.Options{Flags: ring.ShardFlags, CQEntries: 32})
	ready <- err
	if err != nil {
		return
	}
	defer r.Close()
	for req := range s.reqs {
		s.replies <- s.sock.move(r, req.off, req.n)
	}
}

// send moves n bytes from the current offset to the socket.
func (s *splicer) send(n int) error {
	s.reqs <- spliceReq{off: s.off, n: n}
	if err := <-s.replies; err != nil {
		return err
	}
	s.off += int64(n)
	return nil
}

func (s *splicer) offset() int64 { return s.off }
func (s *splicer) rewind()       { s.off = 0 }

// close ends the ring's goroutine and waits until it has closed the ring,
// so that no splice of this splicer is still running when it returns.
func (s *splicer) close() error {
	close(s.reqs)
	<-s.done
	s.sock.closeFds()
	return nil
}

// move sends n bytes of the file from off, a linked pair per chunk.
func (rs *ringSocket) move(r *ring.Ring, off int64, n int) error {
	for sent := int64(0); sent < int64(n); {
		chunk := min(int64(n)-sent, rs.chunk)
		sqe := r.GetSQE()
		sqe.PrepSplice(rs.fileFd, off+sent, rs.pipe[1], -1, uint32(chunk), unix.SPLICE_F_MOVE)
		sqe.SetUserData(spliceTagIn)
		sqe.SetFlags(ring.SQEIOLink)
		sqe = r.GetSQE()
		sqe.PrepSplice(rs.pipe[0], -1, rs.sockFd, -1, uint32(chunk), unix.SPLICE_F_MOVE)
		sqe.SetUserData(spliceTagOut)
		in, out, err := submitPair(r)
		if err != nil {
			return err
		}
		switch {
		case in < 0:
			return fmt.Errorf("splice from the file: %w", unix.Errno(-in))
		case in == 0:
			return fmt.Errorf("splice from the file at %d: %w", off+sent, io.ErrUnexpectedEOF)
		case out == -int32(unix.ECANCELED):
			out = 0 // a short file -> pipe splice broke the link
		case out < 0:
			return fmt.Errorf("splice to the socket: %w", unix.Errno(-out))
		}
		// Whatever the pipe still holds goes out before the next chunk.
		for left := int64(in - out); left > 0; {
			m, err := rs.drain(r, left)
			if err != nil {
				return err
			}
			left -= m
		}
		sent += int64(in)
	}
	return nil
}

// submitPair submits the queued pair and returns both results.
func submitPair(r *ring.Ring) (in, out int32, err error) {
	if _, err := r.SubmitAndWait(2); err != nil && !errors.Is(err, unix.EINTR) {
		return 0, 0, fmt.Errorf("io_uring submit: %w", err)
	}
	for got := 0; got < 2; got++ {
		cqe, err := r.WaitCQE()
		if err != nil {
			return 0, 0, fmt.Errorf("io_uring wait: %w", err)
		}
		if cqe.UserData == spliceTagIn {
			in = cqe.Res
		} else {
			out = cqe.Res
		}
		r.CQESeen()
	}
	return in, out, nil
}

// drain sends up to n bytes the pipe holds to the socket.
func (rs *ringSocket) drain(r *ring.Ring, n int64) (int64, error) {
	sqe := r.GetSQE()
	sqe.PrepSplice(rs.pipe[0], -1, rs.sockFd, -1, uint32(n), unix.SPLICE_F_MOVE)
	sqe.SetUserData(spliceTagOut)
	if _, err := r.SubmitAndWait(1); err != nil && !errors.Is(err, unix.EINTR) {
		return 0, fmt.Errorf("io_uring submit: %w", err)
	}
	cqe, err := r.WaitCQE()
	if err != nil {
		return 0, fmt.Errorf("io_uring wait: %w", err)
	}
	res := cqe.Res
	r.CQESeen()
	if res <= 0 {
		return 0, fmt.Errorf("splice to the socket: %w", unix.Errno(-res))
	}
	return int64(res), nil
}
