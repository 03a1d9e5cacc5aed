package server

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/ring"
)

// FileSpan is a range of a file to send after an answer's envelope, moved
// file -> pipe -> socket by linked SPLICE SQEs without entering user memory.
type FileSpan struct {
	FD  int
	Pos int64
	Len int64
}

const (
	// pipeBytes is each splice pipe's capacity (F_SETPIPE_SZ), and the
	// most one linked splice pair moves. 1 MiB is the default
	// /proc/sys/fs/pipe-max-size.
	pipeBytes = 1 << 20
	// pipesPerShardMax bounds the pipes a shard keeps: connections sending
	// file bytes at once beyond it wait for a pipe.
	pipesPerShardMax = 256
)

// pipePair is a pipe a connection borrows while it splices.
type pipePair struct {
	r, w int
	size int64 // capacity: the most one splice pair moves
}

// spliceState is a connection's progress through an answer's file spans.
type spliceState struct {
	files   []FileSpan
	idx     int   // current span
	off     int64 // bytes of the current span fully sent
	pipe    *pipePair
	chunk   int64 // bytes asked of the file -> pipe splice in flight
	inDone  bool
	inMoved int64 // bytes the file -> pipe splice moved
	outSent int64 // bytes moved pipe -> socket for this chunk
	outBusy bool
	start   time.Time // when the spans began, for the splice-time counters
}

// takePipe lends a pipe, making one if the shard has fewer than the
// maximum; nil means the connection must wait.
func (sh *Shard) takePipe() (*pipePair, error) {
	if n := len(sh.freePipes); n > 0 {
		p := sh.freePipes[n-1]
		sh.freePipes = sh.freePipes[:n-1]
		return p, nil
	}
	if sh.pipes >= pipesPerShardMax {
		return nil, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	// A bigger pipe moves more per splice pair. The system may cap pipes
	// lower (fs.pipe-max-size); the chunk size follows what the pipe got.
	size, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pipeBytes)
	if err != nil {
		size, err = unix.FcntlInt(uintptr(fds[1]), unix.F_GETPIPE_SZ, 0)
	}
	if err != nil || size <= 0 {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("pipe size: %w", err)
	}
	sh.pipes++
	return &pipePair{r: fds[0], w: fds[1], size: int64(size)}, nil
}

// returnPipe gives a pipe back; a pipe that may hold stray bytes (a failed
// send) is closed instead of reused.
func (sh *Shard) returnPipe(p *pipePair, clean bool) {
	if clean {
		sh.freePipes = append(sh.freePipes, p)
	} else {
		unix.Close(p.r)
		unix.Close(p.w)
		sh.pipes--
	}
	if len(sh.pipeWaiters) > 0 && sh.pipes < pipesPerShardMax || len(sh.freePipes) > 0 {
		sh.wakePipeWaiter()
	}
}

func (sh *Shard) wakePipeWaiter() {
	for len(sh.pipeWaiters) > 0 {
		ref := sh.pipeWaiters[0]
		sh.pipeWaiters = sh.pipeWaiters[1:]
		if c := sh.connOf(ref); c != nil && c.splice.files != nil && c.splice.pipe == nil {
			sh.spliceNext(c)
			return
		}
	}
}

func (sh *Shard) closePipes() {
	for _, p := range sh.freePipes {
		unix.Close(p.r)
		unix.Close(p.w)
	}
	sh.freePipes = nil
}

// startSplice begins sending c's pending file spans.
func (sh *Shard) startSplice(c *conn) {
	sh.spliceNext(c)
}

