package server

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/ring"
)

// The receive path of a shard's connections: the multishot receive into
// the shard's provided buffers, the split of what arrives into requests,
// large requests received straight into buffers of their own (whose bytes
// the request budget grants, see request_budget.go), and the pauses that
// bound what one connection buffers.

func (sh *Shard) armRecv(c *conn) {
	c.recvCancelling = false
	sqe := sh.sqe()
	sqe.PrepRecvMultishot(c.fd, recvGroupID, 0)
	sqe.SetUserData(tag(opRecv, c.slot, c.gen))
	c.recvArmed = true
	c.opsInFlight++
}

func (sh *Shard) onRecv(c *conn, cqe ring.CQE) {
	if !cqe.More() {
		c.recvArmed = false
		c.opsInFlight--
	}
	if cqe.Res > 0 {
		bid := cqe.BufferID()
		sh.stats.BytesIn.Add(uint64(cqe.Res))
		// The receive itself holds the buffer while its requests are
		// served: a handler that retains and releases a request within
		// Serve must not hand the buffer back while the rest of it is
		// still being parsed.
		sh.bufRefs[bid]++
		if c.state == connOpen {
			c.lastActiveMs = sh.now()
			sh.onData(c, sh.bufs.Bytes(bid, int(cqe.Res)), int32(bid))
		}
		sh.bufRelease(bid)
	} else if cqe.Res == 0 {
		sh.closeConn(c) // the peer closed
	} else if cqe.Res != -int32(unix.ENOBUFS) && cqe.Res != -int32(unix.ECANCELED) {
		sh.closeConn(c)
	}
	switch {
	case c.state == connClosing:
		sh.maybeFree(c)
	case c.recvArmed:
	case c.direct != nil:
		sh.recvDirect(c) // the multishot receive has ended: read the rest straight in
	case !c.recvPaused:
		sh.armRecv(c) // ended on ENOBUFS or by the kernel's choice: re-arm
	}
}

// A large request is received straight into a buffer of its own size: once
// its length prefix is seen, the connection's multishot receive is
// cancelled and one RECV (MSG_WAITALL) reads the rest of the request into
// place, so its bytes are received once and never copied. Only what had
// already arrived in provided buffers is copied over.
const directRecvMinBytes = 32 << 10

// startDirect switches c to receiving the request whose first bytes are
// head (length prefix included) into a buffer of its own.
func (sh *Shard) startDirect(c *conn, head []byte) {
	size := lengthPrefixBytes + int(binary.LittleEndian.Uint32(head))
	c.directBuf = sh.takeDirect(size)
	c.direct = c.directBuf.buf[:size:size]
	c.directHave = copy(c.direct, head)
	sh.stats.DirectRecvs.Add(1)
	sh.cancelRecv(c)
}

// cancelRecv asks the kernel to end c's multishot receive; its last CQE
// (without CQE_F_MORE) says when it has.
func (sh *Shard) cancelRecv(c *conn) {
	if !c.recvArmed || c.recvCancelling {
		return
	}
	c.recvCancelling = true
	sqe := sh.sqe()
	sqe.PrepCancel(tag(opRecv, c.slot, c.gen), 0)
	sqe.SetUserData(tag(opCancel, c.slot, c.gen))
	c.opsInFlight++
}

// fillDirect copies bytes that arrived through the multishot receive before
// it ended into the direct buffer, and returns what follows the request.
func (sh *Shard) fillDirect(c *conn, data []byte) []byte {
	n := copy(c.direct[c.directHave:], data)
	c.directHave += n
	if c.directHave == len(c.direct) {
		sh.finishDirect(c)
	}
	return data[n:]
}

// recvDirect reads the rest of the direct request with one RECV.
func (sh *Shard) recvDirect(c *conn) {
	if c.directHave == len(c.direct) {
		sh.finishDirect(c)
		if c.state == connOpen && !c.recvArmed && c.direct == nil && !c.recvPaused {
			sh.armRecv(c)
		}
		return
	}
	sqe := sh.sqe()
	sqe.PrepRecv(c.fd, c.direct[c.directHave:], unix.MSG_WAITALL)
	sqe.SetUserData(tag(opRecvDirect, c.slot, c.gen))
	c.opsInFlight++
}

