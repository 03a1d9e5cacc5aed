package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/ring"
)

// Outbound connections: a shard dialing another broker (a follower's
// fetches from a partition leader). Like an accepted connection, each one
// lives in a slot of its shard with a generation, and every operation on
// its socket is an SQE on the shard's ring: IORING_OP_CONNECT, one plain
// RECV at a time into the connection's own buffer, SENDs of what the
// owner queued, and on close a cancel and a shutdown. The table is apart
// from the accepted connections' so the inbound idle-closer, the drain's
// wait for answers and the request budget never see these.
//
// Everything here is called on the shard's own thread only: from a
// handler's Serve, Tick or completion, from an OutboundHandler callback, or
// from a function run through Post.

// OutboundHandler receives an outbound connection's events, on its shard's
// thread. It must not block, as a Handler must not.
type OutboundHandler interface {
	// OutboundConnected says the connect completed: what was queued with
	// SendOutbound before now starts going out.
	OutboundConnected(ref OutRef)
	// OutboundMessage delivers one whole response, msg (its length prefix
	// included), and the raw bytes that followed it on the wire (tail, as
	// many as TailBytes said). Both are valid only during the call.
	OutboundMessage(ref OutRef, msg, tail []byte)
	// OutboundClosed says the connection is gone: the connect failed or
	// timed out, the peer closed, an error, a bound passed, the idle limit,
	// the shard stopping, or CloseOutbound. It comes exactly once per
	// successful Dial, after every SQE on the socket has completed and the
	// socket is closed, never from inside CloseOutbound or SendOutbound;
	// from then on ref names nothing.
	OutboundClosed(ref OutRef, err error)
}

// OutboundConfig describes one outbound connection.
type OutboundConfig struct {
	Addr    netip.AddrPort
	Handler OutboundHandler
	// TailBytes says how many raw bytes follow a whole message (a fetch
	// answer's frames follow its envelope); nil means none ever do. An
	// error, or a count above MaxTailBytes, closes the connection.
	TailBytes func(msg []byte) (int, error)
	// MaxMessageBytes bounds one message, length prefix excluded (0:
	// outboundMessageBytesMaxDefault); a larger length prefix closes the
	// connection before anything is allocated for it.
	MaxMessageBytes int
	// MaxTailBytes bounds one message's tail (0: outboundTailBytesMaxDefault).
	MaxTailBytes int
	// ConnectTimeoutMs bounds the connect (0: outboundConnectTimeoutMsDefault).
	ConnectTimeoutMs int64
	// IdleTimeoutMs closes the connection when nothing was received for
	// this long while requests are outstanding (sent or queued, not yet
	// answered: every request gets one response). 0: no limit.
	IdleTimeoutMs int64
}

// OutRef names an outbound connection across time, as ConnRef names an
// accepted one: a slot in the shard's outbound table and the generation
// of the connection in it.
type OutRef struct {
	slot uint32
	gen  uint32
}

const (
	// outboundMessageBytesMaxDefault: the largest envelope Strata sends.
	outboundMessageBytesMaxDefault = requestBytesMax
	// outboundTailBytesMaxDefault bounds a fetch answer's frames.
	outboundTailBytesMaxDefault = 64 << 20
	// outboundBytesLimit is the most either bound may be set to.
	outboundBytesLimit = 1 << 30
	// outboundConnectTimeoutMsDefault bounds a connect; the shard's tick
	// checks it, so a timeout fires up to tickInterval late.
	outboundConnectTimeoutMsDefault = 10_000
	// outboundSendQueueBytesMax bounds the bytes queued on one outbound
	// connection and not yet sent; SendOutbound refuses what would pass it.
	outboundSendQueueBytesMax = 4 << 20
	// outboundRecvBytesInitial is an outbound connection's first receive
	// buffer; it grows, at most to the largest message and tail the
	// connection accepts, as messages need.
	outboundRecvBytesInitial = 64 << 10
	// outboundPerShardMax bounds a shard's outbound table.
	outboundPerShardMax = 4096
)

var (
	errOutboundClosed         = errors.New("server: outbound connection closed")
	errOutboundQueueFull      = errors.New("server: outbound send queue full")
	errOutboundNotWhole       = errors.New("server: outbound send is not whole length-prefixed messages")
	errOutboundConnectTimeout = errors.New("server: outbound connect timed out")
	errOutboundIdle           = errors.New("server: outbound connection idle past its limit with requests outstanding")
	errOutboundPeerClosed     = errors.New("server: outbound peer closed the connection")
	errOutboundPeerClosedMid  = errors.New("server: outbound peer closed the connection mid-message")
	errOutboundMessageTooBig  = errors.New("server: outbound message above its bound")
	errOutboundTailTooBig     = errors.New("server: outbound message tail above its bound")
	errOutboundByRequest      = errors.New("server: outbound connection closed by its owner")
	errShardStopping          = errors.New("server: shard stopping")
)

