package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// echoHandler answers every request with its own body.
type echoHandler struct{}

func (echoHandler) Serve(sh *Shard, req *Request) { sh.Respond(req.Conn, req.Seq, req.Message) }

// laterHandler keeps every request's body and answers it on a later turn of
// the loop, through the shard's inbox: out of the receive path, as a produce
// waiting for its write would.
type laterHandler struct{}

func (laterHandler) Serve(sh *Shard, req *Request) {
	hold := req.Retain()
	ref, seq, msg := req.Conn, req.Seq, req.Message
	if err := sh.Post(func(sh *Shard) {
		sh.Respond(ref, seq, msg)
		hold.Release()
	}); err != nil {
		panic(err)
	}
}

func startServer(t *testing.T, h Handler, cores int) *Server {
	t.Helper()
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: cores, Handler: h,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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

func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

func frame(body []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func readFrame(r io.Reader) ([]byte, error) {
	var p [4]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.LittleEndian.Uint32(p[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

func body(i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(i*7 + j)
	}
	if size >= 4 {
		binary.LittleEndian.PutUint32(b, uint32(i))
	}
	return b
}

// TestPipelinedAnswersInOrder sends many requests on one connection
// without waiting, with both handlers, and checks every answer comes back
// once, in order, byte for byte.
func TestPipelinedAnswersInOrder(t *testing.T) {
	for name, h := range map[string]Handler{"now": echoHandler{}, "later": laterHandler{}} {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, h, 2)
			c := dial(t, s)
			const n = 3000 // more than the in-flight cap
			errc := make(chan error, 1)
			go func() {
				var buf bytes.Buffer
				for i := range n {
					buf.Write(frame(body(i, 16+i%300)))
				}
				_, err := c.Write(buf.Bytes())
				errc <- err
			}()
			for i := range n {
				got, err := readFrame(c)
				if err != nil {
					t.Fatalf("answer %d: %v", i, err)
				}
				if !bytes.Equal(got, body(i, 16+i%300)) {
					t.Fatalf("answer %d differs", i)
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLargeRequestsSpanBuffers sends requests larger than a receive buffer.
func TestLargeRequestsSpanBuffers(t *testing.T) {
	s := startServer(t, laterHandler{}, 1)
	c := dial(t, s)
	sizes := []int{recvBufferBytes - 4, recvBufferBytes + 1, 5*recvBufferBytes + 123, 3 << 20, 7}
	// The second round, sent once the first is answered (and its buffers
	// are back in the pool), reuses pooled buffers.
	for round := range 2 {
		go func() {
			for i, n := range sizes {
				c.Write(frame(body(round*len(sizes)+i, n)))
			}
		}()
		for i, n := range sizes {
			got, err := readFrame(c)
			if err != nil {
				t.Fatalf("round %d answer %d: %v", round, i, err)
			}
			if !bytes.Equal(got, body(round*len(sizes)+i, n)) {
				t.Fatalf("round %d answer %d (%d bytes) differs", round, i, n)
			}
		}
	}
	if s.Shards()[0].Stats().DirectRecvs.Load() == 0 {
		t.Fatal("no large request was received into its own buffer")
	}
	if s.Shards()[0].Stats().DirectReuse.Load() == 0 {
		t.Fatal("no large request reused a pooled buffer")
	}
}

// TestManyConnections runs clients on several connections at once across
// two shards.
func TestManyConnections(t *testing.T) {
	s := startServer(t, echoHandler{}, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for k := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			for i := range 100 {
				want := body(k*1000+i, 1+i*13)
				if _, err := c.Write(frame(want)); err != nil {
					errs <- err
					return
				}
				got, err := readFrame(c)
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("conn %d request %d: %v", k, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var accepted uint64
	for _, sh := range s.Shards() {
		accepted += sh.Stats().Accepted.Load()
	}
	if accepted != 50 {
		t.Fatalf("accepted %d connections, want 50", accepted)
	}
}

// TestOversizedRequestClosesOnlyItsConnection: a length prefix above what
// the shard will even drop closes that connection before any body is read;
// a neighbour on the same shard keeps being served.
func TestOversizedRequestClosesOnlyItsConnection(t *testing.T) {
	s := startServer(t, echoHandler{}, 1)
	good := dial(t, s)
	bad := dial(t, s)
	var p [4]byte
	binary.LittleEndian.PutUint32(p[:], discardBytesMax+1)
	if _, err := bad.Write(p[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("oversized request: read %v, want the connection closed", err)
	}
	for i := range 10 {
		if _, err := good.Write(frame(body(i, 100))); err != nil {
			t.Fatal(err)
		}
		if got, err := readFrame(good); err != nil || !bytes.Equal(got, body(i, 100)) {
			t.Fatalf("neighbour request %d: %v", i, err)
		}
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// TestStopAnswersInFlight: Stop lets requests already received be answered
// before connections close.
func TestStopAnswersInFlight(t *testing.T) {
	gate := make(chan struct{})
	h := &gatedHandler{gate: gate, received: make(chan struct{})}
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: h,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	if _, err := c.Write(frame([]byte("last words"))); err != nil {
		t.Fatal(err)
	}
	<-h.received
	stopped := make(chan error)
	go func() { stopped <- s.Stop() }()
	close(gate) // the answer is allowed out only now
	got, err := readFrame(c)
	if err != nil || string(got) != "last words" {
		t.Fatalf("in-flight answer: %q %v", got, err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after stop")
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// gatedHandler answers the first request once gate closes.
type gatedHandler struct {
	gate     chan struct{}
	received chan struct{}
}

func (h *gatedHandler) Serve(sh *Shard, req *Request) {
	hold := req.Retain()
	ref, seq, b := req.Conn, req.Seq, req.Message
	go func() {
		<-h.gate
		sh.inbox.Push(func(sh *Shard) { sh.Respond(ref, seq, b); hold.Release() })
		sh.inbox.Arm()
		sh.ringEventFD()
	}()
	close(h.received)
}

// hopHandler sends every request on a round trip through the next shard:
// there by MSG_RING doorbell, back the same way, answered on its own shard.
type hopHandler struct{}

func (hopHandler) Serve(sh *Shard, req *Request) {
	hold := req.Retain()
	ref, seq, msg := req.Conn, req.Seq, req.Message
	next := sh.peers[(sh.ID()+1)%len(sh.peers)]
	err := next.PostFrom(sh, func(there *Shard) {
		if there == sh {
			panic("message ran on the sending shard")
		}
		if err := sh.PostFrom(there, func(home *Shard) {
			home.Respond(ref, seq, msg)
			hold.Release()
		}); err != nil {
			panic(err)
		}
	})
	if err != nil {
		panic(err)
	}
}

func TestCrossShardMessages(t *testing.T) {
	s := startServer(t, hopHandler{}, 2)
	var wg sync.WaitGroup
	for k := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, s)
			go func() {
				for i := range 500 {
					c.Write(frame(body(k*1000+i, 40)))
				}
			}()
			for i := range 500 {
				got, err := readFrame(c)
				if err != nil || !bytes.Equal(got, body(k*1000+i, 40)) {
					t.Errorf("conn %d answer %d: %v", k, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// retainNowHandler retains each request and releases it before Serve
// returns: the receive buffer must not go back to the kernel while the rest
// of it is still being parsed.
type retainNowHandler struct{}

func (retainNowHandler) Serve(sh *Shard, req *Request) {
	hold := req.Retain()
	sh.Respond(req.Conn, req.Seq, req.Message)
	hold.Release()
}

func TestRetainReleasedWithinServe(t *testing.T) {
	s := startServer(t, retainNowHandler{}, 1)
	c := dial(t, s)
	const n = 5000
	go func() {
		var buf bytes.Buffer
		for i := range n {
			buf.Write(frame(body(i, 20+i%50)))
		}
		c.Write(buf.Bytes())
	}()
	for i := range n {
		got, err := readFrame(c)
		if err != nil || !bytes.Equal(got, body(i, 20+i%50)) {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
}

// TestIdleAndHalfOpenConnectionsClose: a connection that sends nothing, and
// one that stops halfway through a request, are closed after the idle
// limit; an active neighbour is not.
func TestIdleAndHalfOpenConnectionsClose(t *testing.T) {
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: echoHandler{}, ConnIdleMax: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	idle := dial(t, s)
	half := dial(t, s)
	half.Write(frame(body(1, 100))[:50])
	active := dial(t, s)
	closed := make(chan string, 2)
	for name, c := range map[string]net.Conn{"idle": idle, "half-open": half} {
		go func() {
			if _, err := c.Read(make([]byte, 1)); err != nil {
				closed <- name
			}
		}()
	}
	deadline := time.After(20 * time.Second)
	for got := 0; got < 2; {
		select {
		case <-closed:
			got++
		case <-deadline:
			t.Fatal("idle connections were not closed")
		default:
			// Keep the active connection busy meanwhile.
			if _, err := active.Write(frame(body(2, 10))); err != nil {
				t.Fatal(err)
			}
			if _, err := readFrame(active); err != nil {
				t.Fatalf("active connection: %v", err)
			}
		}
	}
}

// parkedHopHandler sends each request to the other shard, where it waits
// (off the shard) for gate before coming back to be answered.
type parkedHopHandler struct {
	gate     chan struct{}
	received chan struct{}
}

func (h *parkedHopHandler) Serve(sh *Shard, req *Request) {
	hold := req.Retain()
	ref, seq, msg := req.Conn, req.Seq, req.Message
	other := sh.peers[(sh.ID()+1)%len(sh.peers)]
	other.PostFrom(sh, func(there *Shard) {
		go func() {
			<-h.gate
			there.Post(func(there *Shard) {
				sh.PostFrom(there, func(home *Shard) { home.Respond(ref, seq, msg); hold.Release() })
			})
		}()
	})
	close(h.received)
}

// TestStopWaitsForCrossShardWork: a shard with no connections of its own
// keeps running during a stop while another shard's request still needs it.
func TestStopWaitsForCrossShardWork(t *testing.T) {
	h := &parkedHopHandler{gate: make(chan struct{}), received: make(chan struct{})}
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 2, Handler: h,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	if _, err := c.Write(frame([]byte("across"))); err != nil {
		t.Fatal(err)
	}
	<-h.received
	stopped := make(chan error)
	go func() { stopped <- s.Stop() }()
	// Both shards are stopping; the idle one must still be there.
	for !s.Shards()[0].stopping.Load() || !s.Shards()[1].stopping.Load() {
		runtime.Gosched()
	}
	close(h.gate)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := readFrame(c)
	if err != nil || string(got) != "across" {
		for _, sh := range s.Shards() {
			select {
			case <-sh.done:
				t.Logf("shard %d stopped", sh.ID())
			default:
				t.Logf("shard %d running: open %d inbox %d", sh.ID(), sh.stats.Open.Load(), sh.inbox.Len())
			}
		}
		t.Fatalf("answer after stop began: %q %v", got, err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
