package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// outEvent is one callback an outbound connection's handler got.
type outEvent struct {
	kind       string // "connected", "message", "closed"
	ref        OutRef
	msg, tail  []byte
	err        error
	onShard    bool
	recvBufCap int // for "closed": the slot's receive buffer capacity afterwards
}

// outRecorder copies every callback into a channel, checking each runs on
// its shard's thread.
type outRecorder struct {
	sh     *Shard
	events chan outEvent
	// onConnected, when set, runs inside OutboundConnected.
	onConnected func(sh *Shard, ref OutRef)
}

func newOutRecorder(sh *Shard) *outRecorder {
	return &outRecorder{sh: sh, events: make(chan outEvent, 1024)}
}

func (r *outRecorder) onThread() bool { return unix.Gettid() == r.sh.ThreadID() }

func (r *outRecorder) OutboundConnected(ref OutRef) {
	r.events <- outEvent{kind: "connected", ref: ref, onShard: r.onThread()}
	if r.onConnected != nil {
		r.onConnected(r.sh, ref)
	}
}

func (r *outRecorder) OutboundMessage(ref OutRef, msg, tail []byte) {
	r.events <- outEvent{kind: "message", ref: ref, msg: bytes.Clone(msg), tail: bytes.Clone(tail), onShard: r.onThread()}
}

func (r *outRecorder) OutboundClosed(ref OutRef, err error) {
	capNow := cap(r.sh.outs[ref.slot].rbuf)
	r.events <- outEvent{kind: "closed", ref: ref, err: err, onShard: r.onThread(), recvBufCap: capNow}
}

func (r *outRecorder) next(t *testing.T) outEvent {
	t.Helper()
	select {
	case ev := <-r.events:
		if !ev.onShard {
			t.Fatalf("%s callback ran off the shard's thread", ev.kind)
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no outbound event")
	}
	return outEvent{}
}

// waitClosed skips connected and message events until the close.
func (r *outRecorder) waitClosed(t *testing.T) outEvent {
	t.Helper()
	for {
		if ev := r.next(t); ev.kind == "closed" {
			return ev
		}
	}
}

// onShard runs fn on sh's thread and waits for it.
func onShard(t *testing.T, sh *Shard, fn func(sh *Shard)) {
	t.Helper()
	done := make(chan struct{})
	if err := sh.Post(func(sh *Shard) { fn(sh); close(done) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("shard did not run the posted work")
	}
}

func dialOut(t *testing.T, sh *Shard, cfg OutboundConfig) OutRef {
	t.Helper()
	var ref OutRef
	var err error
	onShard(t, sh, func(sh *Shard) { ref, err = sh.Dial(cfg) })
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func goListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func addrOf(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// tailOf reads the test protocol's tail size: a response's body is
// [id u32][tail bytes u32].
func tailOf(msg []byte) (int, error) {
	if len(msg) < lengthPrefixBytes+8 {
		return 0, errors.New("response too short")
	}
	return int(binary.LittleEndian.Uint32(msg[lengthPrefixBytes+4:])), nil
}

func tailPattern(id, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(id*31 + i*7 + i>>9)
	}
	return b
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestOutboundPipelinedResponsesWithTails: requests queued before and after
// the connect go out in order; the peer answers each with an envelope and
// a tail of its own size (none, small, several MiB), writing the length
// prefixes split and the tails in small pieces, and every response comes
// back whole, in order, with its tail.
func TestOutboundPipelinedResponsesWithTails(t *testing.T) {
	s := startServer(t, echoHandler{}, 1)
	sh := s.Shards()[0]
	ln := goListener(t)
	tails := []int{0, 1, 100, 3 << 20, 0, 70_000, 5, 0}
	const splitTail = 3
	peerErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peerErr <- err
			return
		}
		defer c.Close()
		written := uint64(0)
		for i := range tails {
			req, err := readFrame(c)
			if err != nil || binary.LittleEndian.Uint32(req) != uint32(i) {
				peerErr <- errors.Join(errors.New("request out of order"), err)
				return
			}
			env := frame(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, uint32(i)), uint32(tails[i])))
			c.Write(env[:2])
			c.Write(env[2:])
			written += uint64(len(env))
			tail := tailPattern(i, tails[i])
			for sent := 0; len(tail) > 0; sent++ {
				n := min(len(tail), 4096)
				if _, err := c.Write(tail[:n]); err != nil {
					peerErr <- err
					return
				}
				tail = tail[n:]
				written += uint64(n)
				// The large tail is split across receives by
				// construction: the rest is sent only once the shard
				// has received everything before it.
				if i == splitTail && sent == 0 {
					if err := awaitBytesIn(sh, written); err != nil {
						peerErr <- err
						return
					}
				}
			}
		}
		peerErr <- nil
	}()
	rec := newOutRecorder(sh)
	ref := dialOut(t, sh, OutboundConfig{Addr: addrOf(t, ln.Addr()), Handler: rec, TailBytes: tailOf})
	// Half the requests are queued before the connect completes, in one
	// send of several whole requests; the rest once it has.
	var first []byte
	for i := range len(tails) / 2 {
		first = append(first, frame(body(i, 16))...)
	}
	onShard(t, sh, func(sh *Shard) {
		if err := sh.SendOutbound(ref, first); err != nil {
			t.Error(err)
		}
	})
	if ev := rec.next(t); ev.kind != "connected" || ev.ref != ref {
		t.Fatalf("first event %+v, want connected", ev)
	}
	onShard(t, sh, func(sh *Shard) {
		for i := len(tails) / 2; i < len(tails); i++ {
			if err := sh.SendOutbound(ref, frame(body(i, 16+i))); err != nil {
				t.Error(err)
			}
		}
	})
	for i, n := range tails {
		ev := rec.next(t)
		if ev.kind != "message" {
			t.Fatalf("response %d: event %s (%v)", i, ev.kind, ev.err)
		}
		if id := binary.LittleEndian.Uint32(ev.msg[lengthPrefixBytes:]); id != uint32(i) {
			t.Fatalf("response %d came as %d", i, id)
		}
		if !bytes.Equal(ev.tail, tailPattern(i, n)) {
			t.Fatalf("response %d: tail of %d bytes differs (want %d)", i, len(ev.tail), n)
		}
	}
	if err := <-peerErr; err != nil {
		t.Fatal(err)
	}
	// The peer closed after its last response, between messages.
	if ev := rec.waitClosed(t); !errors.Is(ev.err, errOutboundPeerClosed) {
		t.Fatalf("closed with %v, want the peer's close", ev.err)
	}
	onShard(t, sh, func(sh *Shard) {
		if err := sh.SendOutbound(ref, frame(body(0, 4))); !errors.Is(err, errOutboundClosed) {
			t.Errorf("send on a closed connection: %v", err)
		}
		if sh.outOpen != 0 {
			t.Errorf("%d outbound connections open after the close", sh.outOpen)
		}
	})
}

