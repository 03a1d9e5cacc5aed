package server

import (
	"bytes"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Regression tests of the request budget's receive path, driven by hand on
// a shard with a ring of its own (white-box), and on a running server.

// newBudgetShard is a shard with a ring and a request budget of budget
// bytes, driven by the test's own thread.
func newBudgetShard(t *testing.T, budget int64) *Shard {
	t.Helper()
	runtime.LockOSThread() // the ring is the thread's (as a shard's is)
	t.Cleanup(runtime.UnlockOSThread)
	sh, err := newShard(shardConfig{id: 0, cpu: -1, listenFD: -1, handler: echoHandler{},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), requestBudgetBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.setup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sh.teardown)
	return sh
}

// budgetConn opens a connection on sh over one end of a socket pair.
func budgetConn(t *testing.T, sh *Shard) *conn {
	t.Helper()
	c, peer := budgetConnPeer(t, sh)
	t.Cleanup(func() { unix.Close(peer) })
	return c
}

// budgetConnPeer is budgetConn, returning the other end (the client's),
// which the caller closes.
func budgetConnPeer(t *testing.T, sh *Shard) (*conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{slot: uint32(len(sh.conns))}
	sh.conns = append(sh.conns, c)
	c.reset(fds[0], sh.now())
	sh.open++
	return c, fds[1]
}

// A waiting connection whose request was served from bytes in hand while
// the budget was over its limit, with a few bytes of its next request
// left, and whose multishot receive has already ended. The over-limit
// holder is let go, and in the same turn (before the deferred grant pass)
// the connection's cancel CQE arrives: opDone -> resumeIfRoom ->
// parsePartial -> settleLarge -> stopWaiting. Its receive must be armed
// again, or the connection is stuck for good.
func TestRequestBudgetWaitEndedByCancelRearmsReceive(t *testing.T) {
	sh := newBudgetShard(t, 1<<20)
	c := budgetConn(t, sh)
	alone := sh.takeDirect(4 << 20)
	alone.reserved = 4 << 20
	sh.chargeBudget(4 << 20) // a request larger than the share, granted alone
	c.partial = appendPartial(c.partial[:0], []byte{1, 2})
	sh.waitForBudget(c)   // recvArmed is false: the multishot's last CQE was handled
	c.opsInFlight++       // the cancel SQE waitForBudget would have sent
	sh.unrefDirect(alone) // the alone request is let go: a grant pass is deferred
	sh.opDone(c)          // c's cancel CQE, later in the same batch
	sh.runDeferred()      // end of turn: the grant pass
	if c.state == connOpen && !c.recvArmed && !c.budgetWait && !c.recvPaused && c.direct == nil {
		t.Fatalf("connection stuck: not waiting, not paused, no receive armed (queue %d live)", sh.pruneWaiters())
	}
}

// The head of the queue stops waiting (closed by the idle limit) while the
// connection behind it would now fit: a grant pass must run for it, not
// wait until some buffer is let go.
func TestRequestBudgetHeadWaiterLeavingGrantsNext(t *testing.T) {
	sh := newBudgetShard(t, 1<<20)
	holder, head, passer, late := budgetConn(t, sh), budgetConn(t, sh), budgetConn(t, sh), budgetConn(t, sh)
	sh.startLarge(holder, frame(body(1, 300<<10))[:1<<10], false) // 512 KiB granted
	sh.startLarge(head, frame(body(2, 700<<10))[:1<<10], false)   // 1 MiB: waits
	sh.startLarge(passer, frame(body(3, 100<<10))[:1<<10], false) // 128 KiB: passes
	if holder.direct == nil || !head.budgetWait || passer.direct == nil {
		t.Fatal("setup")
	}
	sh.unrefDirect(holder.directBuf) // the holder's request is done and let go
	holder.direct, holder.directBuf = nil, nil
	sh.runDeferred()
	sh.startLarge(late, frame(body(4, 100<<10))[:1<<10], false) // waits behind the head
	if !late.budgetWait {
		t.Fatal("setup: late did not wait")
	}
	sh.closeConn(head) // the idle limit
	head.opsInFlight = 0
	sh.maybeFree(head)
	sh.runDeferred()
	if late.budgetWait || late.direct == nil {
		t.Fatalf("late still waits alone in the queue with %d of %d bytes used and needs %d",
			sh.budget.usedBytes, sh.budget.limitBytes, directBufBytes(lengthPrefixBytes+100<<10))
	}
}

// unansweredHoldHandler echoes every request except one whose body is "HOLD", which
// it never answers (it keeps its connection from the idle limit).
type unansweredHoldHandler struct{}

func (unansweredHoldHandler) Serve(sh *Shard, req *Request) {
	if string(req.Message[lengthPrefixBytes:]) == "HOLD" {
		return
	}
	sh.Respond(req.Conn, req.Seq, req.Message)
}

// The same on a running server: once the head of the queue is closed by
// the idle limit, the connection behind it is granted with nothing else
// let go (the passer's buffer is held until after).
func TestRequestBudgetHeadWaiterLeavingGrantsNextServer(t *testing.T) {
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: unansweredHoldHandler{}, RequestBudgetBytes: 1 << 20,
		ConnIdleMax: time.Second, DrainWaitMax: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	st := s.Shards()[0].Stats()
	used := func(n int64) func() bool { return func() bool { return st.RequestBudgetUsedBytes.Load() == n } }
	hold := frame([]byte("HOLD"))
	holder, holderMsg := dial(t, s), frame(body(1, 300<<10))
	holder.Write(holderMsg[:1<<10])
	waitUntil(t, "holder granted", used(512<<10))
	head := dial(t, s)
	head.Write(frame(body(2, 700<<10))[:1<<10])
	waitUntil(t, "head waits", func() bool { return st.RequestBudgetWaiting.Load() == 1 })
	passer, passerMsg := dial(t, s), frame(body(3, 100<<10))
	passer.Write(append(append([]byte(nil), hold...), passerMsg[:1<<10]...))
	waitUntil(t, "passer granted", used(640<<10))
	holder.Write(holderMsg[1<<10:])
	if _, err := readFrame(holder); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "holder let go", used(128<<10))
	late := dial(t, s)
	late.Write(append(append([]byte(nil), hold...), frame(body(4, 100<<10))[:1<<10]...))
	waitUntil(t, "late waits", func() bool { return st.RequestBudgetWaiting.Load() == 2 })
	// The head is closed by the idle limit; late is then granted with the
	// passer's 128 KiB still held.
	waitUntil(t, "late granted once the head left", func() bool {
		return st.RequestBudgetWaiting.Load() == 0 && st.RequestBudgetUsedBytes.Load() == 256<<10
	})
	passer.Write(passerMsg[1<<10:])
	waitUntil(t, "the passer's buffer let go", used(128<<10))
}

