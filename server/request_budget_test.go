package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// budgetWait bounds every wait of the budget tests for a condition.
const budgetWait = 20 * time.Second

func startBudgetServer(t *testing.T, h Handler, budgetBytes int64, idle time.Duration) *Server {
	t.Helper()
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: h, RequestBudgetBytes: budgetBytes,
		ConnIdleMax: idle, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestRequestBudgetBoundsLargeRequests: connections that each announce a
// large request and send only its first bytes get the budget's worth of
// buffers between them and the rest wait; small requests on another
// connection are answered meanwhile; once the bodies arrive every request
// is answered byte for byte, and when the clients go the budget is whole
// again.
func TestRequestBudgetBoundsLargeRequests(t *testing.T) {
	const (
		budgetBytes = requestBudgetBytesMin
		conns       = 10
		size        = 300 << 10 // a 512 KiB buffer: two fit
		headBytes   = 1 << 10
	)
	s := startBudgetServer(t, laterHandler{}, budgetBytes, 0)
	st := s.Shards()[0].Stats()
	var cs []net.Conn
	var msgs [][]byte
	for i := range conns {
		c := dial(t, s)
		m := frame(body(i, size))
		if _, err := c.Write(m[:headBytes]); err != nil {
			t.Fatal(err)
		}
		cs, msgs = append(cs, c), append(msgs, m)
	}
	granted := budgetBytes / directBufBytes(size+lengthPrefixBytes)
	waitUntil(t, "the connections beyond the budget to wait", func() bool {
		return st.RequestBudgetWaiting.Load() == conns-granted
	})
	if used := st.RequestBudgetUsedBytes.Load(); used > budgetBytes {
		t.Fatalf("%d bytes reserved, above the budget of %d", used, budgetBytes)
	}
	small := dial(t, s)
	for i := range 50 {
		if _, err := small.Write(frame(body(i, 100+i))); err != nil {
			t.Fatal(err)
		}
		if got, err := readFrame(small); err != nil || !bytes.Equal(got, body(i, 100+i)) {
			t.Fatalf("small request %d while large ones wait: %v", i, err)
		}
	}
	// The rest of every body, the waiting ones' first: they are granted
	// as the first ones are answered.
	for i := conns - 1; i >= 0; i-- {
		go cs[i].Write(msgs[i][headBytes:])
	}
	for i, c := range cs {
		got, err := readFrame(c)
		if err != nil || !bytes.Equal(got, msgs[i][lengthPrefixBytes:]) {
			t.Fatalf("large request %d: %v", i, err)
		}
	}
	if w := st.RequestBudgetWaits.Load(); w < conns-uint64(granted) {
		t.Fatalf("%d waits for budget, want at least %d", w, conns-granted)
	}
	for _, c := range cs {
		c.Close()
	}
	waitUntil(t, "the budget to be whole again", func() bool {
		return st.RequestBudgetUsedBytes.Load() == 0 && st.RequestBudgetWaiting.Load() == 0 && st.RequestBudgetWaitingBytes.Load() == 0 && st.Open.Load() == 1
	})
}

// TestRequestBudgetServesALargerRequestAlone: a request larger than the
// whole budget is served while the shard holds nothing else, and a request
// that comes meanwhile waits until it is done.
func TestRequestBudgetServesALargerRequestAlone(t *testing.T) {
	const budgetBytes = requestBudgetBytesMin
	s := startBudgetServer(t, echoHandler{}, budgetBytes, 0)
	st := s.Shards()[0].Stats()
	big, next := dial(t, s), dial(t, s)
	bigMsg := frame(body(1, 3<<20))
	nextMsg := frame(body(2, 100<<10))
	if _, err := big.Write(bigMsg[:4<<10]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the larger request to be granted", func() bool { return st.RequestBudgetUsedBytes.Load() > budgetBytes })
	if _, err := next.Write(nextMsg[:4<<10]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the next request to wait", func() bool { return st.RequestBudgetWaiting.Load() == 1 })
	go next.Write(nextMsg[4<<10:])
	go big.Write(bigMsg[4<<10:])
	for _, x := range []struct {
		c   net.Conn
		msg []byte
	}{{big, bigMsg}, {next, nextMsg}} {
		got, err := readFrame(x.c)
		if err != nil || !bytes.Equal(got, x.msg[lengthPrefixBytes:]) {
			t.Fatalf("answer of %d bytes: %v", len(x.msg), err)
		}
	}
	waitUntil(t, "the budget to be whole again", func() bool {
		return st.RequestBudgetUsedBytes.Load() == 0 && st.RequestBudgetWaiting.Load() == 0 && st.RequestBudgetWaitingBytes.Load() == 0
	})
}

// TestRequestBudgetWaiterClosedWhenIdle: a connection waiting for budget
// is still closed by the idle limit, as is the one holding the budget that
// trickles its request a byte at a time, and what they held returns to the
// budget.
func TestRequestBudgetWaiterClosedWhenIdle(t *testing.T) {
	const budgetBytes = requestBudgetBytesMin
	s := startBudgetServer(t, echoHandler{}, budgetBytes, 300*time.Millisecond)
	st := s.Shards()[0].Stats()
	holder, waiter := dial(t, s), dial(t, s)
	if _, err := holder.Write(frame(body(1, 900<<10))[:1<<10]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first request to be granted", func() bool { return st.RequestBudgetUsedBytes.Load() == budgetBytes })
	if _, err := waiter.Write(frame(body(2, 200<<10))[:1<<10]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the second request to wait", func() bool { return st.RequestBudgetWaiting.Load() == 1 })
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if _, err := holder.Write([]byte{1}); err != nil {
				return // closed by the broker
			}
		}
	}()
	for name, c := range map[string]net.Conn{"holder": holder, "waiter": waiter} {
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("%s: read %d bytes, want the connection closed", name, n)
		}
	}
	waitUntil(t, "the budget to be whole again", func() bool {
		return st.RequestBudgetUsedBytes.Load() == 0 && st.RequestBudgetWaiting.Load() == 0 && st.RequestBudgetWaitingBytes.Load() == 0 && st.Open.Load() == 0
	})
	<-trickled
}

// TestRequestBudgetRefused: a budget too small to be meant is refused.
func TestRequestBudgetRefused(t *testing.T) {
	for _, b := range []int64{-1, requestBudgetBytesMin - 1} {
		if s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: echoHandler{}, RequestBudgetBytes: b}); err == nil {
			s.Stop()
			t.Fatalf("request budget of %d bytes accepted", b)
		}
	}
}