type outState uint8

const (
	outConnecting outState = iota + 1
	outOpen
	outClosing
)

// outConn is one outbound connection, owned by its shard.
type outConn struct {
	slot  uint32
	gen   uint32
	fd    int
	state outState
	err   error // why it closes, for OutboundClosed

	handler     OutboundHandler
	tailBytes   func([]byte) (int, error)
	addr        netip.AddrPort
	msgMax      int
	tailMax     int
	idleMs      int64
	deadlineMs  int64 // when a connect still in progress times out
	lastRecvMs  int64
	outstanding int // requests queued or sent and not yet answered
	opsInFlight int

	// sa is the peer's address for the connect SQE: it must stay put
	// until the SQE is submitted, when the kernel copies it.
	sa    unix.RawSockaddrAny
	saLen uint32

	// Receiving: rbuf[rstart:rend] holds bytes not yet delivered; tail is
	// the tail size of the whole message at rstart, -1 until asked.
	rbuf    []byte
	rstart  int
	rend    int
	tail    int
	recving bool

	// Sending: sendBuf[sendOff:] is in flight or next; queued is what
	// came since, sent when sendBuf is done.
	sendBuf []byte
	sendOff int
	queued  []byte
	sending bool
}

func (o *outConn) ref() OutRef { return OutRef{slot: o.slot, gen: o.gen} }

// recvBound is the most o's receive buffer may hold: one whole message and
// its tail.
func (o *outConn) recvBound() int { return lengthPrefixBytes + o.msgMax + o.tailMax }

// Dial opens an outbound connection: a non-blocking socket (TCP_NODELAY)
// and an IORING_OP_CONNECT on the shard's ring. It fails at once when the
// shard is stopping, its outbound table is full, the config is invalid or
// the socket cannot be made; otherwise cfg.Handler hears OutboundConnected
// (or OutboundClosed with why not) on a later turn. Called on the shard's
// thread only.
func (sh *Shard) Dial(cfg OutboundConfig) (OutRef, error) {
	if cfg.Handler == nil || !cfg.Addr.IsValid() {
		return OutRef{}, errors.New("server: outbound dial needs a handler and an address")
	}
	msgMax, tailMax := cfg.MaxMessageBytes, cfg.MaxTailBytes
	if msgMax == 0 {
		msgMax = outboundMessageBytesMaxDefault
	}
	if tailMax == 0 {
		tailMax = outboundTailBytesMaxDefault
	}
	if msgMax < 0 || msgMax > outboundBytesLimit || tailMax < 0 || tailMax > outboundBytesLimit ||
		cfg.ConnectTimeoutMs < 0 || cfg.IdleTimeoutMs < 0 {
		return OutRef{}, fmt.Errorf("server: outbound limits out of range (message %d, tail %d, connect %d ms, idle %d ms)",
			cfg.MaxMessageBytes, cfg.MaxTailBytes, cfg.ConnectTimeoutMs, cfg.IdleTimeoutMs)
	}
	if sh.draining {
		return OutRef{}, errShardStopping
	}
	if sh.outOpen >= outboundPerShardMax {
		return OutRef{}, fmt.Errorf("server: shard %d has %d outbound connections, the most it keeps", sh.id, sh.outOpen)
	}
	connectMs := cfg.ConnectTimeoutMs
	if connectMs == 0 {
		connectMs = outboundConnectTimeoutMsDefault
	}
	family, sa, saLen := rawSockaddr(cfg.Addr)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return OutRef{}, fmt.Errorf("server: outbound socket: %w", err)
	}
	// Requests are small and latency-bound, as answers are.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return OutRef{}, fmt.Errorf("server: outbound TCP_NODELAY: %w", err)
	}
	var slot uint32
	if n := len(sh.outFree); n > 0 {
		slot = sh.outFree[n-1]
		sh.outFree = sh.outFree[:n-1]
	} else {
		slot = uint32(len(sh.outs))
		sh.outs = append(sh.outs, &outConn{slot: slot})
	}
	o := sh.outs[slot]
	now := sh.now()
	*o = outConn{slot: slot, gen: o.gen + 1, fd: fd, state: outConnecting,
		handler: cfg.Handler, tailBytes: cfg.TailBytes, addr: cfg.Addr,
		msgMax: msgMax, tailMax: tailMax, idleMs: cfg.IdleTimeoutMs,
		deadlineMs: now + connectMs, lastRecvMs: now, tail: -1,
		sa: sa, saLen: saLen, rbuf: o.rbuf[:0], sendBuf: o.sendBuf[:0], queued: o.queued[:0]}
	sqe := sh.sqe()
	sqe.PrepConnect(fd, unsafe.Pointer(&o.sa), o.saLen)
	sqe.SetUserData(tag(opOutConnect, o.slot, o.gen))
	o.opsInFlight++
	sh.outOpen++
	sh.stats.OutboundDialed.Add(1)
	sh.stats.OutboundOpen.Store(int64(sh.outOpen))
	return o.ref(), nil
}

