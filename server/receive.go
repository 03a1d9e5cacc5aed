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
			if !sh.readsStopped(c) {
				// Bytes dropped unread are no progress: a client that
				// keeps sending to a connection being closed does not keep
				// it from the idle limit.
				c.lastActiveMs = sh.now()
			}
			sh.onData(c, sh.bufs.Bytes(bid, int(cqe.Res)), int32(bid))
		}
		sh.bufRelease(bid)
	} else if cqe.Res == 0 {
		sh.closeConn(c) // the peer closed
	} else if cqe.Res != -int32(unix.ENOBUFS) && cqe.Res != -int32(unix.ECANCELED) {
		sh.closeConn(c)
	}
	if c.state == connClosing {
		sh.maybeFree(c)
		return
	}
	sh.keepReceiving(c)
}

// keepReceiving starts what c receives next once its multishot receive has
// ended: the rest of a large request straight into its buffer, nothing
// while it waits for budget or is paused at its caps, else the multishot
// receive again (it ended on ENOBUFS or by the kernel's choice).
func (sh *Shard) keepReceiving(c *conn) {
	if c.state != connOpen || c.recvArmed {
		return
	}
	switch {
	case c.direct != nil:
		if !c.directRecving {
			sh.recvDirect(c)
		}
	case c.budgetWait, c.recvPaused:
	default:
		sh.armRecv(c)
	}
}

// A large request is received straight into a buffer of its own size: once
// its length prefix is seen, the connection's multishot receive is
// cancelled and one RECV (MSG_WAITALL) reads the rest of the request into
// place, so its bytes are received once and never copied. Only what had
// already arrived in provided buffers is copied over.
const directRecvMinBytes = 32 << 10