// awaitBytesIn waits until sh has received want bytes on its outbound
// connections, so a peer can hold back the rest of a message until the
// part before it has been taken in a receive of its own.
func awaitBytesIn(sh *Shard, want uint64) error {
	deadline := time.Now().Add(10 * time.Second)
	for sh.Stats().OutboundBytesIn.Load() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("shard received %d bytes, want %d", sh.Stats().OutboundBytesIn.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// TestOutboundConnectRefused: a port nobody listens on closes the
// connection with the connect's error, and nothing is left open.
func TestOutboundConnectRefused(t *testing.T) {
	s := startServer(t, echoHandler{}, 1)
	sh := s.Shards()[0]
	ln := goListener(t)
	addr := addrOf(t, ln.Addr())
	ln.Close()
	rec := newOutRecorder(sh)
	dialOut(t, sh, OutboundConfig{Addr: addr, Handler: rec})
	ev := rec.next(t)
	if ev.kind != "closed" || !errors.Is(ev.err, unix.ECONNREFUSED) {
		t.Fatalf("event %s with %v, want closed with ECONNREFUSED", ev.kind, ev.err)
	}
	if n := sh.Stats().OutboundOpen.Load(); n != 0 {
		t.Fatalf("%d outbound connections open", n)
	}
}

// peerWrites accepts one connection on ln, writes b, and closes it
// (or, with hold set, keeps it open until the test ends).
func peerWrites(t *testing.T, ln net.Listener, b []byte, hold bool) {
	t.Helper()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(b)
		if hold {
			t.Cleanup(func() { c.Close() })
			return
		}
		c.Close()
	}()
}

func respFrame(id, tail int) []byte {
	return frame(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, uint32(id)), uint32(tail)))
}

