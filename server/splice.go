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

// FileHold keeps the descriptors of an answer's file spans open. The
// kernel resolves a linked SQE's descriptor only when the SQE before it
// completes, so a descriptor closed while a chain waits (and perhaps
// reused for another file or socket) would send the wrong bytes; the
// owner of the files closes them only after the hold is released.
type FileHold interface {
	// Release says the spans' descriptors are no longer needed. It is
	// called once, on the shard thread that answered.
	Release()
}

func releaseHold(h FileHold) {
	if h != nil {
		h.Release()
	}
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
	// chunk is the most one splice pair moves: the pipe's capacity less
	// a page. A pipe holds a whole number of pages, one per slot, and a
	// range of the file that does not start on a page boundary touches
	// one page more than its length suggests; with a page to spare it
	// always fits, so a file -> pipe splice moves its whole chunk.
	chunk int64
}

// spliceChainPairsMax bounds the splice pairs linked into one chain: a
// chain is 2*spliceChainPairsMax SQEs that must go to the kernel in one
// submission, and its op indexes must fit the tag's kind byte.
const spliceChainPairsMax = 16

// spliceState is a connection's progress through an answer's file spans.
//
// The spans go out in chains of linked SQEs, file -> pipe then pipe ->
// socket for each chunk of a pipe's size, all in one io-wq worker back to
// back.
// Every SQE but the last carries CQE_SKIP_SUCCESS, so a chain posts one
// completion: its last SQE's when every one moved its whole chunk, or
// else the first SQE's that moved less (or failed). That one breaks the
// link, and because it carried CQE_SKIP_SUCCESS the kernel cancels the
// rest of the chain without posting their completions. Each chain SQE
// carries its index in the tag, so the one completion says where the
// chain stopped and what the pipe still holds.
type spliceState struct {
	files []FileSpan
	idx   int   // current span
	off   int64 // bytes of the current span sent to the socket
	pipe  *pipePair
	// held is what the pipe holds that has not reached the socket (after
	// a chain stopped short); it is sent before the next chain starts.
	held int64

	// The chain in flight, if chainPairs > 0.
	chain      [spliceChainPairsMax]int64 // bytes each pair moves
	chainPairs int
	// envelope is the size of the answer's envelope when its send is
	// linked ahead of the first chain: counted as sent when the chain
	// completes (a failed send posts instead, and the chain is dropped).
	envelope int64

	start time.Time // when the spans began, for the splice-time counters
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
	page := unix.Getpagesize()
	if size < 2*page {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("pipe of %d bytes: too small to splice through", size)
	}
	sh.pipes++
	return &pipePair{r: fds[0], w: fds[1], chunk: int64(size - page)}, nil
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

// spliceNext sends what the pipe still holds, or submits the next chain,
// or finishes when every span is sent.
func (sh *Shard) spliceNext(c *conn) {
	sp := &c.splice
	if sp.held == 0 {
		for sp.idx < len(sp.files) && sp.off >= sp.files[sp.idx].Len {
			sp.idx++
			sp.off = 0
		}
	}
	if sp.idx >= len(sp.files) {
		if sp.pipe != nil {
			sh.returnPipe(sp.pipe, true)
		}
		sh.stats.SplicedAnswers.Add(1)
		sh.stats.SpliceNanos.Add(uint64(time.Since(sp.start)))
		c.splice = spliceState{}
		releaseHold(c.filesHold)
		c.filesHold = nil
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
	if sp.held > 0 {
		sqe := sh.sqe()
		sqe.PrepSplice(sp.pipe.r, -1, c.fd, -1, uint32(sp.held), unix.SPLICE_F_MOVE)
		sqe.SetUserData(tag(opSpliceOut, c.slot, c.gen))
		c.opsInFlight++
		return
	}
	sh.submitChain(c)
}

// sendLinkedToSplice sends the gathered answers (the last of which has
// file spans) linked ahead of the spans' first splice chain, so the chain
// starts in the kernel as soon as the envelope is out, without a turn of
// the shard in between. The send carries MSG_WAITALL, so it completes only
// whole, and CQE_SKIP_SUCCESS: send and chain post one completion between
// them, the chain's, or the send's if it fails (the kernel then drops the
// chain without completions). It returns false, leaving the plain path to
// send, when no pipe is free or the spans are empty.
func (sh *Shard) sendLinkedToSplice(c *conn) bool {
	files := c.pendingFiles
	idx := 0
	for idx < len(files) && files[idx].Len == 0 {
		idx++
	}
	if idx == len(files) || c.splice.pipe != nil {
		return false
	}
	p, err := sh.takePipe()
	if err != nil || p == nil {
		return false // the plain path waits for a pipe, or reports the error
	}
	c.splice = spliceState{files: files, idx: idx, pipe: p, start: time.Now(),
		envelope: int64(len(c.sendBuf) - c.sendOff)}
	c.pendingFiles = nil
	c.sending = true
	sh.reserveSQEs(1 + 2*spliceChainPairsMax)
	sqe := sh.sqe()
	sqe.PrepSend(c.fd, c.sendBuf[c.sendOff:], unix.MSG_NOSIGNAL|unix.MSG_WAITALL)
	sqe.SetUserData(tag(opSendLinked, c.slot, c.gen))
	sqe.SetFlags(ring.SQEIOLink | ring.SQECQESkipSuccess)
	sh.submitChain(c)
	return true
}

// onSendLinked takes the completion of an envelope send linked ahead of a
// splice chain, which posts only when it failed: the answer cannot be
// completed, so the connection ends.
func (sh *Shard) onSendLinked(c *conn, cqe ring.CQE) {
	c.opsInFlight-- // the send and its chain were one operation
	c.splice.chainPairs = 0
	if c.state != connOpen {
		sh.maybeFree(c)
		return
	}
	sh.log.Debug("fetch answer envelope not sent", "res", cqe.Res)
	sh.failSplice(c)
}

// submitChain links the next chunks of the spans, up to
// spliceChainPairsMax pairs, into one chain.
func (sh *Shard) submitChain(c *conn) {
	sp := &c.splice
	// The chain must reach the kernel in one submission: a chain split
	// between two would run as two, concurrently, out of order.
	sh.reserveSQEs(2 * spliceChainPairsMax)
	idx, off := sp.idx, sp.off
	n := 0
	var last *ring.SQE
	for n < spliceChainPairsMax && idx < len(sp.files) {
		f := sp.files[idx]
		chunk := min(f.Len-off, sp.pipe.chunk)
		sp.chain[n] = chunk
		sqe := sh.sqe()
		sqe.PrepSplice(f.FD, f.Pos+off, sp.pipe.w, -1, uint32(chunk), unix.SPLICE_F_MOVE)
		sqe.SetUserData(tag(opSpliceChain+opKind(2*n), c.slot, c.gen))
		sqe.SetFlags(ring.SQEIOLink | ring.SQECQESkipSuccess)
		sqe = sh.sqe()
		sqe.PrepSplice(sp.pipe.r, -1, c.fd, -1, uint32(chunk), unix.SPLICE_F_MOVE)
		sqe.SetUserData(tag(opSpliceChain+opKind(2*n+1), c.slot, c.gen))
		sqe.SetFlags(ring.SQEIOLink | ring.SQECQESkipSuccess)
		last = sqe
		n++
		if off += chunk; off >= f.Len {
			idx, off = idx+1, 0
		}
	}
	// The last SQE ends the chain and always posts.
	last.Flags &^= ring.SQEIOLink | ring.SQECQESkipSuccess
	sp.chainPairs = n
	c.opsInFlight++ // one completion ends the chain
}

// onSpliceChain takes a chain's one completion, from SQE op of the chain.
func (sh *Shard) onSpliceChain(c *conn, op int, cqe ring.CQE) {
	sp := &c.splice
	if sp.chainPairs == 0 || op >= 2*sp.chainPairs {
		panic(fmt.Sprintf("server: shard %d: splice completion from SQE %d outside a chain of %d pairs",
			sh.id, op, sp.chainPairs))
	}
	c.opsInFlight--
	stop, res := op, int64(cqe.Res)
	pairs := sp.chainPairs
	sp.chainPairs = 0
	if c.state != connOpen {
		sh.maybeFree(c)
		return
	}
	if sp.envelope > 0 {
		// The chain ran, so the envelope linked ahead of it went out whole.
		sh.stats.BytesOut.Add(uint64(sp.envelope))
		c.sendOff += int(sp.envelope)
		sp.envelope = 0
	}
	// Every pair before the stopping SQE's pair moved its whole chunk.
	pair := stop / 2
	var sent int64
	for i := range pair {
		sp.advance(sp.chain[i])
		sent += sp.chain[i]
	}
	switch {
	case res < 0:
		// -ECANCELED here: the chain was cancelled, which only closing
		// the connection does, and that is handled above.
		sh.log.Warn("fetch answer splice failed", "res", res, "err", unix.Errno(-res), "file_side", stop%2 == 0)
		sh.failSplice(c)
		return
	case stop%2 == 0:
		// The file gave fewer bytes than asked (none: it is shorter than
		// the envelope promised, and the stream can no longer be framed).
		if res == 0 {
			sh.log.Warn("segment shorter than its fetch span")
			sh.failSplice(c)
			return
		}
		sp.held = res
	default:
		sp.held = sp.chain[pair] - res
		sp.advance(res)
		sent += res
	}
	if stop != 2*pairs-1 {
		sh.stats.SpliceChainsStopped.Add(1)
	}
	sh.stats.BytesOut.Add(uint64(sent))
	c.lastActiveMs = sh.now()
	sh.spliceNext(c)
}

// onSpliceOut takes the completion of a single pipe -> socket send of
// what a stopped chain left in the pipe.
func (sh *Shard) onSpliceOut(c *conn, cqe ring.CQE) {
	c.opsInFlight--
	sp := &c.splice
	if c.state != connOpen {
		sh.maybeFree(c)
		return
	}
	if cqe.Res <= 0 {
		sh.failSplice(c)
		return
	}
	n := int64(cqe.Res)
	sp.held -= n
	sp.advance(n)
	sh.stats.BytesOut.Add(uint64(n))
	c.lastActiveMs = sh.now()
	sh.spliceNext(c)
}

// advance counts n more bytes sent to the socket. Chunks never cross a
// span's end, so n stays within the current span.
func (sp *spliceState) advance(n int64) {
	sp.off += n
	if sp.off > sp.files[sp.idx].Len {
		panic(fmt.Sprintf("server: splice sent %d bytes of a %d-byte span", sp.off, sp.files[sp.idx].Len))
	}
	if sp.off == sp.files[sp.idx].Len && sp.held == 0 {
		sp.idx++
		sp.off = 0
	}
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