// largeHead reports whether buf begins with the length prefix of a large
// request (one received into a buffer of its own), and its size, length
// prefix included. An oversized prefix is not a large request: it is
// answered and dropped (see oversized).
func largeHead(buf []byte) (size int, large bool) {
	if len(buf) < lengthPrefixBytes {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(buf)
	if n > requestBytesMax {
		return 0, false
	}
	size = lengthPrefixBytes + int(n)
	return size, size >= directRecvMinBytes
}

// wholeLarge reports whether buf begins with a whole large request.
func wholeLarge(buf []byte) bool {
	size, large := largeHead(buf)
	return large && len(buf) >= size
}

// startLarge begins the large request whose first bytes, fewer than its
// size, are head: into a buffer of its own once the budget grants the
// buffer's bytes, before it is allocated; else c waits for budget with head
// kept in its partial buffer (inPartial: head already is that buffer).
func (sh *Shard) startLarge(c *conn, head []byte, inPartial bool) {
	size, _ := largeHead(head)
	n := directBufBytes(size)
	if ok, passed := sh.tryReserve(n, false); ok {
		sh.startDirect(c, head, n, passed)
		if inPartial {
			sh.dropPartial(c)
		}
		return
	}
	// c waits, its bytes in hand in a plain partial buffer counted
	// against the shard's bound on waiting bytes.
	base := c.partial[:0]
	if inPartial && c.partialPool == nil {
		base = c.partial
		head = nil
	} else if inPartial {
		base = nil // out of the pooled buffer, which is let go
	}
	if !sh.waitRoom(c, base, len(head)) {
		sh.closeConn(c)
		return
	}
	if head != nil {
		moved := appendPartial(base, head)
		if inPartial {
			sh.dropPartial(c)
		}
		c.partial = moved
	}
	sh.waitForBudget(c)
}

// settleLarge runs once c's partial buffer has been parsed: a large request
// now at its front, still incomplete, is started (or waits for budget); a
// connection that waits for budget stops waiting if its request arrived
// whole meanwhile (bytes that came while its receive was being cancelled)
// and the budget is within its limit (else grantWaiters resumes it).
func (sh *Shard) settleLarge(c *conn) {
	size, large := largeHead(c.partial)
	incomplete := large && len(c.partial) < size
	if c.budgetWait {
		if !incomplete && sh.budget.withinLimit() {
			sh.stopWaiting(c)
		}
		return
	}
	if incomplete && c.state == connOpen && c.direct == nil && c.discard == 0 && !sh.readsStopped(c) {
		sh.startLarge(c, c.partial, true)
	}
}

// startDirect switches c to receiving the request whose first bytes are
// head (length prefix included, fewer than its size) into a buffer of its
// own, whose reserved bytes the budget has granted (passed: ahead of
// connections waiting).
func (sh *Shard) startDirect(c *conn, head []byte, reserved int64, passed bool) {
	size, _ := largeHead(head)
	c.directBuf = sh.takeDirect(size)
	c.directBuf.reserved, c.directBuf.passed = reserved, passed
	c.direct = c.directBuf.buf[:size:size]
	c.directHave = copy(c.direct, head)
	sh.stats.DirectRecvs.Add(1)
	sh.cancelRecv(c)
}

// dropPartial lets go of c's partial buffer once its bytes are elsewhere.
func (sh *Shard) dropPartial(c *conn) {
	switch {
	case c.partialPool != nil:
		sh.unrefDirect(c.partialPool)
		c.partialPool, c.partial = nil, nil
	case c.partialDetached:
		c.partial = nil // a handler holds the array
	default:
		c.partial = c.partial[:0]
	}
	c.partialDetached = false
}

// appendPooled appends data behind c's partial bytes in the pooled buffer
// they lie in, whose front is a whole large request that waits (at the
// in-flight cap; see parsePartial). The bytes go into the buffer's spare
// capacity, which lies beyond every request a handler may hold; when that
// is full, everything moves to a buffer of twice the size (at most
// pooledGrowMaxBytes more), so what arrives is copied a bounded number of
// times: the pause at the caps stops the receive soon after. The new
// buffer is accounted as the one it leaves: charged to the budget (even
// past its limit: the bytes are in hand) and passed when that one had
// passed the waiting connections, or counted with the waiting bytes when
// the request was served from bytes in hand while c waits. It reports
// false when the waiting bytes would pass their bound (the caller closes
// c).
func (sh *Shard) appendPooled(c *conn, data []byte) bool {
	need := len(c.partial) + len(data)
	if need <= cap(c.partial) {
		c.partial = append(c.partial, data...)
		return true
	}
	old, b := c.partialPool, &sh.budget
	n := max(need, len(old.buf)+min(len(old.buf), pooledGrowMaxBytes))
	bytes := directBufBytes(n)
	if old.waiting > 0 {
		after := b.waitingBytes + bytes
		if old.refs == 1 {
			after -= old.waiting // let go below: no hold on it
		}
		if !sh.waitFits(c, after) {
			return false
		}
	}
	pb := sh.takeDirect(n)
	if old.waiting > 0 {
		pb.waiting = bytes
		b.waitingBytes += bytes
		sh.stats.RequestBudgetWaitingBytes.Store(b.waitingBytes)
	} else {
		pb.reserved, pb.passed = bytes, old.passed
		if pb.passed {
			b.passedBytes += bytes
		}
		sh.chargeBudget(bytes)
	}
	copy(pb.buf[copy(pb.buf, c.partial):], data)
	sh.dropPartial(c)
	c.partial, c.partialPool = pb.buf[:need], pb
	return true
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
		sh.keepReceiving(c)
		return
	}
	sqe := sh.sqe()
	sqe.PrepRecv(c.fd, c.direct[c.directHave:], unix.MSG_WAITALL)
	sqe.SetUserData(tag(opRecvDirect, c.slot, c.gen))
	c.directRecving = true
	c.opsInFlight++
}

func (sh *Shard) onRecvDirect(c *conn, cqe ring.CQE) {
	c.opsInFlight--
	c.directRecving = false
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
	n, pb := len(c.direct), c.directBuf
	c.direct, c.directHave, c.directBuf = nil, 0, nil
	// Bytes that arrived after the request while the receive was being
	// cancelled go behind it, in its buffer's spare capacity when they fit
	// (appendPooled).
	tail, tailPool := c.partial, c.partialPool
	c.partial, c.partialPool, c.partialDetached = pb.buf[:n], pb, false
	if len(tail) > 0 {
		sh.appendPooled(c, tail) // a direct buffer is charged, not waiting: it cannot fail
	}
	if tailPool != nil {
		sh.unrefDirect(tailPool)
	}
	sh.parsePartial(c)
}

