package server

import "fmt"

// The request budget bounds the memory a shard holds for large requests
// (Kafka's queued.max.request.bytes). A request of at least
// directRecvMinBytes is received into a buffer of its own; the bytes of
// that buffer are reserved from the shard's budget when its length prefix
// is seen, before the buffer is allocated, so a length prefix alone never
// makes the shard allocate what the budget has not granted. A connection
// whose next request cannot be granted waits: its receive is cancelled, the
// few bytes it already delivered wait in its partial buffer, and the rest
// stays in the kernel's socket buffer (TCP pushes back on the client). As
// buffers are let go (the request answered, a produce's bytes written, the
// connection closed) their bytes return to the budget and waiting
// connections are granted in the order they began to wait.
//
// Requests smaller than directRecvMinBytes are parsed in place from the
// provided buffers (fixed per shard) or from a connection's partial buffer,
// which its in-flight and pending-bytes caps bound; they never wait for the
// budget, so small requests keep flowing while large ones wait.
//
// Its limits (requestBudgetBytesDefault, requestBudgetBytesMin,
// budgetWaitingShare, budgetWaitingBytesMin, directPoolBudgetShare,
// budgetStaleWaitersMax) are in limits.go with the shard's others.

// budgetWaiter is one wait of a connection for budget: seq tells it from
// a later wait of the same connection.
type budgetWaiter struct {
	ref ConnRef
	seq uint64
}

// requestBudget is a shard's account of the bytes its large requests
// hold. It is touched only by the shard's thread.
type requestBudget struct {
	limitBytes  int64 // this shard's share
	usedBytes   int64 // reserved by buffers not yet let go
	passedBytes int64 // of usedBytes, by requests that passed waiting ones
	// waiters[head:] are the waits for budget, in the order they began.
	// An entry whose connection closed or stopped waiting is dropped when
	// it reaches the front, or when the queue is compacted.
	waiters []budgetWaiter
	head    int
	waitSeq uint64 // the seq of the last wait begun
	waiting int    // connections with budgetWait set
	granted bool   // a grant pass is queued for the end of the turn
	// waitingBytes is what the waiting connections' partial buffers hold,
	// bounded by waitingMaxBytes.
	waitingBytes    int64
	waitingMaxBytes int64
}

// newRequestBudget is a shard's budget of limitBytes.
func newRequestBudget(limitBytes int64) requestBudget {
	return requestBudget{limitBytes: limitBytes,
		waitingMaxBytes: max(limitBytes/budgetWaitingShare, budgetWaitingBytesMin)}
}

// directBufBytes is the size of the buffer takeDirect returns for a request
// of size bytes: what its reservation must cover.
func directBufBytes(size int) int64 {
	if class := directClass(size); class <= directPooledBytesMax {
		return int64(class)
	}
	return int64(size)
}

// fits reports whether n more bytes may be granted with used reserved:
// within the limit, or alone (so that a request larger than the whole
// budget is served when the shard holds nothing else, as Kafka does).
func (b *requestBudget) fits(used, n int64) bool {
	return used+n <= b.limitBytes || used == 0
}

// tryReserve grants n bytes to a request when the budget allows: the
// connection at the head of the waiters (queued) when they fit; a request
// that would begin to wait only when no one waits, or when it passes them
// (see mayPass). passed says it did, so its release is told apart.
func (sh *Shard) tryReserve(n int64, queued bool) (granted, passed bool) {
	b := &sh.budget
	if !queued && sh.pruneWaiters() > 0 {
		if !sh.mayPass(n) {
			return false, false
		}
		b.passedBytes += n
		passed = true
		sh.stats.RequestBudgetPassed.Add(1)
	} else if !b.fits(b.usedBytes, n) {
		return false, false
	}
	b.usedBytes += n
	sh.noteUsed()
	return true, passed
}