// TestOutboundClosesOnBadInput: a peer that closes mid-message or mid-tail,
// a length prefix above the bound (nothing is allocated for it), a tail
// above its bound, and a TailBytes error each close the connection with
// their reason.
func TestOutboundClosesOnBadInput(t *testing.T) {
	s := startServer(t, echoHandler{}, 1)
	sh := s.Shards()[0]
	huge := binary.LittleEndian.AppendUint32(nil, 8<<20+1)
	huge = append(huge, make([]byte, 1000)...)
	badTail := errors.New("unreadable response")
	cases := []struct {
		name  string
		wire  []byte
		hold  bool
		cfg   OutboundConfig
		want  error
		count int // responses delivered before the close
	}{
		{name: "mid-envelope", wire: append(respFrame(0, 0), respFrame(1, 0)[:7]...), want: errOutboundPeerClosedMid, count: 1},
		{name: "mid-tail", wire: append(respFrame(0, 10_000), make([]byte, 9_999)...), want: errOutboundPeerClosedMid},
		{name: "prefix above bound", wire: huge, hold: true, cfg: OutboundConfig{MaxMessageBytes: 8 << 20}, want: errOutboundMessageTooBig},
		{name: "tail above bound", wire: respFrame(0, 1<<20+1), hold: true, cfg: OutboundConfig{MaxTailBytes: 1 << 20}, want: errOutboundTailTooBig},
		{name: "tail error", wire: append(respFrame(0, 0), respFrame(1, 0)...), hold: true,
			cfg: OutboundConfig{TailBytes: func(msg []byte) (int, error) {
				if binary.LittleEndian.Uint32(msg[lengthPrefixBytes:]) == 1 {
					return 0, badTail
				}
				return 0, nil
			}}, want: badTail, count: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln := goListener(t)
			peerWrites(t, ln, tc.wire, tc.hold)
			rec := newOutRecorder(sh)
			cfg := tc.cfg
			cfg.Addr, cfg.Handler = addrOf(t, ln.Addr()), rec
			if cfg.TailBytes == nil {
				cfg.TailBytes = tailOf
			}
			dialOut(t, sh, cfg)
			messages := 0
			for {
				ev := rec.next(t)
				if ev.kind == "message" {
					messages++
					continue
				}
				if ev.kind != "closed" {
					continue
				}
				if !errors.Is(ev.err, tc.want) {
					t.Fatalf("closed with %v, want %v", ev.err, tc.want)
				}
				if messages != tc.count {
					t.Fatalf("%d responses delivered, want %d", messages, tc.count)
				}
				if ev.recvBufCap > outboundRecvBytesInitial {
					t.Fatalf("receive buffer grew to %d bytes for input it refused", ev.recvBufCap)
				}
				return
			}
		})
	}
}

// TestOutboundConnectTimeout dials a listener whose accept queue is full
// (backlog 0, one connection queued and never accepted): the kernel drops
// the SYN, the connect hangs, and the shard's tick ends it.
func TestOutboundConnectTimeout(t *testing.T) {
	s := startServer(t, echoHandler{}, 1)
	sh := s.Shards()[0]
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(lfd) })
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 0); err != nil {
		t.Fatal(err)
	}
	port, err := boundPort(lfd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	// Fill the accept queue: dial until one connect does not complete.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr.String(), 300*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if i == 8 {
			t.Fatal("the accept queue never filled")
		}
	}
	rec := newOutRecorder(sh)
	dialOut(t, sh, OutboundConfig{Addr: addr, Handler: rec, ConnectTimeoutMs: 300})
	// The error names the cause; when it fires is the shard's clock's
	// business (its tick), not a pass/fail timing.
	ev := rec.next(t)
	if ev.kind != "closed" || !errors.Is(ev.err, errOutboundConnectTimeout) {
		t.Fatalf("event %s with %v, want closed by the connect timeout", ev.kind, ev.err)
	}
}