// spliceNext submits the next linked file -> pipe -> socket pair, or
// finishes when every span is sent.
func (sh *Shard) spliceNext(c *conn) {
	sp := &c.splice
	for sp.idx < len(sp.files) && sp.off >= sp.files[sp.idx].Len {
		sp.idx++
		sp.off = 0
	}
	if sp.idx >= len(sp.files) {
		if sp.pipe != nil {
			sh.returnPipe(sp.pipe, true)
		}
		sh.stats.SplicedAnswers.Add(1)
		sh.stats.SpliceNanos.Add(uint64(time.Since(sp.start)))
		c.splice = spliceState{}
		c.sending = false
		sh.afterSend(c)
		return
	}
	if sp.pipe == nil {
		p, err := sh.takePipe()
		if err != nil {
			sh.log.Warn("no pipe for a fetch answer", "err", err)
			sh.closeConn(c)
			return
		}
		if p == nil {
			sh.pipeWaiters = append(sh.pipeWaiters, c.ref())
			return
		}
		sp.pipe = p
	}
	f := sp.files[sp.idx]
	sp.chunk = min(f.Len-sp.off, sp.pipe.size)
	sp.inDone, sp.inMoved, sp.outSent, sp.outBusy = false, 0, 0, true
	sqe := sh.sqe()
	sqe.PrepSplice(f.FD, f.Pos+sp.off, sp.pipe.w, -1, uint32(sp.chunk), unix.SPLICE_F_MOVE)
	sqe.SetUserData(tag(opSpliceIn, c.slot, c.gen))
	sqe.SetFlags(ring.SQEIOLink)
	sqe = sh.sqe()
	sqe.PrepSplice(sp.pipe.r, -1, c.fd, -1, uint32(sp.chunk), unix.SPLICE_F_MOVE)
	sqe.SetUserData(tag(opSpliceOut, c.slot, c.gen))
	c.opsInFlight += 2
}

func (sh *Shard) onSpliceIn(c *conn, cqe ring.CQE) {
	c.opsInFlight--
	sp := &c.splice
	if c.state != connOpen {
		sh.maybeFree(c)
		return
	}
	if cqe.Res <= 0 {
		// The file could not give the bytes the envelope promised: the
		// stream can no longer be framed, so the connection ends.
		sh.log.Warn("splice from a segment failed", "res", cqe.Res, "err", cqe.Err())
		sh.failSplice(c)
		return
	}
	sp.inDone = true
	sp.inMoved = int64(cqe.Res)
	sh.spliceProgress(c)
}

func (sh *Shard) onSpliceOut(c *conn, cqe ring.CQE) {
	c.opsInFlight--
	sp := &c.splice
	if c.state != connOpen {
		sh.maybeFree(c)
		return
	}
	sp.outBusy = false
	switch {
	case cqe.Res == -int32(unix.ECANCELED):
		// The file -> pipe half moved fewer bytes than asked, which
		// breaks the link; what it moved is sent below.
	case cqe.Res < 0:
		sh.failSplice(c)
		return
	default:
		sp.outSent += int64(cqe.Res)
		sh.stats.BytesOut.Add(uint64(cqe.Res))
	}
	sh.spliceProgress(c)
}

// spliceProgress moves on once both halves of a pair have completed:
// send what is still in the pipe, or start the next pair.
func (sh *Shard) spliceProgress(c *conn) {
	sp := &c.splice
	if !sp.inDone || sp.outBusy {
		return
	}
	if left := sp.inMoved - sp.outSent; left > 0 {
		sp.outBusy = true
		sqe := sh.sqe()
		sqe.PrepSplice(sp.pipe.r, -1, c.fd, -1, uint32(left), unix.SPLICE_F_MOVE)
		sqe.SetUserData(tag(opSpliceOut, c.slot, c.gen))
		c.opsInFlight++
		return
	}
	sp.off += sp.inMoved
	c.lastActiveMs = sh.now()
	sh.spliceNext(c)
}

func (sh *Shard) failSplice(c *conn) {
	if c.splice.pipe != nil {
		sh.returnPipe(c.splice.pipe, false)
	}
	c.splice = spliceState{}
	sh.closeConn(c)
}

// connOf finds a live connection by reference.
func (sh *Shard) connOf(ref ConnRef) *conn {
	if int(ref.slot) >= len(sh.conns) {
		return nil
	}
	c := sh.conns[ref.slot]
	if c == nil || c.gen != ref.gen || c.state != connOpen {
		return nil
	}
	return c
}