// mayPass reports whether a request of n bytes may be granted ahead of the
// connections waiting: when it fits in what the budget has left, and the
// connection at the head of the queue would not be granted even if every
// request that passed it let go, so that passing never delays it. While
// budget holders do not let go (requests that arrive slowly), requests
// that arrive whole and are done quickly still go through in what is left;
// once the head waits only for those that passed it, none passes it until
// it is granted.
func (sh *Shard) mayPass(n int64) bool {
	b := &sh.budget
	if b.usedBytes+n > b.limitBytes {
		return false
	}
	head := sh.waiterConn(b.waiters[b.head])
	var need int64
	if size, large := largeHead(head.partial); large && len(head.partial) < size {
		need = directBufBytes(size)
	}
	return !b.fits(b.usedBytes-b.passedBytes, need)
}

// chargeBudget counts n bytes that are already in hand (bytes that arrived
// while a receive was being cancelled, moved into a buffer of their own):
// they are charged even past the limit, since refusing them would mean
// dropping bytes the client sent.
func (sh *Shard) chargeBudget(n int64) {
	sh.budget.usedBytes += n
	sh.noteUsed()
}

// releaseBudget returns the reservation of a buffer let go for good, and
// queues a grant for the connections waiting.
func (sh *Shard) releaseBudget(pb *pooledBuf) {
	if pb.reserved == 0 && pb.waiting == 0 {
		return
	}
	b := &sh.budget
	b.usedBytes -= pb.reserved
	if pb.passed {
		b.passedBytes -= pb.reserved
	}
	b.waitingBytes -= pb.waiting
	pb.reserved, pb.waiting, pb.passed = 0, 0, false
	if b.usedBytes < 0 || b.waitingBytes < 0 || b.passedBytes < 0 {
		panic("server: invariant: request budget released more than reserved")
	}
	sh.stats.RequestBudgetWaitingBytes.Store(b.waitingBytes)
	sh.noteUsed()
	if b.waiting > 0 && !b.granted {
		b.granted = true
		sh.Defer((*Shard).grantWaiters)
	}
}

// noteUsed publishes the bytes reserved, and the most they have been.
func (sh *Shard) noteUsed() {
	used := sh.budget.usedBytes
	sh.stats.RequestBudgetUsedBytes.Store(used)
	if used > sh.stats.RequestBudgetPeakBytes.Load() {
		sh.stats.RequestBudgetPeakBytes.Store(used)
	}
}

// waitForBudget makes c wait for budget for the large request at the front
// of its partial buffer: its receive is cancelled until the request is
// granted.
func (sh *Shard) waitForBudget(c *conn) {
	b := &sh.budget
	c.budgetWait = true
	sh.noteWaiting(c)
	b.waiting++
	b.waitSeq++
	c.waitSeq = b.waitSeq
	if len(b.waiters)-b.head > 2*b.waiting+budgetStaleWaitersMax {
		sh.compactWaiters()
	}
	b.waiters = append(b.waiters, budgetWaiter{ref: c.ref(), seq: c.waitSeq})
	sh.stats.RequestBudgetWaits.Add(1)
	sh.stats.RequestBudgetWaiting.Store(int64(sh.budget.waiting))
	sh.cancelRecv(c)
}

// stopWaiting clears c's wait for budget (granted, closed, or the request
// arrived whole meanwhile). Its entry in the waiters goes when it reaches
// the front.
func (sh *Shard) stopWaiting(c *conn) {
	if !c.budgetWait {
		return
	}
	c.budgetWait = false
	sh.unnoteWaiting(c)
	sh.budget.waiting--
	sh.stats.RequestBudgetWaiting.Store(int64(sh.budget.waiting))
	// The head of the queue leaving (closed, or its request whole) may
	// let the next be granted, or let requests pass again: a grant pass
	// runs for them, as when a buffer is let go.
	if b := &sh.budget; b.waiting > 0 && !b.granted {
		b.granted = true
		sh.Defer((*Shard).grantWaiters)
	}
}