// rawSockaddr lays addr out as the kernel's sockaddr_in or sockaddr_in6.
func rawSockaddr(addr netip.AddrPort) (family int, sa unix.RawSockaddrAny, n uint32) {
	port := addr.Port()
	if a := addr.Addr(); a.Is4() || a.Is4In6() {
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		in.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&in.Port))[:], port)
		in.Addr = a.Unmap().As4()
		return unix.AF_INET, sa, uint32(unsafe.Sizeof(*in))
	}
	in := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
	in.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&in.Port))[:], port)
	in.Addr = addr.Addr().As16()
	return unix.AF_INET6, sa, uint32(unsafe.Sizeof(*in))
}

// outOf finds a live (connecting or open) outbound connection by reference.
func (sh *Shard) outOf(ref OutRef) *outConn {
	if int(ref.slot) >= len(sh.outs) {
		return nil
	}
	o := sh.outs[ref.slot]
	if o.gen != ref.gen || (o.state != outConnecting && o.state != outOpen) {
		return nil
	}
	return o
}

// outFor finds the outbound connection a completion belongs to.
func (sh *Shard) outFor(t uint64) *outConn {
	slot := tagSlot(t)
	if int(slot) >= len(sh.outs) {
		return nil
	}
	o := sh.outs[slot]
	if o.state == 0 || o.gen != tagGen(t) {
		return nil
	}
	return o
}

// SendOutbound queues msg, one or more whole length-prefixed requests, to
// go out on ref after what was queued before; msg is copied. It fails when
// the connection is gone, msg is not whole messages, or the queue would
// pass outboundSendQueueBytesMax. Requests queued before the connect
// completes go out once it has. Called on the shard's thread only.
func (sh *Shard) SendOutbound(ref OutRef, msg []byte) error {
	o := sh.outOf(ref)
	if o == nil {
		return errOutboundClosed
	}
	requests := 0
	for rest := msg; len(rest) > 0; requests++ {
		if len(rest) < lengthPrefixBytes {
			return errOutboundNotWhole
		}
		n := int(binary.LittleEndian.Uint32(rest))
		if n > len(rest)-lengthPrefixBytes {
			return errOutboundNotWhole
		}
		rest = rest[lengthPrefixBytes+n:]
	}
	if len(o.queued)+len(o.sendBuf)-o.sendOff+len(msg) > outboundSendQueueBytesMax {
		return errOutboundQueueFull
	}
	if o.outstanding == 0 {
		// The idle clock runs only while something is awaited: it starts
		// with the first request outstanding.
		o.lastRecvMs = sh.now()
	}
	o.outstanding += requests
	o.queued = append(o.queued, msg...)
	if o.state == outOpen {
		sh.flushOut(o)
	}
	return nil
}

// CloseOutbound closes ref; OutboundClosed follows on a later turn. A ref
// already closing or gone is left alone. Called on the shard's thread only.
func (sh *Shard) CloseOutbound(ref OutRef) {
	if o := sh.outOf(ref); o != nil {
		sh.closeOut(o, errOutboundByRequest)
	}
}

// closeOut starts closing o: every SQE on its socket is cancelled and the
// socket shut down; maybeFreeOut closes the descriptor and tells the
// handler once all of them completed (see closeConn for why the
// descriptor stays open until then).
func (sh *Shard) closeOut(o *outConn, err error) {
	if o.state != outConnecting && o.state != outOpen {
		return
	}
	o.state = outClosing
	o.err = err
	t := tag(opOutClose, o.slot, o.gen)
	sh.cancelAndShutdown(o.fd, t, t)
	o.opsInFlight += 2
}

