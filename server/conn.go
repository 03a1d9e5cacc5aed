package server

import "encoding/binary"

// ConnRef names a connection across time: a slot in the shard's table and
// the generation of the connection in it. A handler that answers later keeps
// the ConnRef; if the connection closed meanwhile the answer is dropped.
type ConnRef struct {
	slot uint32
	gen  uint32
}

type connState uint8

const (
	connOpen connState = iota + 1
	connClosing
)

// response is one answer waiting for its turn to be sent.
type response struct {
	ready bool
	// unordered marks, in the ordered ring, a request whose answer was
	// taken out of the order (Request.AnswerUnordered): the ordered stream
	// passes over its slot without waiting, and its answer travels in
	// conn.unorderedReady instead.
	unordered bool
	data      []byte     // length prefix included
	files     []FileSpan // sent after data, spliced from files
	hold      FileHold   // keeps the files' descriptors open
}

// conn is one client connection, owned by its shard.
type conn struct {
	slot  uint32
	gen   uint32
	fd    int
	state connState

	lastActiveMs int64
	opsInFlight  int // SQEs submitted for this connection and not yet completed for good

	// Receiving. partial holds bytes of requests not yet dispatched: an
	// incomplete request, or whole ones waiting while the connection is at
	// its in-flight cap. partialDetached is set when a handler retained a
	// request body that lives in partial, so partial must not be reused.
	closeAfter     bool  // no more requests; close once answered
	discard        int64 // bytes of an oversized request still to drop
	recvArmed      bool
	recvCancelling bool // a cancel of the multishot receive is in flight
	// direct is a large request being received into its own buffer;
	// directHave bytes of it are in.
	direct        []byte
	directHave    int
	directBuf     *pooledBuf // the pooled buffer direct lies in
	directRecving bool       // a RECV into direct is in flight
	// budgetWait: the large request at the front of partial waits for
	// the shard's request budget; receiving is stopped meanwhile. It is
	// apart from recvPaused (the in-flight and pending-bytes caps): each
	// is lifted by its own event.
	budgetWait   bool
	waitingBytes int64  // partial bytes counted as waiting for budget
	waitSeq      uint64 // which wait for budget this is (budgetWaiter.seq)
	// partialPool is set while partial lies in a pooled buffer (a direct
	// request handed to the parser); the connection holds one reference.
	partialPool     *pooledBuf
	recvPaused      bool
	partial         []byte
	partialDetached bool

	// Requests and responses: requests take sequence numbers as they
	// arrive; responses go out strictly in that order, except those of
	// requests taken out of it (Request.AnswerUnordered): their seqs wait
	// in unorderedWaiting until answered, then their answers wait in
	// unorderedReady and go out ahead of the ordered ones, each whole.
	nextSeq          uint64
	sendSeq          uint64
	responses        []response
	unorderedWaiting []uint64
	unorderedReady   []response
	sendBuf          []byte
	sendOff          int
	sending          bool
	// After sendBuf, the file spans of the last answer gathered into it.
	pendingFiles []FileSpan
	splice       spliceState
	// filesHold keeps open the descriptors of the answer in pendingFiles
	// or splice, from the gathering of its envelope until its last span
	// is sent or the connection is freed.
	filesHold FileHold
}

func (c *conn) ref() ConnRef { return ConnRef{slot: c.slot, gen: c.gen} }

// inflight is how many requests were received and not yet answered (an
// unordered one is counted twice while its mark waits in the ordered ring
// behind an unanswered request, which keeps inflight above zero anyway).
func (c *conn) inflight() int {
	return int(c.nextSeq-c.sendSeq) + c.unorderedOpen()
}

// unorderedOpen is how many unordered requests are not yet answered, or
// answered and not yet gathered for sending.
func (c *conn) unorderedOpen() int { return len(c.unorderedWaiting) + len(c.unorderedReady) }

// atCap reports whether c may take no more requests now: at the in-flight
// cap, or at the cap on unordered requests (the next request might be one).
func (c *conn) atCap() bool {
	return c.inflight() >= inflightPerConnMax || c.unorderedOpen() >= unorderedPerConnMax
}

