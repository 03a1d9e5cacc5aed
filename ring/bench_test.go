package ring

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkNopRoundTrip measures NOPs through the ring: submitted in batches
// of the given size with one io_uring_enter per batch, then reaped.
func BenchmarkNopRoundTrip(b *testing.B) {
	for _, batch := range []int{1, 32, 256} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			r := newShardRing(b, 256)
			cqes := make([]*CQE, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(batch, b.N-done)
				for range n {
					r.GetSQE().PrepNop()
				}
				if _, err := r.SubmitAndWait(uint32(n)); err != nil {
					b.Fatal(err)
				}
				got := r.PeekBatchCQE(cqes)
				r.CQAdvance(uint32(got))
				done += got
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "nops/s")
		})
	}
}

// User data layout of the echo server's operations.
const (
	echoAccept = 1 << 60
	echoRecv   = 2 << 60
	echoSend   = 3 << 60
	echoKind   = 0xf << 60
)

// ringEcho is a one-shard TCP echo server on the ring: multishot accept,
// multishot receive into a provided buffer ring, and a send straight out of
// the receive buffer, which is recycled when the send completes. It serves
// until its one connection closes.
func ringEcho(lfd int, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := New(256, Options{Flags: ShardFlags, CQEntries: 1024})
	if err != nil {
		started <- err
		return
	}
	defer r.Close()
	br, err := r.NewBufRing(1, 256, 64<<10)
	if err != nil {
		started <- err
		return
	}
	defer br.Close()
	sqe := r.GetSQE()
	sqe.PrepMultishotAccept(lfd, unix.SOCK_CLOEXEC)
	sqe.SetUserData(echoAccept)
	if _, err := r.Submit(); err != nil {
		started <- err
		return
	}
	started <- nil
	conn := -1
	defer func() {
		if conn >= 0 {
			unix.Close(conn)
		}
	}()
	// sent[bid] of size[bid] bytes of buffer bid went out so far.
	var sent [256]int
	var size [256]int
	// One io_uring_enter per turn: submit what the last batch of
	// completions produced and wait for the next.
	var batch [64]*CQE
	for {
		if _, err := r.SubmitAndWait(1); err != nil {
			return
		}
		n := r.PeekBatchCQE(batch[:])
		for _, c := range batch[:n] {
			if !echoHandle(r, br, *c, &conn, &sent, &size) {
				return
			}
		}
		r.CQAdvance(uint32(n))
	}
}

// echoHandle handles one completion of ringEcho; false ends the server.
func echoHandle(r *Ring, br *BufRing, cqe CQE, conn *int, sent, size *[256]int) bool {
	switch cqe.UserData & echoKind {
	case echoAccept:
		if cqe.Res < 0 {
			return false
		}
		*conn = int(cqe.Res)
		// As Go's net package does for its connections.
		unix.SetsockoptInt(*conn, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		sqe := r.GetSQE()
		sqe.PrepRecvMultishot(*conn, br.GroupID(), 0)
		sqe.SetUserData(echoRecv)
	case echoRecv:
		if cqe.Res <= 0 && cqe.Res != -int32(unix.ENOBUFS) {
			return false // peer closed or failed
		}
		if cqe.Res > 0 {
			bid := cqe.BufferID()
			sent[bid], size[bid] = 0, int(cqe.Res)
			sqe := r.GetSQE()
			sqe.PrepSend(*conn, br.Bytes(bid, size[bid]), unix.MSG_NOSIGNAL)
			sqe.SetUserData(echoSend | uint64(bid))
		}
		if !cqe.More() {
			sqe := r.GetSQE()
			sqe.PrepRecvMultishot(*conn, br.GroupID(), 0)
			sqe.SetUserData(echoRecv)
		}
	case echoSend:
		bid := uint16(cqe.UserData)
		if cqe.Res < 0 {
			return false
		}
		sent[bid] += int(cqe.Res)
		if sent[bid] < size[bid] { // short send: send the rest
			sqe := r.GetSQE()
			sqe.PrepSend(*conn, br.Buffer(bid)[sent[bid]:size[bid]], unix.MSG_NOSIGNAL)
			sqe.SetUserData(echoSend | uint64(bid))
			break
		}
		br.Recycle(bid)
		br.Publish()
	}
	return true
}

// netEcho is the same echo server on Go's net package.
func netEcho(ln net.Listener, started chan<- error) {
	started <- nil
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	io.Copy(c, c)
}

// BenchmarkEcho compares a TCP echo over loopback served by the ring against
// the same echo served by Go's net package, with the same client, in one
// run: one message at a time (latency-bound) and bursts of 32 (a pipelining
// client).
func BenchmarkEcho(b *testing.B) {
	for _, c := range []struct{ msgSize, depth int }{{64, 1}, {4096, 1}, {64, 32}, {4096, 32}} {
		msgSize, depth := c.msgSize, c.depth
		for _, server := range []string{"ring", "net"} {
			b.Run(fmt.Sprintf("server=%s/msg=%d/depth=%d", server, msgSize, depth), func(b *testing.B) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				started := make(chan error, 1)
				if server == "ring" {
					f, err := ln.(*net.TCPListener).File()
					if err != nil {
						b.Fatal(err)
					}
					defer f.Close()
					go ringEcho(int(f.Fd()), started)
				} else {
					go netEcho(ln, started)
				}
				if err := <-started; err != nil {
					b.Fatal(err)
				}
				// The client is the same for both servers: a blocking
				// socket on a locked thread, outside Go's netpoller, as a
				// client in another process would be.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				addr := ln.Addr().(*net.TCPAddr)
				fd := tcpDial(b, &unix.SockaddrInet4{Port: addr.Port, Addr: [4]byte{127, 0, 0, 1}})
				unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
				// depth messages go out in one write and their echoes are
				// read back before the next burst: a pipelining client.
				msg := make([]byte, msgSize*depth)
				reply := make([]byte, msgSize*depth)
				b.SetBytes(int64(msgSize * depth))
				b.ResetTimer()
				for range b.N {
					if err := writeAll(fd, msg); err != nil {
						b.Fatal(err)
					}
					if err := readFull(fd, reply); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*depth)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b = b[n:]
	}
	return nil
}