// maybeFreeOut frees a closing outbound connection's slot once nothing is
// in flight on it, and tells its handler.
func (sh *Shard) maybeFreeOut(o *outConn) {
	if o.state != outClosing || o.opsInFlight > 0 {
		return
	}
	if err := unix.Close(o.fd); err != nil {
		sh.log.Warn("close outbound connection", "addr", o.addr, "err", err)
	}
	ref, h, err := o.ref(), o.handler, o.err
	o.state = 0
	o.gen++ // late calls with the old ref miss
	o.handler, o.tailBytes, o.err = nil, nil, nil
	const keepBytes = 64 << 10
	if cap(o.rbuf) > keepBytes {
		o.rbuf = nil
	}
	if cap(o.sendBuf) > keepBytes {
		o.sendBuf = nil
	}
	if cap(o.queued) > keepBytes {
		o.queued = nil
	}
	sh.outFree = append(sh.outFree, o.slot)
	sh.outOpen--
	sh.stats.OutboundClosed.Add(1)
	sh.stats.OutboundOpen.Store(int64(sh.outOpen))
	h.OutboundClosed(ref, err)
}

// completeOutbound dispatches a completion of an outbound connection.
func (sh *Shard) completeOutbound(cqe ring.CQE) {
	o := sh.outFor(cqe.UserData)
	if o == nil {
		return
	}
	o.opsInFlight--
	switch tagKind(cqe.UserData) {
	case opOutConnect:
		sh.onOutConnect(o, cqe)
	case opOutRecv:
		o.recving = false
		sh.onOutRecv(o, cqe)
	case opOutSend:
		o.sending = false
		sh.onOutSend(o, cqe)
	}
	if o.state == outClosing {
		sh.maybeFreeOut(o)
	}
}

func (sh *Shard) onOutConnect(o *outConn, cqe ring.CQE) {
	if o.state != outConnecting {
		return
	}
	if cqe.Res < 0 {
		sh.closeOut(o, fmt.Errorf("server: outbound connect to %s: %w", o.addr, unix.Errno(-cqe.Res)))
		return
	}
	o.state = outOpen
	o.lastRecvMs = sh.now()
	if cap(o.rbuf) == 0 {
		o.rbuf = make([]byte, 0, outboundRecvBytesInitial)
	}
	sh.armOutRecv(o)
	o.handler.OutboundConnected(o.ref())
	if o.state == outOpen {
		sh.flushOut(o)
	}
}

// armOutRecv receives into the free end of o's buffer, which parseOut
// left room in for what the next message needs.
func (sh *Shard) armOutRecv(o *outConn) {
	sqe := sh.sqe()
	sqe.PrepRecv(o.fd, o.rbuf[o.rend:cap(o.rbuf)], 0)
	sqe.SetUserData(tag(opOutRecv, o.slot, o.gen))
	o.recving = true
	o.opsInFlight++
}

func (sh *Shard) onOutRecv(o *outConn, cqe ring.CQE) {
	if o.state != outOpen {
		return
	}
	switch {
	case cqe.Res < 0:
		sh.closeOut(o, fmt.Errorf("server: outbound receive from %s: %w", o.addr, unix.Errno(-cqe.Res)))
		return
	case cqe.Res == 0:
		if o.rend > o.rstart {
			sh.closeOut(o, errOutboundPeerClosedMid)
		} else {
			sh.closeOut(o, errOutboundPeerClosed)
		}
		return
	}
	o.rend += int(cqe.Res)
	o.lastRecvMs = sh.now()
	sh.stats.OutboundBytesIn.Add(uint64(cqe.Res))
	sh.stats.OutboundRecvs.Add(1)
	sh.parseOut(o)
	if o.state == outOpen {
		sh.armOutRecv(o)
	}
}