// reset prepares a slot for a new connection, keeping its buffers.
func (c *conn) reset(fd int, nowMs int64) {
	c.gen++
	c.fd = fd
	c.state = connOpen
	c.lastActiveMs = nowMs
	c.opsInFlight = 0
	c.recvArmed, c.recvPaused, c.closeAfter = false, false, false
	c.discard = 0
	c.recvCancelling = false
	c.direct, c.directHave, c.directBuf, c.partialPool = nil, 0, nil, nil
	c.directRecving, c.budgetWait, c.waitingBytes = false, false, 0
	c.partial = c.partial[:0]
	c.partialDetached = false
	c.nextSeq, c.sendSeq = 0, 0
	if c.responses == nil {
		c.responses = make([]response, responsesInitial)
	}
	for i := range c.responses {
		if c.responses[i].hold != nil {
			panic("server: invariant: a reused connection slot still holds an answer's files")
		}
		c.responses[i].ready, c.responses[i].unordered = false, false
		c.responses[i].data = c.responses[i].data[:0]
	}
	for i := range c.unorderedReady {
		if c.unorderedReady[i].hold != nil {
			panic("server: invariant: a reused connection slot still holds an unordered answer's files")
		}
	}
	c.unorderedWaiting = c.unorderedWaiting[:0]
	c.unorderedReady = c.unorderedReady[:0]
	c.sendBuf = c.sendBuf[:0]
	c.sendOff = 0
	c.sending = false
	c.pendingFiles = nil
	c.splice = spliceState{}
}

// release drops the buffers of a closed connection that grew large, so an
// idle slot holds little memory.
func (c *conn) release() {
	const keepBytes = 64 << 10
	if cap(c.partial) > keepBytes {
		c.partial = nil
	}
	if cap(c.sendBuf) > keepBytes {
		c.sendBuf = nil
	}
	if len(c.responses) > responsesInitial {
		c.responses = nil // a pipelining client grew it; the next one starts small
	}
	for i := range c.responses {
		if cap(c.responses[i].data) > keepBytes {
			c.responses[i].data = nil
		}
	}
	// The unordered queue is empty here; its spare entries keep data
	// buffers for reuse, which go when the queue or a buffer grew large.
	if cap(c.unorderedReady) > responsesInitial {
		c.unorderedReady = nil
	}
	spare := c.unorderedReady[:cap(c.unorderedReady)]
	for i := range spare {
		if cap(spare[i].data) > keepBytes {
			spare[i].data = nil
		}
	}
	if cap(c.unorderedWaiting) > responsesInitial {
		c.unorderedWaiting = nil
	}
}

// unorderedPerConnMax bounds the unordered requests (Request.AnswerUnordered)
// one connection may have unanswered or waiting to be sent: room for a
// follower's fetches of a few hundred partitions long-polling at once. At
// it, the shard reads no more requests from the connection (as at
// inflightPerConnMax) until one is answered.
const unorderedPerConnMax = 512

// responsesInitial is the starting size of a connection's ring of pending
// answers. It doubles as a pipelining client needs, up to
// inflightPerConnMax, so an idle connection holds little memory.
const responsesInitial = 8

// makeRoom grows the answer ring so request seq has a slot, keeping every
// pending answer at its place (seq modulo the ring size).
func (c *conn) makeRoom(seq uint64) {
	n := uint64(len(c.responses))
	if seq-c.sendSeq < n {
		return
	}
	grown := make([]response, min(2*n, inflightPerConnMax))
	for s := c.sendSeq; s < seq; s++ {
		grown[s%uint64(len(grown))] = c.responses[s%n]
	}
	c.responses = grown
}

// frameResult says what parseRequests found.
type frameResult uint8

const (
	frameNeedMore frameResult = iota // an incomplete request remains
	frameAtCap                       // the in-flight cap stopped parsing
	frameTooLarge                    // a length prefix above requestBytesMax
)

// nextRequest splits the first whole request off buf. It returns the
// message (length prefix included), the rest of buf, and ok=false with a
// reason when buf holds no whole request.
func nextRequest(buf []byte) (msg, rest []byte, res frameResult, ok bool) {
	if len(buf) < lengthPrefixBytes {
		return nil, buf, frameNeedMore, false
	}
	n := binary.LittleEndian.Uint32(buf)
	if n > requestBytesMax {
		return nil, buf, frameTooLarge, false
	}
	end := lengthPrefixBytes + int(n)
	if len(buf) < end {
		return nil, buf, frameNeedMore, false
	}
	return buf[:end:end], buf[end:], 0, true
}

// storeResponse stores the answer to request seq: a whole message, its
// length prefix included.
func (c *conn) storeResponse(seq uint64, msg []byte, files []FileSpan, hold FileHold) bool {
	for i, s := range c.unorderedWaiting {
		if s == seq {
			last := len(c.unorderedWaiting) - 1
			c.unorderedWaiting[i] = c.unorderedWaiting[last]
			c.unorderedWaiting = c.unorderedWaiting[:last]
			c.storeUnordered(msg, files, hold)
			return true
		}
	}
	if seq < c.sendSeq || seq >= c.nextSeq {
		return false // not a request of this connection awaiting an answer
	}
	r := &c.responses[seq%uint64(len(c.responses))]
	if r.ready || r.unordered {
		return false // answered twice
	}
	r.data = append(r.data[:0], msg...)
	r.files = files
	r.hold = hold
	r.ready = true
	return true
}