func (sh *Shard) onRecvDirect(c *conn, cqe ring.CQE) {
	c.opsInFlight--
	if c.state != connOpen {
		sh.maybeFree(c)
		return
	}
	if cqe.Res <= 0 {
		sh.closeConn(c) // the peer closed or failed mid-request
		sh.maybeFree(c)
		return
	}
	sh.stats.BytesIn.Add(uint64(cqe.Res))
	c.lastActiveMs = sh.now()
	c.directHave += int(cqe.Res)
	sh.recvDirect(c)
}

// finishDirect hands the complete direct request to the parser: dispatched
// from its own buffer when the connection has room, else kept as the
// connection's partial bytes until it does.
func (sh *Shard) finishDirect(c *conn) {
	req, pb := c.direct, c.directBuf
	c.direct, c.directHave, c.directBuf = nil, 0, nil
	if len(c.partial) == 0 {
		c.partial = req
		c.partialPool = pb
	} else {
		// Bytes that arrived after the request while the receive was
		// being cancelled: the request goes first (a rare copy).
		joined := make([]byte, 0, len(req)+len(c.partial))
		c.partial = append(append(joined, req...), c.partial...)
		sh.unrefDirect(pb)
	}
	sh.parsePartial(c)
}

// onData handles bytes received on c, which live in provided buffer bid.
// Whole requests are handed to the handler in place; only an incomplete
// tail is copied, into the connection's partial buffer.
func (sh *Shard) onData(c *conn, data []byte, bid int32) {
	if c.direct != nil {
		if c.directHave < len(c.direct) {
			data = sh.fillDirect(c, data)
		}
		if c.direct != nil && len(data) > 0 {
			// After the direct request, before the receive ended.
			c.partial = appendPartial(c.partial, data)
			return
		}
		if len(data) == 0 {
			return
		}
	}
	if c.discard > 0 {
		// The rest of an oversized request: dropped as it arrives.
		n := min(c.discard, int64(len(data)))
		c.discard -= n
		data = data[n:]
		if len(data) == 0 {
			return
		}
	}
	if len(c.partial) > 0 || c.inflight() >= inflightPerConnMax {
		if len(c.partial)+len(data) > requestBytesMax+lengthPrefixBytes+pendingBytesMax {
			sh.closeConn(c) // cannot happen with a paused receive; a bound all the same
			return
		}
		if c.partialPool != nil {
			// Appending must not grow into a pooled buffer: move the
			// waiting bytes out (rare: a large request waiting at the
			// in-flight cap).
			c.partial = appendPartial(nil, c.partial)
			sh.unrefDirect(c.partialPool)
			c.partialPool = nil
		}
		c.partial = appendPartial(c.partial, data)
		sh.parsePartial(c)
		return
	}
	rest, res := sh.parse(c, data, bid)
	if res == frameTooLarge {
		rest = sh.oversized(c, rest)
	}
	if c.state != connOpen {
		return
	}
	if len(rest) >= lengthPrefixBytes && c.state == connOpen && c.recvArmed && !c.recvCancelling &&
		lengthPrefixBytes+int(binary.LittleEndian.Uint32(rest)) >= directRecvMinBytes {
		sh.startDirect(c, rest)
		return
	}
	if len(rest) > 0 {
		c.partial = appendPartial(c.partial[:0], rest)
	}
	sh.pauseIfFull(c)
}

// appendPartial appends data to a connection's partial buffer. When the
// buffer must grow and its first request's length is known, it grows once
// to hold that whole request (and at least doubles), instead of in many
// small steps as the request trickles in.
func appendPartial(partial, data []byte) []byte {
	need := len(partial) + len(data)
	if need > cap(partial) {
		size := max(need, 2*cap(partial), recvBufferBytes)
		if len(partial) >= lengthPrefixBytes {
			size = max(size, lengthPrefixBytes+int(binary.LittleEndian.Uint32(partial)))
		} else if len(partial) == 0 && len(data) >= lengthPrefixBytes {
			size = max(size, lengthPrefixBytes+int(binary.LittleEndian.Uint32(data)))
		}
		size = min(size, max(need, lengthPrefixBytes+requestBytesMax))
		grown := make([]byte, len(partial), size)
		copy(grown, partial)
		partial = grown
	}
	return append(partial, data...)
}