// TestRequestBudgetWaiterSentWhole: a request sent whole while the budget
// is held waits or is served from the bytes in hand, and is answered
// either way; the server stops with one request being received and one
// waiting, and the budget is whole again after.
func TestRequestBudgetWaiterSentWhole(t *testing.T) {
	const budgetBytes = requestBudgetBytesMin
	s := startBudgetServer(t, laterHandler{}, budgetBytes, 0)
	st := s.Shards()[0].Stats()
	holder, whole, left := dial(t, s), dial(t, s), dial(t, s)
	holderMsg := frame(body(1, 900<<10))
	if _, err := holder.Write(holderMsg[:1<<10]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first request to be granted", func() bool { return st.RequestBudgetUsedBytes.Load() == budgetBytes })
	wholeMsg := frame(body(2, 200<<10))
	go whole.Write(wholeMsg)
	// The one left waiting when the server stops.
	if _, err := left.Write(frame(body(3, 100<<10))[:1<<10]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the last request to wait", func() bool { return st.RequestBudgetWaiting.Load() >= 1 })
	go holder.Write(holderMsg[1<<10:])
	for _, x := range []struct {
		c   net.Conn
		msg []byte
	}{{holder, holderMsg}, {whole, wholeMsg}} {
		got, err := readFrame(x.c)
		if err != nil || !bytes.Equal(got, x.msg[lengthPrefixBytes:]) {
			t.Fatalf("answer of %d bytes: %v", len(x.msg), err)
		}
	}
	holder.Close()
	whole.Close()
	waitUntil(t, "only the last request to hold budget", func() bool {
		return st.RequestBudgetUsedBytes.Load() == directBufBytes(lengthPrefixBytes+100<<10) && st.RequestBudgetWaiting.Load() == 0
	})
	waiter := dial(t, s)
	if _, err := waiter.Write(frame(body(4, 1000<<10))[:1<<10]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a request to wait", func() bool { return st.RequestBudgetWaiting.Load() == 1 })
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if used, waiting, held := st.RequestBudgetUsedBytes.Load(), st.RequestBudgetWaiting.Load(),
		st.RequestBudgetWaitingBytes.Load(); used != 0 || waiting != 0 || held != 0 {
		t.Fatalf("after stop: %d bytes reserved, %d connections waiting holding %d bytes", used, waiting, held)
	}
}

// TestRequestBudgetRandomTraffic: connections pipeline requests of random
// sizes (small, large, and larger than the whole budget), written in
// random pieces, through a budget that fits few of them at once; every
// answer comes back once, in order, byte for byte, and the budget is whole
// again once the clients go.
func TestRequestBudgetRandomTraffic(t *testing.T) {
	const (
		conns       = 6
		perConn     = 20
		budgetBytes = requestBudgetBytesMin
	)
	seed := time.Now().UnixNano()
	if v := os.Getenv("STRATA_BUDGET_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("STRATA_BUDGET_SEED=%q", v)
		}
		seed = n
	}
	t.Logf("seed %d (STRATA_BUDGET_SEED=%d reruns it)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	size := func() int {
		switch r := rng.IntN(100); {
		case r < 50:
			return 1 + rng.IntN(directRecvMinBytes-lengthPrefixBytes-1)
		case r < 88:
			return directRecvMinBytes + rng.IntN(300<<10)
		default:
			return budgetBytes + rng.IntN(2*budgetBytes)
		}
	}
	for _, h := range []Handler{laterHandler{}, echoHandler{}} {
		s := startBudgetServer(t, h, budgetBytes, 0)
		st := s.Shards()[0].Stats()
		var wg sync.WaitGroup
		errs := make(chan error, 2*conns) // a writer and a reader each
		// A waiting connection whose bytes in hand would pass the shard's
		// bound is closed (docs/architecture.md, "The request budget");
		// on a loaded machine the kernel may hand over that much before
		// the receive is cancelled. Such a connection must end at a whole
		// answer, and only as often as the shard counts the closes.
		var closedMu sync.Mutex
		closed := map[int]bool{}
		writeErrs := map[int]error{}
		for k := range conns {
			var stream []byte
			var bodies [][]byte
			for i := range perConn {
				b := body(k*perConn+i, size())
				bodies = append(bodies, b)
				stream = append(stream, frame(b)...)
			}
			var pieces []int
			for left := len(stream); left > 0; {
				n := min(left, 1+rng.IntN(256<<10))
				pieces = append(pieces, n)
				left -= n
			}
			c := dial(t, s)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for off, i := 0, 0; i < len(pieces); i++ {
					if _, err := c.Write(stream[off : off+pieces[i]]); err != nil {
						closedMu.Lock()
						writeErrs[k] = err
						closedMu.Unlock()
						return
					}
					off += pieces[i]
				}
			}()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, want := range bodies {
					got, err := readFrame(c)
					if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
						closedMu.Lock()
						closed[k] = true
						closedMu.Unlock()
						return
					}
					if err != nil || !bytes.Equal(got, want) {
						errs <- fmt.Errorf("connection %d answer %d (%d bytes): %v", k, i, len(want), err)
						return
					}
				}
				c.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for k, err := range writeErrs {
			if !closed[k] {
				t.Fatalf("connection %d: write failed (%v) on a connection the shard did not close", k, err)
			}
		}
		waitUntil(t, "the budget to be whole again", func() bool {
			return st.RequestBudgetUsedBytes.Load() == 0 && st.RequestBudgetWaiting.Load() == 0 && st.RequestBudgetWaitingBytes.Load() == 0 && st.Open.Load() == 0
		})
		// At most the budget, or one request larger than it alone: what
		// is served from bytes in hand is counted with the waiting bytes.
		peakMax := max(budgetBytes, directBufBytes(lengthPrefixBytes+3*budgetBytes))
		if peak := st.RequestBudgetPeakBytes.Load(); peak > peakMax {
			t.Fatalf("%d bytes reserved at the most, above %d", peak, peakMax)
		}
		t.Logf("%T: at most %d bytes reserved", h, st.RequestBudgetPeakBytes.Load())
		if n := st.RequestBudgetClosed.Load(); n != uint64(len(closed)) || len(closed) == conns {
			t.Fatalf("%d connections ended early, %d closed for the bytes they sent while waiting (bound %d bytes); want the same, and not all",
				len(closed), n, sh0WaitingMax(s))
		}
		t.Logf("%T: %d waits for budget, %d large requests received into their own buffers",
			h, st.RequestBudgetWaits.Load(), st.DirectRecvs.Load())
	}
}

// TestRequestBudgetQueueStaysBounded: behind a connection that waits for
// ever, many short waits of another come and go; the queue keeps in
// proportion to the connections waiting, and a wait taken up again queues
// behind those begun before it, not at the place of its earlier wait.
func TestRequestBudgetQueueStaysBounded(t *testing.T) {
	sh := &Shard{budget: newRequestBudget(requestBudgetBytesMin)}
	for slot := range 3 {
		sh.conns = append(sh.conns, &conn{slot: uint32(slot), gen: 1, state: connOpen})
	}
	stuck, brief, other := sh.conns[0], sh.conns[1], sh.conns[2]
	sh.waitForBudget(stuck)
	for range 10_000 {
		sh.waitForBudget(brief)
		sh.stopWaiting(brief)
	}
	if n := len(sh.budget.waiters) - sh.budget.head; n > 2*sh.budget.waiting+budgetStaleWaitersMax+1 {
		t.Fatalf("%d entries queued for %d connections waiting", n, sh.budget.waiting)
	}
	sh.waitForBudget(other)
	sh.waitForBudget(brief)
	stuck.state = connClosing // it goes: the others are next, in the order they began
	sh.stopWaiting(stuck)
	for _, want := range []*conn{other, brief} {
		if sh.pruneWaiters() == 0 {
			t.Fatal("no connection waits")
		}
		if got := sh.waiterConn(sh.budget.waiters[sh.budget.head]); got != want {
			t.Fatalf("%+v at the front, want slot %d", sh.budget.waiters[sh.budget.head], want.slot)
		}
		sh.stopWaiting(want)
	}
	if n := sh.pruneWaiters(); n != 0 || sh.budget.waiting != 0 || sh.budget.waitingBytes != 0 {
		t.Fatalf("%d entries, %d waiting, %d bytes after every wait ended", n, sh.budget.waiting, sh.budget.waitingBytes)
	}
}

// TestRequestBudgetPassesOnlyWhereItDelaysNoOne: while the connection at
// the head of the queue waits for a holder that is not done, a request
// that fits in what is left goes ahead of it; once the head waits only for
// a request that went ahead, nothing more goes ahead until it is granted.
func TestRequestBudgetPassesOnlyWhereItDelaysNoOne(t *testing.T) {
	const budgetBytes = requestBudgetBytesMin
	s := startBudgetServer(t, echoHandler{}, budgetBytes, 0)
	st := s.Shards()[0].Stats()
	type req struct {
		c   net.Conn
		msg []byte
	}
	open := func(i, size int) req {
		r := req{dial(t, s), frame(body(i, size))}
		if _, err := r.c.Write(r.msg[:1<<10]); err != nil {
			t.Fatal(err)
		}
		return r
	}
	finish := func(r req) {
		t.Helper()
		if _, err := r.c.Write(r.msg[1<<10:]); err != nil {
			t.Fatal(err)
		}
		got, err := readFrame(r.c)
		if err != nil || !bytes.Equal(got, r.msg[lengthPrefixBytes:]) {
			t.Fatalf("answer of %d bytes: %v", len(r.msg), err)
		}
	}
	used := func(n int64) func() bool { return func() bool { return st.RequestBudgetUsedBytes.Load() == n } }
	holder := open(1, 300<<10) // 512 KiB
	waitUntil(t, "the holder to be granted", used(512<<10))
	head := open(2, 700<<10) // 1 MiB: waits for the holder
	waitUntil(t, "the head to wait", func() bool { return st.RequestBudgetWaiting.Load() == 1 })
	passer := open(3, 100<<10) // 128 KiB: goes ahead, the head waits for the holder anyway
	waitUntil(t, "a request to go ahead of the head", used(640<<10))
	if st.RequestBudgetPassed.Load() != 1 || st.RequestBudgetWaiting.Load() != 1 {
		t.Fatalf("%d passed, %d waiting; want 1 and 1", st.RequestBudgetPassed.Load(), st.RequestBudgetWaiting.Load())
	}
	finish(holder)
	waitUntil(t, "the holder's bytes to return", used(128<<10))
	// The head now waits only for the one that went ahead: the next waits.
	late := open(4, 100<<10)
	waitUntil(t, "the next request to wait behind the head", func() bool { return st.RequestBudgetWaiting.Load() == 2 })
	finish(passer)
	waitUntil(t, "the head to be granted", used(1<<20))
	if st.RequestBudgetWaiting.Load() != 1 {
		t.Fatalf("%d waiting with the head granted, want the late one", st.RequestBudgetWaiting.Load())
	}
	finish(head)
	finish(late)
	if n := st.RequestBudgetPassed.Load(); n != 1 {
		t.Fatalf("%d requests went ahead, want 1", n)
	}
	for _, r := range []req{holder, head, passer, late} {
		r.c.Close()
	}
	waitUntil(t, "the budget to be whole again", func() bool {
		return st.RequestBudgetUsedBytes.Load() == 0 && st.RequestBudgetWaiting.Load() == 0 && st.Open.Load() == 0
	})
}

// gateHandler holds every answer until it is opened, then answers at once.
type gateHandler struct {
	open bool
	held []heldAnswer
}

type heldAnswer struct {
	ref ConnRef
	seq uint64
	msg []byte
}

func (h *gateHandler) Serve(sh *Shard, req *Request) {
	if h.open {
		sh.Respond(req.Conn, req.Seq, req.Message)
		return
	}
	h.held = append(h.held, heldAnswer{req.Conn, req.Seq, append([]byte(nil), req.Message...)})
}

// openGate runs on the shard: it answers what was held and every request
// after.
func (h *gateHandler) openGate(sh *Shard) {
	h.open = true
	for _, a := range h.held {
		sh.Respond(a.ref, a.seq, a.msg)
	}
	h.held = nil
}

// TestRequestBudgetWaitAfterInflightCap: a connection paused at its
// in-flight cap, with a large request behind the small ones, resumes when
// its answers go out and then waits for budget for the large one; each
// pause is lifted by its own event, and nothing is lost or reordered.
func TestRequestBudgetWaitAfterInflightCap(t *testing.T) {
	const (
		budgetBytes = requestBudgetBytesMin
		// Past the cap, more than pendingBytesMax of small requests wait:
		// receiving pauses there too.
		small      = inflightPerConnMax + 300
		smallBytes = 1 << 10
	)
	h := &gateHandler{}
	s := startBudgetServer(t, h, budgetBytes, 0)
	sh := s.Shards()[0]
	st := sh.Stats()
	holder := dial(t, s)
	holderMsg := frame(body(0, 900<<10))
	if _, err := holder.Write(holderMsg[:1<<10]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the holder to be granted", func() bool { return st.RequestBudgetUsedBytes.Load() == budgetBytes })
	c := dial(t, s)
	var stream []byte
	for i := range small {
		stream = append(stream, frame(body(i+1, smallBytes+i%40))...)
	}
	// Only the large request's first bytes come now: a request whose
	// bytes are all in hand at the cap is served from them.
	large := frame(body(small+1, 200<<10))
	stream = append(stream, large[:1<<10]...)
	go c.Write(stream)
	waitUntil(t, "the connection to reach its in-flight cap", func() bool { return st.Requests.Load() == inflightPerConnMax })
	if st.RequestBudgetWaiting.Load() != 0 {
		t.Fatal("a connection at its in-flight cap counted as waiting for budget")
	}
	if err := sh.Post(h.openGate); err != nil {
		t.Fatal(err)
	}
	for i := range small {
		got, err := readFrame(c)
		if err != nil || !bytes.Equal(got, body(i+1, smallBytes+i%40)) {
			t.Fatalf("small answer %d: %v", i, err)
		}
	}
	waitUntil(t, "the large request to wait for budget", func() bool { return st.RequestBudgetWaiting.Load() == 1 })
	go c.Write(large[1<<10:])
	go holder.Write(holderMsg[1<<10:])
	for _, x := range []struct {
		c   net.Conn
		msg []byte
	}{{holder, holderMsg}, {c, large}} {
		got, err := readFrame(x.c)
		if err != nil || !bytes.Equal(got, x.msg[lengthPrefixBytes:]) {
			t.Fatalf("answer of %d bytes: %v", len(x.msg), err)
		}
	}
	holder.Close()
	c.Close()
	waitUntil(t, "the budget to be whole again", func() bool {
		return st.RequestBudgetUsedBytes.Load() == 0 && st.RequestBudgetWaiting.Load() == 0 &&
			st.RequestBudgetWaitingBytes.Load() == 0 && st.Open.Load() == 0
	})
}

// sh0WaitingMax is the first shard's bound on bytes in hand of waiting
// connections.
func sh0WaitingMax(s *Server) int64 { return s.Shards()[0].budget.waitingMaxBytes }