// waitRoom reports whether c may wait with n more bytes appended to base
// (its partial buffer to be) within the shard's bound on waiting bytes;
// when not, it counts the connection as closed for it.
func (sh *Shard) waitRoom(c *conn, base []byte, n int) bool {
	b := &sh.budget
	return sh.waitFits(c, b.waitingBytes-c.waitingBytes+int64(partialCapAfter(base, n)))
}

// waitFits reports whether the waiting bytes may become after, within
// their bound; when not, it counts c as closed for it.
func (sh *Shard) waitFits(c *conn, after int64) bool {
	b := &sh.budget
	if after <= b.waitingMaxBytes {
		return true
	}
	sh.stats.RequestBudgetClosed.Add(1)
	sh.log.Debug("connection closed: its bytes waiting for request budget pass the bound",
		"slot", c.slot, "waiting_bytes", b.waitingBytes, "bound", b.waitingMaxBytes)
	return false
}

// noteWaiting counts what c's partial buffer holds while it waits.
func (sh *Shard) noteWaiting(c *conn) {
	held := int64(cap(c.partial))
	sh.budget.waitingBytes += held - c.waitingBytes
	c.waitingBytes = held
	sh.stats.RequestBudgetWaitingBytes.Store(sh.budget.waitingBytes)
}

// onWaitingData takes bytes that came for c while it waits for budget,
// before its receive ended: they wait with the rest of its request, within
// the shard's bound on waiting bytes. A request that is whole with them is
// served from a buffer of its own that stays counted in the waiting bytes
// until it is let go, and c keeps waiting, its receive stopped, until the
// budget is back within its limit, so that a client cannot go on sending
// past the budget this way.
func (sh *Shard) onWaitingData(c *conn, data []byte) {
	if c.partialPool != nil {
		// A request served from bytes in hand waits whole at the front of
		// its buffer (the in-flight cap): these go behind it, counted
		// with it.
		if !sh.appendPooled(c, data) {
			sh.closeConn(c)
			return
		}
		sh.parsePartial(c)
		return
	}
	if !sh.waitRoom(c, c.partial, len(data)) {
		sh.closeConn(c)
		return
	}
	c.partial = appendPartial(c.partial, data)
	if wholeLarge(c.partial) {
		// Its bytes stay counted as waiting until the buffer is let go,
		// so that what is served from bytes in hand is bounded with them;
		// the plain partial buffer they leave is no longer counted.
		n := len(c.partial)
		bytes := directBufBytes(n)
		if !sh.waitFits(c, sh.budget.waitingBytes-c.waitingBytes+bytes) {
			sh.closeConn(c)
			return
		}
		pb := sh.takeDirect(n)
		copy(pb.buf, c.partial)
		pb.waiting = bytes
		sh.budget.waitingBytes += pb.waiting
		c.partial, c.partialPool, c.partialDetached = pb.buf[:n], pb, false
		sh.unnoteWaiting(c)
	} else {
		sh.noteWaiting(c)
	}
	sh.parsePartial(c)
}

// unnoteWaiting stops counting c's partial buffer as waiting bytes: it
// moved into a buffer charged to the budget.
func (sh *Shard) unnoteWaiting(c *conn) {
	sh.budget.waitingBytes -= c.waitingBytes
	c.waitingBytes = 0
	sh.stats.RequestBudgetWaitingBytes.Store(sh.budget.waitingBytes)
}

// withinLimit reports whether the budget may let a waiting connection
// receive again without granting it anything.
func (b *requestBudget) withinLimit() bool {
	return b.usedBytes <= b.limitBytes || b.usedBytes == 0
}

// waiterConn is the connection of a wait still in progress, or nil.
func (sh *Shard) waiterConn(w budgetWaiter) *conn {
	if c := sh.connOf(w.ref); c != nil && c.budgetWait && c.waitSeq == w.seq {
		return c
	}
	return nil
}

