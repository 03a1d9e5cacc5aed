package server

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/ring"
)

// The answer path of a connection: queueing answers in request order,
// sending them, and closing the connection once nothing in flight can
// name its socket.

// Respond answers request seq on connection ref with msg, a whole message
// (length prefix included), which is copied. An answer for a connection
// that has closed is dropped.
func (sh *Shard) Respond(ref ConnRef, seq uint64, msg []byte) {
	sh.RespondFiles(ref, seq, msg, nil, nil)
}

// RespondFiles is Respond followed on the wire by the bytes of files,
// spliced from the files to the socket: a fetch answer. The descriptors
// must stay open until hold is released, which the shard does once, on
// its own thread, when no SQE will name them any more: after the last
// span went out, or once the connection closed and everything in flight
// on it completed, or at once if the answer is dropped. hold may be nil
// only when files is empty.
func (sh *Shard) RespondFiles(ref ConnRef, seq uint64, msg []byte, files []FileSpan, hold FileHold) {
	if len(files) > 0 && hold == nil {
		panic("server: file spans answered without a hold on their descriptors")
	}
	c := sh.connOf(ref)
	if c == nil {
		releaseHold(hold)
		return
	}
	if !c.storeResponse(seq, msg, files, hold) {
		panic(fmt.Sprintf("server: shard %d: answer to request %d that is not awaiting one", sh.id, seq))
	}
	sh.flush(c)
}

// flush sends the answers that are next in order, if no send is in flight.
func (sh *Shard) flush(c *conn) {
	if !c.gatherResponses() {
		return
	}
	if c.pendingFiles != nil && sh.sendLinkedToSplice(c) {
		return
	}
	sh.submitSend(c)
}

func (sh *Shard) submitSend(c *conn) {
	sqe := sh.sqe()
	sqe.PrepSend(c.fd, c.sendBuf[c.sendOff:], unix.MSG_NOSIGNAL)
	sqe.SetUserData(tag(opSend, c.slot, c.gen))
	c.sending = true
	c.opsInFlight++
}

func (sh *Shard) onSend(c *conn, cqe ring.CQE) {
	c.opsInFlight--
	c.sending = false
	if c.state != connOpen {
		sh.maybeFree(c)
		return
	}
	if cqe.Res < 0 {
		sh.closeConn(c)
		sh.maybeFree(c)
		return
	}
	sh.stats.BytesOut.Add(uint64(cqe.Res))
	c.sendOff += int(cqe.Res)
	c.lastActiveMs = sh.now()
	if c.sendOff < len(c.sendBuf) {
		sh.submitSend(c) // short send: the rest
		return
	}
	if c.pendingFiles != nil {
		c.splice = spliceState{files: c.pendingFiles, start: time.Now()}
		c.pendingFiles = nil
		c.sending = true
		sh.startSplice(c)
		return
	}
	sh.afterSend(c)
}

// afterSend sends what became ready meanwhile, and closes or resumes the
// connection as its state asks.
func (sh *Shard) afterSend(c *conn) {
	sh.flush(c)
	if sh.draining || c.closeAfter {
		sh.closeIfAnswered(c)
		return
	}
	sh.resumeIfRoom(c)
}

// CloseAfterAnswers stops reading requests from a connection and closes it
// once every request already received has been answered: how a connection
// that sent garbage is ended after its error answer goes out.
func (sh *Shard) CloseAfterAnswers(ref ConnRef) {
	if int(ref.slot) >= len(sh.conns) {
		return
	}
	c := sh.conns[ref.slot]
	if c == nil || c.gen != ref.gen || c.state != connOpen {
		return
	}
	c.closeAfter = true
	sh.closeIfAnswered(c)
}

// closeConn starts closing c: cancel what is in flight on it and shut the
// socket down, so that every operation on it ends (a send blocked on a
// client that stopped reading fails with EPIPE); maybeFree closes the
// descriptor and frees the slot once every operation has completed.
//
// The descriptor must stay open until then: the SQEs of a splice chain
// that wait behind a link name the socket by number and look it up only
// when they run, and a cancel by descriptor does not reach them (they
// have no file yet). Closed earlier, the number could go to the next
// accepted connection, and the rest of this one's answer to it.
func (sh *Shard) closeConn(c *conn) {
	if c.state != connOpen {
		return
	}
	c.state = connClosing
	sh.cancelAndShutdown(c.fd, tag(opCancel, c.slot, c.gen), tag(opShutdown, c.slot, c.gen))
	c.opsInFlight += 2
}

// cancelAndShutdown submits a cancel of every SQE on fd, hard-linked to a
// shutdown of the socket: two completions, tagged cancelTag and
// shutdownTag. The descriptor stays open until both are in (closeConn).
func (sh *Shard) cancelAndShutdown(fd int, cancelTag, shutdownTag uint64) {
	sqe := sh.sqe()
	sqe.PrepCancelFD(fd, ring.AsyncCancelAll)
	sqe.SetUserData(cancelTag)
	sqe.SetFlags(ring.SQEIOHardlink)
	sqe = sh.sqe()
	sqe.PrepShutdown(fd, unix.SHUT_RDWR)
	sqe.SetUserData(shutdownTag)
}

func (sh *Shard) opDone(c *conn) {
	c.opsInFlight--
	if c.state == connClosing {
		sh.maybeFree(c)
	} else {
		sh.resumeIfRoom(c)
	}
}

// maybeFree returns a closing connection's slot once nothing is in flight.
func (sh *Shard) maybeFree(c *conn) {
	if c.state != connClosing || c.opsInFlight > 0 {
		return
	}
	if c.splice.pipe != nil {
		sh.returnPipe(c.splice.pipe, false) // may hold bytes never sent
	}
	// Nothing is in flight on the connection, so no SQE names its socket
	// or the descriptors of its unsent answers any more.
	if err := unix.Close(c.fd); err != nil {
		sh.log.Warn("close connection", "slot", c.slot, "err", err)
	}
	c.releaseHolds()
	sh.stopWaiting(c)
	if c.directBuf != nil {
		sh.unrefDirect(c.directBuf)
		c.direct, c.directBuf = nil, nil
	}
	if c.partialPool != nil {
		sh.unrefDirect(c.partialPool)
		c.partialPool, c.partial = nil, nil
	}
	c.splice = spliceState{}
	c.state = 0
	c.gen++ // late completions and answers for the old connection miss
	c.release()
	sh.freeSlots = append(sh.freeSlots, c.slot)
	sh.open--
	sh.stats.Closed.Add(1)
	sh.stats.Open.Store(int64(sh.open))
}