// parseOut delivers every whole message and tail o's buffer holds, then
// makes room for what the next one needs. Every size is checked against
// its bound before the buffer grows for it.
func (sh *Shard) parseOut(o *outConn) {
	need := lengthPrefixBytes
	for o.state == outOpen {
		buf := o.rbuf[o.rstart:o.rend]
		if len(buf) < lengthPrefixBytes {
			need = lengthPrefixBytes
			break
		}
		n := uint64(binary.LittleEndian.Uint32(buf))
		if n > uint64(o.msgMax) {
			sh.closeOut(o, fmt.Errorf("%w: %d bytes, bound %d", errOutboundMessageTooBig, n, o.msgMax))
			return
		}
		msgEnd := lengthPrefixBytes + int(n)
		if len(buf) < msgEnd {
			need = msgEnd
			break
		}
		msg := buf[:msgEnd:msgEnd]
		if o.tail < 0 {
			t := 0
			if o.tailBytes != nil {
				var err error
				if t, err = o.tailBytes(msg); err != nil {
					sh.closeOut(o, fmt.Errorf("server: outbound message from %s: %w", o.addr, err))
					return
				}
			}
			if t < 0 || t > o.tailMax {
				sh.closeOut(o, fmt.Errorf("%w: %d bytes, bound %d", errOutboundTailTooBig, t, o.tailMax))
				return
			}
			o.tail = t
		}
		end := msgEnd + o.tail
		if len(buf) < end {
			need = end
			break
		}
		o.rstart += end
		o.tail = -1
		if o.outstanding > 0 {
			o.outstanding--
		}
		o.lastRecvMs = sh.now() // the idle clock restarts with each answer
		o.handler.OutboundMessage(o.ref(), msg, buf[msgEnd:end:end])
	}
	if o.state != outOpen {
		return
	}
	sh.makeOutRoom(o, need)
}

// makeRoom leaves o's buffer room after its undelivered bytes for at least
// need bytes from their start (need is within recvBound: parseOut checked
// it), and for more than nothing after them: moving them to the front, or
// into a larger buffer (doubling, up to the bound), when they do not fit.
func (sh *Shard) makeOutRoom(o *outConn, need int) {
	have := o.rend - o.rstart
	if have == 0 {
		o.rstart, o.rend = 0, 0
	}
	need = max(need, have+1)
	if o.rstart+need <= cap(o.rbuf) {
		return
	}
	if need > o.recvBound() {
		panic(fmt.Sprintf("server: outbound receive needs %d bytes, above its bound %d", need, o.recvBound()))
	}
	if need <= cap(o.rbuf) {
		copy(o.rbuf[:cap(o.rbuf)], o.rbuf[o.rstart:o.rend])
	} else {
		grown := make([]byte, 0, min(max(need, 2*cap(o.rbuf)), o.recvBound()))
		copy(grown[:have], o.rbuf[o.rstart:o.rend])
		o.rbuf = grown
	}
	o.rstart, o.rend = 0, have
}

// flushOut starts sending what is queued on o, if no send is in flight.
func (sh *Shard) flushOut(o *outConn) {
	if o.sending || len(o.queued) == 0 {
		return
	}
	o.sendBuf, o.queued = o.queued, o.sendBuf[:0]
	o.sendOff = 0
	sh.submitOutSend(o)
}

func (sh *Shard) submitOutSend(o *outConn) {
	sqe := sh.sqe()
	sqe.PrepSend(o.fd, o.sendBuf[o.sendOff:], unix.MSG_NOSIGNAL)
	sqe.SetUserData(tag(opOutSend, o.slot, o.gen))
	o.sending = true
	o.opsInFlight++
}

func (sh *Shard) onOutSend(o *outConn, cqe ring.CQE) {
	if o.state != outOpen {
		return
	}
	if cqe.Res < 0 {
		sh.closeOut(o, fmt.Errorf("server: outbound send to %s: %w", o.addr, unix.Errno(-cqe.Res)))
		return
	}
	sh.stats.OutboundBytesOut.Add(uint64(cqe.Res))
	o.sendOff += int(cqe.Res)
	if o.sendOff < len(o.sendBuf) {
		sh.submitOutSend(o) // short send: the rest
		return
	}
	o.sendBuf, o.sendOff = o.sendBuf[:0], 0
	sh.flushOut(o)
}

// outboundTick closes outbound connections whose connect ran past its
// timeout, or that received nothing for their idle limit while requests
// were outstanding.
func (sh *Shard) outboundTick(nowMs int64) {
	for _, o := range sh.outs {
		switch {
		case o.state == outConnecting && nowMs >= o.deadlineMs:
			sh.closeOut(o, fmt.Errorf("%w (%s)", errOutboundConnectTimeout, o.addr))
		case o.state == outOpen && o.idleMs > 0 && o.outstanding > 0 && nowMs-o.lastRecvMs > o.idleMs:
			sh.closeOut(o, errOutboundIdle)
		}
	}
}

// closeOutbounds closes every outbound connection: the shard is stopping.
func (sh *Shard) closeOutbounds() {
	for _, o := range sh.outs {
		sh.closeOut(o, errShardStopping)
	}
}

// closeOutboundFDs closes what outbound sockets a shard whose loop ended
// still has (a loop that failed before they completed).
func (sh *Shard) closeOutboundFDs() {
	for _, o := range sh.outs {
		if o.state != 0 {
			unix.Close(o.fd)
			o.state = 0
		}
	}
}