// turn runs one turn of sh's loop by hand: it submits what is queued,
// waits for a completion, and handles every one that is ready.
func turn(t *testing.T, sh *Shard) {
	t.Helper()
	if _, err := sh.r.SubmitAndWait(1); err != nil && err != unix.EBUSY && err != unix.EAGAIN && err != unix.ETIME && err != unix.EINTR {
		t.Fatal(err)
	}
	n := sh.r.PeekBatchCQE(sh.batch[:])
	for _, c := range sh.batch[:n] {
		sh.complete(*c)
	}
	sh.r.CQAdvance(uint32(n))
	sh.runDeferred()
	sh.bufs.Publish()
}

// closingStreamBytes is what a client sends to a connection that reads no
// more requests in the tests below: many times what a connection may
// buffer, so that keeping it would show.
const closingStreamBytes = 8 << 20

// A connection that reads no more requests (told to close once answered,
// with one request still unanswered; or on a draining shard) drops what
// its client goes on sending: nothing piles up in its partial buffer, the
// socket does not fill (the client's writes complete), and the dropped
// bytes do not count as activity against the idle limit.
func TestRequestBudgetClosingConnectionDropsWhatArrives(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(sh *Shard, c *conn)
	}{
		{"close after answers", func(sh *Shard, c *conn) { c.closeAfter = true }},
		{"draining", func(sh *Shard, c *conn) { sh.draining = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := newBudgetShard(t, 1<<20)
			c, peer := budgetConnPeer(t, sh)
			c.nextSeq = 1 // one request still unanswered (a produce waiting for acks)
			tc.stop(sh, c)
			const longAgoMs = 1
			c.lastActiveMs = longAgoMs
			sh.armRecv(c)
			wrote := make(chan error, 1)
			go func() {
				defer unix.Close(peer)
				chunk := frame(body(1, 64<<10))
				var err error
				for sent := 0; sent < closingStreamBytes && err == nil; sent += len(chunk) {
					_, err = unix.Write(peer, chunk)
				}
				wrote <- err
			}()
			deadline := time.Now().Add(clusterWait)
			for done := false; !done; {
				select {
				case err := <-wrote:
					if err != nil {
						t.Fatal(err)
					}
					done = true
				default:
					if time.Now().After(deadline) {
						t.Fatalf("the client's writes did not complete: partial %d KiB, receive armed %v", len(c.partial)>>10, c.recvArmed)
					}
					turn(t, sh)
				}
				if cap(c.partial) > pendingBytesMax {
					t.Fatalf("a connection that reads no more requests buffered %d KiB", cap(c.partial)>>10)
				}
			}
			if c.lastActiveMs != longAgoMs {
				t.Errorf("dropped bytes counted as activity: last active %d ms", c.lastActiveMs)
			}
			if sh.budget.usedBytes != 0 {
				t.Errorf("the budget holds %d bytes", sh.budget.usedBytes)
			}
		})
	}
}

