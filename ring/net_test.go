package ring

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSendRecvSocketpair(t *testing.T) {
	r := newShardRing(t, 8)
	a, b := socketpair(t)
	msg := []byte("one request, pipelined")
	got := make([]byte, 64)
	sqe := mustSQE(t, r)
	sqe.PrepRecv(b, got, 0)
	sqe.SetUserData(1)
	sqe = mustSQE(t, r)
	sqe.PrepSend(a, msg, 0)
	sqe.SetUserData(2)
	m := byUserData(t, reap(t, r, 2))
	wantRes(t, "send", m[2], int32(len(msg)))
	wantRes(t, "recv", m[1], int32(len(msg)))
	if !bytes.Equal(got[:len(msg)], msg) {
		t.Fatalf("recv %q", got[:len(msg)])
	}
}

func TestConnectAcceptTCP(t *testing.T) {
	r := newShardRing(t, 8)
	lfd, addr := tcpListener(t)
	cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cfd)
	raw := new(unix.RawSockaddrInet4)
	raw.Family = unix.AF_INET
	raw.Addr = addr.Addr
	raw.Port = uint16(addr.Port>>8) | uint16(addr.Port&0xff)<<8 // network order
	peer := new(unix.RawSockaddrAny)
	peerLen := new(uint32)
	*peerLen = uint32(unsafe.Sizeof(*peer))

	sqe := mustSQE(t, r)
	sqe.PrepAccept(lfd, peer, peerLen, unix.SOCK_CLOEXEC)
	sqe.SetUserData(1)
	sqe = mustSQE(t, r)
	sqe.PrepConnect(cfd, unsafe.Pointer(raw), uint32(unsafe.Sizeof(*raw)))
	sqe.SetUserData(2)
	m := byUserData(t, reap(t, r, 2))
	wantRes(t, "connect", m[2], 0)
	if m[1].Res < 0 {
		t.Fatalf("accept: %v", m[1].Err())
	}
	defer unix.Close(int(m[1].Res))
	if peer.Addr.Family != unix.AF_INET || *peerLen != uint32(unsafe.Sizeof(unix.RawSockaddrInet4{})) {
		t.Fatalf("accept peer address: family %d len %d", peer.Addr.Family, *peerLen)
	}
	runtime.KeepAlive(raw)
}