// storeUnordered queues an unordered answer to go out next, reusing the
// data buffer a past answer left in the queue's spare capacity.
func (c *conn) storeUnordered(msg []byte, files []FileSpan, hold FileHold) {
	n := len(c.unorderedReady)
	if n < cap(c.unorderedReady) {
		c.unorderedReady = c.unorderedReady[:n+1]
	} else {
		c.unorderedReady = append(c.unorderedReady, response{})
	}
	r := &c.unorderedReady[n]
	r.data = append(r.data[:0], msg...)
	r.files, r.hold, r.ready = files, hold, true
}

// markUnordered takes request seq, being served, out of the ordered
// stream: its answer goes out as soon as it is given.
func (c *conn) markUnordered(seq uint64) bool {
	if seq < c.sendSeq || seq >= c.nextSeq {
		return false
	}
	r := &c.responses[seq%uint64(len(c.responses))]
	if r.ready || r.unordered {
		return false // already answered, or already taken out
	}
	r.unordered = true
	c.unorderedWaiting = append(c.unorderedWaiting, seq)
	c.passUnorderedMarks()
	return true
}

// passUnorderedMarks moves the ordered stream's head past the marks of
// unordered requests: their slots hold no answer to wait for. It does not
// touch what is being sent, so it runs whether or not a send is in flight.
func (c *conn) passUnorderedMarks() {
	for c.sendSeq < c.nextSeq {
		r := &c.responses[c.sendSeq%uint64(len(c.responses))]
		if !r.unordered {
			return
		}
		r.unordered = false
		c.sendSeq++
	}
}

// gatherResponses moves the ready answers at the head of the order into
// sendBuf, up to and including the first that carries file spans (those
// must follow its envelope on the wire before anything else), and reports
// whether there is anything to send.
//
// Unordered answers that are ready go first, in the order they were
// given: each is whole in sendBuf, and one with file spans ends the
// gathering just as an ordered one does, so no answer's bytes or spans are
// ever split by another's.
func (c *conn) gatherResponses() bool {
	c.passUnorderedMarks()
	if c.sending {
		return false
	}
	c.sendBuf = c.sendBuf[:0]
	c.sendOff = 0
	if c.gatherUnordered() {
		return true
	}
	for c.sendSeq < c.nextSeq {
		r := &c.responses[c.sendSeq%uint64(len(c.responses))]
		if r.unordered {
			r.unordered = false
			c.sendSeq++
			continue
		}
		if !r.ready {
			break
		}
		c.sendBuf = append(c.sendBuf, r.data...)
		files, hold := r.files, r.hold
		r.ready = false
		r.data = r.data[:0]
		r.files, r.hold = nil, nil
		c.sendSeq++
		if len(files) > 0 {
			if c.filesHold != nil {
				panic("server: invariant: an answer's files gathered while another's are held")
			}
			c.pendingFiles, c.filesHold = files, hold
			break
		}
		releaseHold(hold)
	}
	return len(c.sendBuf) > 0
}

// gatherUnordered moves the ready unordered answers into sendBuf, up to
// and including the first with file spans, and reports whether it stopped
// there (the gathering must end with that answer).
func (c *conn) gatherUnordered() bool {
	i := 0
	stopped := false
	for i < len(c.unorderedReady) && !stopped {
		r := &c.unorderedReady[i]
		i++
		c.sendBuf = append(c.sendBuf, r.data...)
		files, hold := r.files, r.hold
		r.ready, r.data, r.files, r.hold = false, r.data[:0], nil, nil
		if len(files) > 0 {
			if c.filesHold != nil {
				panic("server: invariant: an answer's files gathered while another's are held")
			}
			c.pendingFiles, c.filesHold = files, hold
			stopped = true
			break
		}
		releaseHold(hold)
	}
	// The answers left move to the front; entries are swapped, not
	// copied, so no two share a data buffer.
	rest := c.unorderedReady[i:]
	for j := range rest {
		c.unorderedReady[j], rest[j] = rest[j], c.unorderedReady[j]
	}
	c.unorderedReady = c.unorderedReady[:len(rest)]
	return stopped
}

// releaseHolds releases the holds of every answer the connection still
// has, sent or not: it is called once nothing is in flight on it.
func (c *conn) releaseHolds() {
	releaseHold(c.filesHold)
	c.filesHold = nil
	for i := range c.responses {
		r := &c.responses[i]
		releaseHold(r.hold)
		r.hold, r.files, r.ready, r.unordered = nil, nil, false, false
	}
	for i := range c.unorderedReady {
		r := &c.unorderedReady[i]
		releaseHold(r.hold)
		r.hold, r.files, r.ready = nil, nil, false
	}
	c.unorderedReady = c.unorderedReady[:0]
	c.unorderedWaiting = c.unorderedWaiting[:0]
}