// At the in-flight cap a large request received into its own buffer waits
// there whole, and the multishot receive delivers what was posted before
// its cancel landed: those bytes go behind the request in the same buffer
// (its spare capacity, else one twice the size), so they are copied a
// bounded number of times, the budget holds only the buffer in use, and
// every request is served in order once answers go out.
func TestRequestBudgetAtCapAppendsBehindWholeRequest(t *testing.T) {
	sh := newBudgetShard(t, 64<<20)
	c := budgetConn(t, sh)
	c.nextSeq = inflightPerConnMax // at the cap: nothing is dispatched
	req := frame(body(1, 20<<20))
	const head = 64 << 10
	sh.onData(c, req[:head], -1) // its length prefix: received into a buffer of its own
	if c.direct == nil {
		t.Fatal("setup: the large request is not received into its own buffer")
	}
	sh.onData(c, req[head:], -1)
	if c.partialPool == nil || len(c.partial) != len(req) {
		t.Fatalf("setup: the whole request does not wait in its buffer (%d bytes in partial)", len(c.partial))
	}
	// Each CQE is four small requests.
	const cqes, perCQE = 64, 4
	var chunks [][]byte
	want := append([]byte(nil), req...)
	for i := range cqes {
		var chunk []byte
		for j := range perCQE {
			chunk = append(chunk, frame(body(2+i*perCQE+j, 16<<10-lengthPrefixBytes))...)
		}
		chunks = append(chunks, chunk)
		want = append(want, chunk...)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, chunk := range chunks {
		sh.onData(c, chunk, -1)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 4*uint64(len(c.partial)) {
		t.Errorf("allocated %d MiB for %d MiB in hand", alloc>>20, len(c.partial)>>20)
	}
	if !bytes.Equal(c.partial, want) {
		t.Fatal("the bytes behind the waiting request are not what arrived")
	}
	if c.partialPool == nil || sh.budget.usedBytes != c.partialPool.reserved {
		t.Errorf("the budget holds %d bytes for one buffer of %d", sh.budget.usedBytes, c.partialPool.reserved)
	}
	if grown := len(c.partialPool.buf) - len(req); grown > pooledGrowMaxBytes {
		t.Errorf("the buffer grew %d MiB past the request for %d MiB behind it", grown>>20, (len(want)-len(req))>>20)
	}
	served := sh.stats.Requests.Load()
	c.sendSeq = c.nextSeq // the answers went out
	sh.resumeIfRoom(c)
	if got := sh.stats.Requests.Load() - served; got != 1+cqes*perCQE {
		t.Errorf("%d requests served, want %d", got, 1+cqes*perCQE)
	}
	if sh.budget.usedBytes != 0 || c.partialPool != nil {
		t.Errorf("the budget still holds %d bytes once every request was served", sh.budget.usedBytes)
	}
}

// retainHandler keeps every request (a produce whose write is in flight)
// and does not answer it; the test releases the holds at the end.
type retainHandler struct{ holds *[]Hold }

func (h retainHandler) Serve(sh *Shard, req *Request) {
	*h.holds = append(*h.holds, req.Retain())
}

// A request served from bytes in hand while its connection waits leaves
// the first bytes of the next request behind it in its pooled buffer.
// Those move to a plain partial buffer: the small requests that follow are
// parsed as any connection's and charge the budget nothing.
func TestRequestBudgetLeftoverAfterServedFromHandChargesNothing(t *testing.T) {
	var holds []Hold
	defer func() {
		for _, h := range holds {
			h.Release()
		}
	}()
	sh := newBudgetShard(t, 1<<20)
	sh.handler = retainHandler{&holds}
	c := budgetConn(t, sh)
	alone := sh.takeDirect(4 << 20)
	alone.reserved = 4 << 20
	sh.chargeBudget(4 << 20) // a request larger than the share, granted alone
	const smallBytes = 20000 // small requests: under directRecvMinBytes
	var stream []byte
	for i := 1; len(stream) < 8<<20; i++ {
		stream = append(stream, frame(body(i, smallBytes))...)
	}
	large := frame(body(0, 40000))
	sh.onData(c, large[:1<<10], -1) // its length prefix: waits for budget
	if !c.budgetWait {
		t.Fatal("setup: the large request does not wait")
	}
	// The rest of it arrives before the receive ends, with the first 10
	// bytes of the next request: it is served from bytes in hand.
	sh.onData(c, append(append([]byte(nil), large[1<<10:]...), stream[:10]...), -1)
	if len(holds) != 1 || !c.budgetWait || len(c.partial) != 10 {
		t.Fatalf("setup: %d served, waiting %v, %d bytes left", len(holds), c.budgetWait, len(c.partial))
	}
	if c.partialPool != nil {
		t.Error("the leftover bytes stay in the pooled buffer")
	}
	sh.unrefDirect(alone) // the budget is back within its limit: c receives again
	sh.runDeferred()
	if c.budgetWait {
		t.Fatal("still waiting once the budget is within its limit")
	}
	const cqeBytes = 64 << 10
	off := 10
	for ; off+cqeBytes <= len(stream); off += cqeBytes {
		sh.onData(c, stream[off:off+cqeBytes], -1)
		if c.state != connOpen {
			t.Fatal("closed")
		}
		if c.partialPool != nil || sh.budget.usedBytes > sh.budget.limitBytes {
			t.Fatalf("at %d KiB of small requests: pooled partial %v, budget holds %d KiB of %d KiB",
				off>>10, c.partialPool != nil, sh.budget.usedBytes>>10, sh.budget.limitBytes>>10)
		}
	}
	if want := 1 + off/len(frame(body(0, smallBytes))); len(holds) != want {
		t.Errorf("%d requests served, want %d", len(holds), want)
	}
}

// A request that arrives whole while its connection waits is served from
// a buffer of its own counted with the waiting bytes: a connection whose
// buffer would take them past their bound is closed, as one whose partial
// buffer would.
func TestRequestBudgetServedFromHandKeepsWaitingBound(t *testing.T) {
	var holds []Hold
	defer func() {
		for _, h := range holds {
			h.Release()
		}
	}()
	sh := newBudgetShard(t, 1<<20)
	sh.handler = retainHandler{&holds} // a request served stays in hand
	alone := sh.takeDirect(4 << 20)
	alone.reserved = 4 << 20
	sh.chargeBudget(4 << 20) // a request larger than the share, granted alone
	defer sh.unrefDirect(alone)
	b := &sh.budget
	// a waits with 6 MiB of a 30 MiB request in hand.
	a, aMsg := budgetConn(t, sh), frame(body(1, 30<<20))
	sh.onData(a, aMsg[:1<<10], -1)
	sh.onData(a, aMsg[1<<10:6<<20], -1)
	// b's 9 MiB request arrives whole while it waits: its bytes fit in the
	// bound as they arrive, its 16 MiB buffer would not.
	c, cMsg := budgetConn(t, sh), frame(body(2, 9<<20))
	sh.onData(c, cMsg[:1<<10], -1)
	if !a.budgetWait || !c.budgetWait || b.waitingBytes > b.waitingMaxBytes {
		t.Fatalf("setup: waiting %v %v with %d MiB of %d MiB in hand", a.budgetWait, c.budgetWait, b.waitingBytes>>20, b.waitingMaxBytes>>20)
	}
	sh.onData(c, cMsg[1<<10:], -1)
	if b.waitingBytes > b.waitingMaxBytes {
		t.Errorf("%d MiB waiting in hand, past the bound of %d MiB", b.waitingBytes>>20, b.waitingMaxBytes>>20)
	}
	if c.state == connOpen || sh.stats.RequestBudgetClosed.Load() != 1 {
		t.Errorf("the connection past the bound is not closed for it (closed for the bound: %d)", sh.stats.RequestBudgetClosed.Load())
	}
	if a.state != connOpen || !a.budgetWait {
		t.Error("the connection within the bound does not wait on")
	}
}

// A total budget is divided among the shards: one that leaves a shard
// less than the least share is refused, from Start and from
// CheckRequestBudget alike, and the least total for the shard count is
// accepted with that share on each.
func TestRequestBudgetRefusesAShareBelowTheLeast(t *testing.T) {
	const shards = 4
	total := int64(shards*requestBudgetShareBytesMin - 1)
	if err := CheckRequestBudget(total, shards); err == nil || !strings.Contains(err.Error(), "a shard") {
		t.Errorf("CheckRequestBudget(%d, %d) = %v, want a refusal naming the share", total, shards, err)
	}
	if s, err := Start(Config{Listen: "127.0.0.1:0", Cores: shards, Handler: echoHandler{}, RequestBudgetBytes: total}); err == nil {
		s.Stop()
		t.Fatalf("a budget of %d bytes over %d shards accepted", total, shards)
	}
	total++
	if err := CheckRequestBudget(total, shards); err != nil {
		t.Fatal(err)
	}
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: shards, Handler: echoHandler{}, RequestBudgetBytes: total,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	for _, sh := range s.Shards() {
		if got := sh.RequestBudgetBytes(); got != requestBudgetShareBytesMin {
			t.Errorf("shard %d has a share of %d bytes, want %d", sh.ID(), got, requestBudgetShareBytesMin)
		}
	}
}

// A request that passed the waiting connections and then waits whole at
// the in-flight cap keeps counting as passed when the bytes behind it move
// it to a larger buffer, so that the head of the queue still sees it as a
// request that passed it (mayPass).
func TestRequestBudgetGrownBufferStaysPassed(t *testing.T) {
	sh := newBudgetShard(t, 1<<20)
	holder, head, passer := budgetConn(t, sh), budgetConn(t, sh), budgetConn(t, sh)
	sh.startLarge(holder, frame(body(1, 300<<10))[:1<<10], false) // 512 KiB granted
	sh.startLarge(head, frame(body(2, 700<<10))[:1<<10], false)   // 1 MiB: waits
	passer.nextSeq = inflightPerConnMax                           // at the cap: nothing is dispatched
	msg := frame(body(3, 100<<10))
	sh.onData(passer, msg[:1<<10], -1) // 128 KiB: passes the head
	if !head.budgetWait || passer.direct == nil || !passer.directBuf.passed {
		t.Fatal("setup: the passer did not pass the waiting head")
	}
	sh.onData(passer, msg[1<<10:], -1) // whole: it waits at the cap
	sh.onData(passer, make([]byte, 200<<10), -1)
	pb := passer.partialPool
	if pb == nil || len(pb.buf) <= 128<<10 {
		t.Fatal("setup: the bytes behind the request did not move it to a larger buffer")
	}
	if !pb.passed || sh.budget.passedBytes != pb.reserved {
		t.Errorf("the larger buffer passed %v; %d bytes counted as passed, want %d", pb.passed, sh.budget.passedBytes, pb.reserved)
	}
}
