package main

import (
	"fmt"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendfiler sends chunks of a file to a TCP socket with sendfile(2). The
// socket stays non-blocking under Go's poller: when its buffer is full the
// sender parks until the socket is writable rather than spinning. The raw
// connection and the callback are made once, so a chunk allocates nothing.
type sendfiler struct {
	rc     syscall.RawConn
	fileFd int
	// off is the next file offset to send; sendfile advances it.
	off int64

	// State of the chunk in progress, used by step.
	count, sent int
	err         error
	stepFn      func(fd uintptr) bool
}

func newSendfiler(conn *net.TCPConn, fileFd int) (*sendfiler, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &sendfiler{rc: rc, fileFd: fileFd}
	s.stepFn = s.step
	return s, nil
}

// send moves count bytes from the current offset to the socket.
func (s *sendfiler) send(count int) error {
	s.count, s.sent, s.err = count, 0, nil
	if err := s.rc.Write(s.stepFn); err != nil {
		return fmt.Errorf("sendfile: %w", err)
	}
	return s.err
}

func (s *sendfiler) offset() int64 { return s.off }
func (s *sendfiler) rewind()       { s.off = 0 }
func (s *sendfiler) close() error  { return nil }

// step runs under the poller; false asks it to wait for writability.
func (s *sendfiler) step(fd uintptr) bool {
	for s.sent < s.count {
		n, err := unix.Sendfile(int(fd), s.fileFd, &s.off, s.count-s.sent)
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
			continue
		case err != nil:
			s.err = fmt.Errorf("sendfile: %w", err)
			return true
		case n == 0:
			// The file ended before the chunk did.
			s.err = fmt.Errorf("sendfile at offset %d: %w", s.off, io.ErrUnexpectedEOF)
			return true
		}
		s.sent += n
	}
	return true
}