// oversized handles a length prefix above requestBytesMax at the start of
// buf: the handler answers it (MESSAGE_TOO_LARGE) without the request being
// read into memory, and its bytes are dropped as they arrive, up to
// discardBytesMax; a larger claim closes the connection after the answer.
// It returns what of buf follows the dropped request.
func (sh *Shard) oversized(c *conn, buf []byte) []byte {
	size := int64(binary.LittleEndian.Uint32(buf))
	seq := c.nextSeq
	c.makeRoom(seq)
	c.nextSeq++
	sh.stats.Requests.Add(1)
	if o, ok := sh.handler.(OversizedHandler); ok {
		o.Oversized(sh, c.ref(), seq, size)
	} else {
		sh.Respond(c.ref(), seq, nil)
	}
	if size > discardBytesMax {
		sh.CloseAfterAnswers(c.ref())
		return nil
	}
	have := int64(len(buf) - lengthPrefixBytes)
	if have >= size {
		return buf[lengthPrefixBytes+size:]
	}
	c.discard = size - have
	return nil
}

// parsePartial dispatches what whole requests c.partial holds and keeps the
// rest at its front (in a new buffer if a handler retained the old one).
func (sh *Shard) parsePartial(c *conn) {
	rest, res := sh.parse(c, c.partial, -1)
	if res == frameTooLarge {
		rest = sh.oversized(c, rest)
		if c.state != connOpen {
			return
		}
	}
	if c.partialPool != nil && len(rest) == 0 {
		// The pooled buffer held just its request: the connection lets go
		// of it (a hold on the request keeps it until released).
		sh.unrefDirect(c.partialPool)
		c.partialPool = nil
		c.partial = nil
		c.partialDetached = false
	} else if c.partialDetached {
		// A handler holds a request that lies before rest in the same
		// array: rest stays where it is and later bytes append after it,
		// so nothing is copied and the held bytes are never touched.
		c.partial = rest
		c.partialDetached = false
	} else {
		n := copy(c.partial, rest)
		c.partial = c.partial[:n]
	}
	sh.pauseIfFull(c)
}

// parse dispatches whole requests from buf while the connection is under
// its in-flight cap, and returns what is left.
func (sh *Shard) parse(c *conn, buf []byte, bid int32) ([]byte, frameResult) {
	for c.state == connOpen && !sh.draining && !c.closeAfter {
		if c.inflight() >= inflightPerConnMax {
			return buf, frameAtCap
		}
		msg, rest, res, ok := nextRequest(buf)
		if !ok {
			return buf, res
		}
		buf = rest
		sh.dispatch(c, msg, bid)
	}
	return buf, frameNeedMore
}

func (sh *Shard) dispatch(c *conn, msg []byte, bid int32) {
	seq := c.nextSeq
	c.makeRoom(seq)
	c.nextSeq++
	sh.stats.Requests.Add(1)
	sh.req = Request{Conn: c.ref(), Seq: seq, Message: msg, sh: sh, c: c, bufID: bid}
	sh.handler.Serve(sh, &sh.req)
	sh.req = Request{}
}

// pauseIfFull stops receiving on a connection that has more buffered than
// it may process, until its answers catch up.
func (sh *Shard) pauseIfFull(c *conn) {
	if c.state != connOpen || c.recvPaused || len(c.partial) <= pendingBytesMax || c.inflight() < inflightPerConnMax {
		return
	}
	c.recvPaused = true
	sh.cancelRecv(c)
}

// resumeIfRoom parses what a paused connection buffered and re-arms its
// receive once there is room again.
func (sh *Shard) resumeIfRoom(c *conn) {
	if c.state != connOpen || c.inflight() >= inflightPerConnMax {
		return
	}
	if len(c.partial) > 0 {
		sh.parsePartial(c)
	}
	if c.recvPaused && c.state == connOpen && len(c.partial) <= pendingBytesMax && c.inflight() < inflightPerConnMax {
		c.recvPaused = false
		if !c.recvArmed && c.direct == nil {
			sh.armRecv(c)
		}
	}
}