// onData handles bytes received on c, which live in provided buffer bid.
// Whole requests are handed to the handler in place; only an incomplete
// tail is copied, into the connection's partial buffer.
func (sh *Shard) onData(c *conn, data []byte, bid int32) {
	// Bytes of large requests being received into their own buffers (a
	// finished one may start the next from what followed it).
	for c.direct != nil && len(data) > 0 {
		data = sh.fillDirect(c, data)
	}
	if len(data) == 0 || c.state != connOpen || sh.readsStopped(c) {
		// What a connection that reads no more requests sends is dropped
		// as it arrives: kept, it would pile up outside the budget, never
		// parsed. The receive stays armed so that the socket does not
		// fill (a client blocked writing may never read its answers).
		return
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
	if c.budgetWait {
		sh.onWaitingData(c, data)
		return
	}
	if len(c.partial) > 0 || c.atCap() {
		if len(c.partial)+len(data) > requestBytesMax+lengthPrefixBytes+pendingBytesMax {
			sh.closeConn(c) // cannot happen with a paused receive; a bound all the same
			return
		}
		if c.partialPool != nil {
			// A whole large request waits at the front of its own buffer
			// (the in-flight cap): these bytes go behind it, until the
			// pause at the caps stops them.
			if !sh.appendPooled(c, data) {
				sh.closeConn(c) // served from bytes in hand, past their bound
				return
			}
		} else {
			c.partial = appendPartial(c.partial, data)
		}
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
	if size, large := largeHead(rest); large && len(rest) < size && !sh.readsStopped(c) {
		sh.startLarge(c, rest, false)
		return
	}
	if len(rest) > 0 {
		c.partial = appendPartial(c.partial[:0], rest)
	}
	sh.pauseIfFull(c)
}

// readsStopped reports whether c reads no more requests: it is to close
// once answered (closeAfter), or the shard is draining.
func (sh *Shard) readsStopped(c *conn) bool { return c.closeAfter || sh.draining }

// appendPartial appends data to a connection's partial buffer, growing it
// (at least doubling) with the bytes in hand, never ahead of them for a
// length prefix: a length prefix alone makes the shard allocate nothing
// the budget has not granted. Large requests are received into buffers of
// their own; only their first bytes (or a whole one that arrived while a
// receive was ending) wait here.
func appendPartial(partial, data []byte) []byte {
	need := len(partial) + len(data)
	if need > cap(partial) {
		grown := make([]byte, len(partial), max(need, 2*cap(partial), partialBytesMin))
		copy(grown, partial)
		partial = grown
	}
	return append(partial, data...)
}

// partialCapAfter is the capacity appendPartial leaves partial with once n
// more bytes are appended.
func partialCapAfter(partial []byte, n int) int {
	need := len(partial) + n
	if need <= cap(partial) {
		return cap(partial)
	}
	return max(need, 2*cap(partial), partialBytesMin)
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
	switch {
	case c.partialPool != nil && len(rest) == 0:
		// The pooled buffer held just its request: the connection lets go
		// of it (a hold on the request keeps it until released).
		sh.dropPartial(c)
	case c.partialPool != nil && !wholeLarge(rest):
		// Only a whole large request waiting at its front keeps the pooled
		// buffer. Anything else left in it (the first bytes of the next
		// request, small ones waiting at the cap) moves to a plain partial
		// buffer like any connection's, so that what arrives later is
		// never copied into buffers charged to the budget past its limit.
		moved := appendPartial(nil, rest)
		sh.dropPartial(c)
		c.partial = moved
		if c.budgetWait {
			sh.noteWaiting(c)
		}
	case c.partialDetached:
		// A handler holds a request that lies before rest in the same
		// array: rest stays where it is and later bytes append after it,
		// so nothing is copied and the held bytes are never touched.
		c.partial = rest
		c.partialDetached = false
	case len(rest) < len(c.partial):
		n := copy(c.partial, rest)
		c.partial = c.partial[:n]
	}
	sh.pauseIfFull(c)
	sh.settleLarge(c)
}

// parse dispatches whole requests from buf while the connection is under
// its in-flight cap, and returns what is left.
func (sh *Shard) parse(c *conn, buf []byte, bid int32) ([]byte, frameResult) {
	for c.state == connOpen && !sh.readsStopped(c) {
		if c.atCap() {
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
	if c.state != connOpen || c.recvPaused || len(c.partial) <= pendingBytesMax || !c.atCap() {
		return
	}
	c.recvPaused = true
	sh.cancelRecv(c)
}

// resumeIfRoom parses what a paused connection buffered and re-arms its
// receive once there is room again.
func (sh *Shard) resumeIfRoom(c *conn) {
	if c.state != connOpen || c.atCap() {
		return
	}
	if len(c.partial) > 0 {
		sh.parsePartial(c)
	}
	if c.recvPaused && c.state == connOpen && len(c.partial) <= pendingBytesMax && !c.atCap() {
		c.recvPaused = false
	}
	// Parsing may also have ended a wait for budget (settleLarge), with
	// the receive already over: whatever lifted the last stop, receiving
	// starts again here (keepReceiving does nothing while one holds).
	sh.keepReceiving(c)
}