// TestOutboundIdleTimeout: a peer that takes requests and never answers is
// closed after the idle limit.
func TestOutboundIdleTimeout(t *testing.T) {
	s := startServer(t, echoHandler{}, 1)
	sh := s.Shards()[0]
	ln := goListener(t)
	peerWrites(t, ln, nil, true)
	rec := newOutRecorder(sh)
	rec.onConnected = func(sh *Shard, ref OutRef) {
		if err := sh.SendOutbound(ref, frame(body(0, 8))); err != nil {
			t.Error(err)
		}
	}
	dialOut(t, sh, OutboundConfig{Addr: addrOf(t, ln.Addr()), Handler: rec, IdleTimeoutMs: 300})
	if ev := rec.waitClosed(t); !errors.Is(ev.err, errOutboundIdle) {
		t.Fatalf("closed with %v, want the idle limit", ev.err)
	}
}

// TestOutboundToShardAndStop: a shard dials another server's shard over
// Strata's framing and gets its answers in order; a peer that never reads
// fills the send queue (sends stay in flight), which is refused once
// full; then the dialing server stops with both connections open, closes
// them, tells their handlers, and returns.
func TestOutboundToShardAndStop(t *testing.T) {
	echo := startServer(t, echoHandler{}, 1)
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: echoHandler{}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			s.Stop()
		}
	})
	sh := s.Shards()[0]

	toShard := newOutRecorder(sh)
	ref := dialOut(t, sh, OutboundConfig{Addr: echo.Addr(), Handler: toShard})
	const n = 200
	onShard(t, sh, func(sh *Shard) {
		for i := range n {
			if err := sh.SendOutbound(ref, frame(body(i, 8+i))); err != nil {
				t.Error(err)
			}
		}
	})
	if ev := toShard.next(t); ev.kind != "connected" {
		t.Fatalf("event %s, want connected", ev.kind)
	}
	for i := range n {
		ev := toShard.next(t)
		if ev.kind != "message" || !bytes.Equal(ev.msg[lengthPrefixBytes:], body(i, 8+i)) || len(ev.tail) != 0 {
			t.Fatalf("answer %d: %s, differs", i, ev.kind)
		}
	}

	ln := goListener(t)
	peerWrites(t, ln, nil, true) // accepts and never reads
	stalled := newOutRecorder(sh)
	stalledRef := dialOut(t, sh, OutboundConfig{Addr: addrOf(t, ln.Addr()), Handler: stalled})
	if ev := stalled.next(t); ev.kind != "connected" {
		t.Fatalf("event %s, want connected", ev.kind)
	}
	chunk := frame(make([]byte, 256<<10))
	full := false
	for range 4096 {
		var err error
		onShard(t, sh, func(sh *Shard) { err = sh.SendOutbound(stalledRef, chunk) })
		if errors.Is(err, errOutboundQueueFull) {
			full = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatal("the send queue of a peer that never reads never filled")
	}
	onShard(t, sh, func(sh *Shard) {
		if o := sh.outOf(stalledRef); o == nil || !o.sending {
			t.Error("no send in flight to the peer that never reads")
		}
	})

	done := make(chan error, 1)
	go func() { done <- s.Stop() }()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stop did not return with outbound connections open")
	}
	for _, rec := range []*outRecorder{toShard, stalled} {
		if ev := rec.waitClosed(t); !errors.Is(ev.err, errShardStopping) {
			t.Fatalf("closed with %v, want the shard stopping", ev.err)
		}
	}
	if n := sh.Stats().OutboundOpen.Load(); n != 0 {
		t.Fatalf("%d outbound connections open after stop", n)
	}
}

// TestOutboundUntouchedByInboundIdleCloser: the idle limit of accepted
// connections closes an idle client but not an idle outbound connection
// of the same shard (which has no requests outstanding).
func TestOutboundUntouchedByInboundIdleCloser(t *testing.T) {
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: echoHandler{},
		ConnIdleMax: 200 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	sh := s.Shards()[0]
	ln := goListener(t)
	peerWrites(t, ln, nil, true)
	rec := newOutRecorder(sh)
	dialOut(t, sh, OutboundConfig{Addr: addrOf(t, ln.Addr()), Handler: rec})
	if ev := rec.next(t); ev.kind != "connected" {
		t.Fatalf("event %s, want connected", ev.kind)
	}
	c := dial(t, s) // an idle client, for the idle closer to find
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle client: %v, want EOF from the idle closer", err)
	}
	select {
	case ev := <-rec.events:
		t.Fatalf("outbound connection got %s (%v) from the idle closer", ev.kind, ev.err)
	default:
	}
	if n := sh.Stats().OutboundOpen.Load(); n != 1 {
		t.Fatalf("%d outbound connections open, want 1", n)
	}
}