// pruneWaiters drops the entries at the front of the waiters that no
// longer wait, and returns how many entries are left.
func (sh *Shard) pruneWaiters() int {
	b := &sh.budget
	for b.head < len(b.waiters) && sh.waiterConn(b.waiters[b.head]) == nil {
		b.waiters[b.head] = budgetWaiter{}
		b.head++
	}
	if b.head == len(b.waiters) {
		b.waiters, b.head = b.waiters[:0], 0
	} else if b.head > len(b.waiters)/2 {
		n := copy(b.waiters, b.waiters[b.head:])
		b.waiters, b.head = b.waiters[:n], 0
	}
	return len(b.waiters) - b.head
}

// compactWaiters drops every entry of a wait that ended, keeping the order
// of the rest.
func (sh *Shard) compactWaiters() {
	b := &sh.budget
	live := b.waiters[:0]
	for _, w := range b.waiters[b.head:] {
		if sh.waiterConn(w) != nil {
			live = append(live, w)
		}
	}
	clear(b.waiters[len(live):])
	b.waiters, b.head = live, 0
}

// grantWaiters starts the large requests of waiting connections, in the
// order they began to wait, while the budget grants them.
func (sh *Shard) grantWaiters() {
	sh.budget.granted = false
	for !sh.draining && sh.pruneWaiters() > 0 {
		c := sh.waiterConn(sh.budget.waiters[sh.budget.head])
		size, large := largeHead(c.partial)
		if !large || len(c.partial) >= size {
			// Its request was served from bytes in hand: it receives
			// again once the budget is back within its limit.
			if !sh.budget.withinLimit() {
				return
			}
			sh.stopWaiting(c)
			sh.parsePartial(c)
			sh.keepReceiving(c)
			continue
		}
		n := directBufBytes(size)
		if ok, _ := sh.tryReserve(n, true); !ok {
			return
		}
		sh.stopWaiting(c)
		sh.startDirect(c, c.partial, n, false)
		sh.dropPartial(c)
		sh.keepReceiving(c)
	}
}

// RequestBudgetBytesDefault is the request budget of a server configured
// with none; RequestBudgetBytesMin is the least one it accepts.
const (
	RequestBudgetBytesDefault = requestBudgetBytesDefault
	RequestBudgetBytesMin     = requestBudgetBytesMin
)

// CheckRequestBudget reports whether a server of cores shards (0: one for
// each CPU it may run on, as Start counts them) accepts a request budget of
// totalBytes (0: the default), so that a command can refuse a setting
// before it starts anything.
func CheckRequestBudget(totalBytes int64, cores int) error {
	if cores <= 0 {
		cpus, err := allowedCPUs()
		if err != nil {
			return fmt.Errorf("cpu affinity: %w", err)
		}
		cores = len(cpus)
	}
	return checkRequestBudget(totalBytes, cores)
}

// checkRequestBudget refuses a budget below the least a server accepts, or
// one that leaves each of its shards less than the least share.
func checkRequestBudget(totalBytes int64, shards int) error {
	if totalBytes < 0 || (totalBytes > 0 && totalBytes < requestBudgetBytesMin) {
		return fmt.Errorf("request budget of %d bytes: want 0 (the default, %d) or at least %d",
			totalBytes, requestBudgetBytesDefault, requestBudgetBytesMin)
	}
	if share := shardBudgetBytes(totalBytes, shards); share < requestBudgetShareBytesMin {
		return fmt.Errorf("request budget of %d bytes over %d shards is %d bytes a shard: want at least %d a shard (%d in all)",
			totalBytes, shards, share, requestBudgetShareBytesMin, requestBudgetShareBytesMin*int64(max(shards, 1)))
	}
	return nil
}

// RequestBudgetBytes is the shard's share of the request budget.
func (sh *Shard) RequestBudgetBytes() int64 { return sh.budget.limitBytes }

// shardBudgetBytes divides a server's request budget among its shards.
func shardBudgetBytes(totalBytes int64, shards int) int64 {
	if totalBytes <= 0 {
		totalBytes = requestBudgetBytesDefault
	}
	return totalBytes / int64(max(shards, 1))
}