// TestMultishotAcceptAndRecv arms one accept for many connections and one
// receive per connection that draws from a small provided buffer ring, so
// the buffers must be recycled many times over for the data to get through.
func TestMultishotAcceptAndRecv(t *testing.T) {
	const (
		conns     = 4
		bufSize   = 64
		bufCount  = 4
		perConn   = 64 << 10
		acceptTag = 1 << 32
	)
	r := newShardRing(t, 64)
	lfd, addr := tcpListener(t)
	br, err := r.NewBufRing(7, bufCount, bufSize)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()

	sqe := mustSQE(t, r)
	sqe.PrepMultishotAccept(lfd, unix.SOCK_CLOEXEC)
	sqe.SetUserData(acceptTag)
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	clients := make([]int, conns)
	for i := range clients {
		clients[i] = tcpDial(t, addr)
	}
	serverFD := map[int]int{} // connection index -> accepted fd
	for _, c := range reap(t, r, conns) {
		if c.UserData != acceptTag || c.Res < 0 {
			t.Fatalf("accept completion %+v (%v)", c, c.Err())
		}
		if !c.More() {
			t.Fatal("multishot accept completion without CQE_F_MORE")
		}
		serverFD[len(serverFD)] = int(c.Res)
		t.Cleanup(func() { unix.Close(int(c.Res)) })
	}

	armRecv := func(conn int) {
		sqe := mustSQE(t, r)
		sqe.PrepRecvMultishot(serverFD[conn], br.GroupID(), 0)
		sqe.SetUserData(uint64(conn))
	}
	for i := range conns {
		armRecv(i)
	}
	// Writers on other goroutines: each sends a distinct pattern.
	pattern := func(conn, i int) byte { return byte(conn*31 + i*7) }
	writeErr := make(chan error, conns)
	for i, fd := range clients {
		go func() {
			buf := make([]byte, perConn)
			for j := range buf {
				buf[j] = pattern(i, j)
			}
			for len(buf) > 0 {
				n, err := unix.Write(fd, buf)
				if err != nil {
					writeErr <- err
					return
				}
				buf = buf[n:]
			}
			writeErr <- unix.Shutdown(fd, unix.SHUT_WR)
		}()
	}

	received := make([]int, conns)
	done, rearms, recycled := 0, 0, 0
	for done < conns {
		c := reap(t, r, 1)[0]
		conn := int(c.UserData)
		switch {
		case c.Res == -int32(unix.ENOBUFS):
			// Every buffer was in use: the receive ended; hand the
			// buffers back (already done below) and arm it again.
			if c.More() {
				t.Fatal("ENOBUFS completion still armed")
			}
			rearms++
			armRecv(conn)
		case c.Res < 0:
			t.Fatalf("recv on conn %d: %v", conn, c.Err())
		case c.Res == 0:
			if c.More() {
				t.Fatal("EOF completion still armed")
			}
			done++
		default:
			if c.Flags&CQEFBuffer == 0 {
				t.Fatal("recv completion without CQE_F_BUFFER")
			}
			for j, b := range br.Bytes(c.BufferID(), int(c.Res)) {
				if want := pattern(conn, received[conn]+j); b != want {
					t.Fatalf("conn %d byte %d: %d, want %d", conn, received[conn]+j, b, want)
				}
			}
			received[conn] += int(c.Res)
			br.Recycle(c.BufferID())
			br.Publish()
			recycled++
			if !c.More() {
				rearms++
				armRecv(conn)
			}
		}
		if _, err := r.Submit(); err != nil {
			t.Fatal(err)
		}
	}
	for range conns {
		if err := <-writeErr; err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range received {
		if n != perConn {
			t.Fatalf("conn %d received %d bytes, want %d", i, n, perConn)
		}
	}
	if recycled < conns*perConn/bufSize {
		t.Fatalf("recycled %d buffers, want at least %d", recycled, conns*perConn/bufSize)
	}
	t.Logf("recycled %d buffers, re-armed %d times", recycled, rearms)
}

func TestSendZCNotification(t *testing.T) {
	r := newShardRing(t, 8)
	lfd, addr := tcpListener(t)
	cfd := tcpDial(t, addr)
	sfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sfd)
	payload, err := AllocBuffers(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeBuffers(payload)
	for i := range payload {
		payload[i] = byte(i * 13)
	}
	sqe := mustSQE(t, r)
	sqe.PrepSendZC(sfd, payload, 0, 0)
	sqe.SetUserData(9)
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(payload))
	buf := make([]byte, 16<<10)
	for len(got) < len(payload) {
		n, err := unix.Read(cfd, buf)
		if err != nil || n == 0 {
			t.Fatalf("read: %d %v", n, err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("zero-copy send delivered different bytes")
	}
	cqes := reap(t, r, 2)
	if cqes[0].UserData != 9 || cqes[0].Res != int32(len(payload)) || !cqes[0].More() || cqes[0].Notif() {
		t.Fatalf("first send_zc CQE %+v", cqes[0])
	}
	if cqes[1].UserData != 9 || !cqes[1].Notif() || cqes[1].More() {
		t.Fatalf("notification CQE %+v", cqes[1])
	}
}

// TestLinkedSpliceFileToSocket moves a file's bytes to a socket through a
// pipe with two linked SPLICE SQEs, never through user memory: the fetch
// path of the broker.
func TestLinkedSpliceFileToSocket(t *testing.T) {
	r := newShardRing(t, 8)
	f := tempFile(t)
	content := bytes.Repeat([]byte("frame-bytes-"), 4096) // 48 KiB
	if _, err := f.WriteAt(content, 0); err != nil {
		t.Fatal(err)
	}
	prd, pwr := pipe(t)
	if _, err := unix.FcntlInt(uintptr(pwr), unix.F_SETPIPE_SZ, 1<<20); err != nil {
		t.Fatal(err)
	}
	a, b := socketpair(t)
	const off, n = 1000, 40000
	sqe := mustSQE(t, r)
	sqe.PrepSplice(int(f.Fd()), off, pwr, -1, n, unix.SPLICE_F_MOVE)
	sqe.SetFlags(SQEIOLink)
	sqe.SetUserData(1)
	sqe = mustSQE(t, r)
	sqe.PrepSplice(prd, -1, a, -1, n, unix.SPLICE_F_MOVE)
	sqe.SetUserData(2)
	done := make(chan []byte)
	go func() {
		got := make([]byte, 0, n)
		buf := make([]byte, 8192)
		for len(got) < n {
			k, err := unix.Read(b, buf)
			if err != nil || k == 0 {
				break
			}
			got = append(got, buf[:k]...)
		}
		done <- got
	}()
	m := byUserData(t, reap(t, r, 2))
	wantRes(t, "splice file->pipe", m[1], n)
	wantRes(t, "splice pipe->socket", m[2], n)
	if got := <-done; !bytes.Equal(got, content[off:off+n]) {
		t.Fatalf("socket got %d bytes, differing from the file range", len(got))
	}
}

// TestLinkBreaksOnFailure: a failed head cancels the rest of its chain.
func TestLinkBreaksOnFailure(t *testing.T) {
	r := newShardRing(t, 8)
	buf := make([]byte, 8)
	sqe := mustSQE(t, r)
	sqe.PrepRead(1<<20, buf, 0)
	sqe.SetFlags(SQEIOLink)
	sqe.SetUserData(1)
	sqe = mustSQE(t, r)
	sqe.PrepNop()
	sqe.SetUserData(2)
	m := byUserData(t, reap(t, r, 2))
	if !errors.Is(m[1].Err(), unix.EBADF) || !errors.Is(m[2].Err(), unix.ECANCELED) {
		t.Fatalf("chain: head %v, next %v", m[1].Err(), m[2].Err())
	}
	runtime.KeepAlive(buf)
}

func TestShutdownAndClose(t *testing.T) {
	r := newShardRing(t, 8)
	a, b := socketpair(t)
	sqe := mustSQE(t, r)
	sqe.PrepShutdown(a, unix.SHUT_WR)
	wantRes(t, "shutdown", reap(t, r, 1)[0], 0)
	buf := make([]byte, 4)
	if n, err := unix.Read(b, buf); n != 0 || err != nil {
		t.Fatalf("peer read after shutdown: %d %v, want EOF", n, err)
	}

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	sqe = mustSQE(t, r)
	sqe.PrepClose(p[0])
	wantRes(t, "close", reap(t, r, 1)[0], 0)
	if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("fd still open after close: %v", err)
	}

	// A fixed-file slot closes too.
	rd, wr := pipe(t)
	if err := r.RegisterFiles([]int32{int32(rd)}); err != nil {
		t.Fatal(err)
	}
	sqe = mustSQE(t, r)
	sqe.PrepCloseFixed(0)
	wantRes(t, "close fixed", reap(t, r, 1)[0], 0)
	sqe = mustSQE(t, r)
	sqe.PrepRead(0, buf, ^uint64(0))
	sqe.SetFlags(SQEFixedFile)
	if c := reap(t, r, 1)[0]; !errors.Is(c.Err(), unix.EBADF) {
		t.Fatalf("read from a closed slot: %v, want EBADF", c.Err())
	}
	_ = wr
}
