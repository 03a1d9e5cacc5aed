package server

import (
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/ring"
)

// Handler answers requests. It runs on the shard's thread, one request at a
// time, in the order requests arrive on each connection, and must not
// block: it answers at once with Shard.Respond, or starts work (SQEs on the
// shard's ring, messages to other shards) and answers when that work is
// done. Answers on a connection go out in request order whatever order the
// handler answers them in, except those of requests the handler took out of
// the order (Request.AnswerUnordered).
type Handler interface {
	Serve(sh *Shard, req *Request)
}

// Ticker is implemented by handlers that keep timers (long-polling
// fetches): Tick runs on every shard at each tick of its timer, about every
// tickInterval.
type Ticker interface {
	Tick(sh *Shard, nowMs int64)
}

// DiskHandler is implemented by handlers that submit their own SQEs on the
// shard's ring (partition logs) with user data of kind opDisk: their
// completions come back through CompleteDisk, and a stopping shard waits
// until Idle.
type DiskHandler interface {
	CompleteDisk(sh *Shard, cqe ring.CQE)
	Idle(sh *Shard) bool
}

// OversizedHandler answers a request whose length prefix is above the
// largest request the shard accepts. It is called instead of Serve, before
// any of the request is read; the shard drops the request's bytes as they
// arrive. Without it, the answer is empty.
type OversizedHandler interface {
	Oversized(sh *Shard, ref ConnRef, seq uint64, size int64)
}

// Request is one complete request as received: Message is the whole
// message, its length prefix included. Message is valid until Serve
// returns; a handler that needs it longer (a produce whose bytes are written
// to disk by a later SQE) calls Retain and later Release on the Hold, which
// keeps the receive buffer holding Message out of the kernel's hands until
// then.
type Request struct {
	Conn    ConnRef
	Seq     uint64
	Message []byte

	sh       *Shard
	c        *conn
	bufID    int32 // provided buffer holding Message, or -1 when it is in c.partial
	retained bool
}

// Hold keeps a request body's memory valid until Release.
type Hold struct {
	sh     *Shard
	bufID  int32
	pooled *pooledBuf // the pooled buffer a large request lies in
}

// Retain keeps Message valid after Serve returns, until the Hold is released.
func (r *Request) Retain() Hold {
	if r.retained {
		panic("server: request retained twice")
	}
	r.retained = true
	if r.bufID >= 0 {
		r.sh.bufRefs[r.bufID]++
		return Hold{sh: r.sh, bufID: r.bufID}
	}
	if pb := r.c.partialPool; pb != nil {
		// A large request in its own pooled buffer: the hold shares it.
		pb.refs++
		r.c.partialDetached = true
		return Hold{sh: r.sh, bufID: -1, pooled: pb}
	}
	// Message lives in the connection's partial buffer: the connection gives
	// that buffer up and starts a new one.
	r.c.partialDetached = true
	return Hold{bufID: -1}
}

// Release ends a Hold. A released provided buffer goes back to the kernel
// once nothing else holds it.
func (h Hold) Release() {
	if h.bufID >= 0 {
		h.sh.bufRelease(uint16(h.bufID))
	}
	if h.pooled != nil {
		h.sh.unrefDirect(h.pooled)
	}
}

// AnswerUnordered takes the request out of its connection's answer order:
// its answer (Respond or RespondFiles with its Conn and Seq, now or later)
// goes out as soon as it is given, between whole answers of the ordered
// stream, and answers given after it for later requests no longer wait for
// it. A long-polling fetch uses it so that fetches behind it on the same
// connection are not held back; the client matches answers by correlation
// id. It must be called inside Serve, before the request is answered. A
// connection has at most unorderedPerConnMax such requests open; at that
// many the shard reads no more of its requests until one is answered.
func (r *Request) AnswerUnordered() {
	if r.c == nil || r.sh == nil || r.sh.req.c != r.c || r.sh.req.Seq != r.Seq {
		panic("server: AnswerUnordered outside Serve")
	}
	if !r.c.markUnordered(r.Seq) {
		panic("server: AnswerUnordered on a request already answered or already unordered")
	}
}

// PeerHost is the address (without port) of the client the request came
// from, or "" when it cannot be read. It asks the kernel (getpeername), so
// it is for requests that want it now and then (a group member's
// heartbeat), not for every request. It must be called inside Serve.
func (r *Request) PeerHost() string {
	if r.c == nil {
		return ""
	}
	sa, err := unix.Getpeername(r.c.fd)
	if err != nil {
		return ""
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr).String()
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap().String()
	}
	return ""
}
