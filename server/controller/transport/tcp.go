package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Defaults of the TCP transport.
const (
	DefaultQueueLen     = 1024
	defaultDialTimeout  = time.Second
	defaultWriteTimeout = 5 * time.Second
	backoffMin          = 20 * time.Millisecond
	backoffMax          = 2 * time.Second
	readBufferBytes     = 64 << 10
	writeBufferBytes    = 64 << 10
)

// TCPConfig configures a TCP transport.
type TCPConfig struct {
	// ID is this voter's id; messages addressed to another id are dropped.
	ID uint64
	// Listener accepts connections from peers (taken over by the
	// transport, which closes it).
	Listener net.Listener
	// Peers maps every other voter's id to its host:port.
	Peers map[uint64]string
	// QueueLen bounds each peer's outgoing queue (DefaultQueueLen).
	QueueLen int
}

// TCP is the transport between voters over TCP: one outgoing connection,
// queue and writer goroutine per peer, and one reader goroutine per
// accepted connection.
type TCP struct {
	cfg   TCPConfig
	h     Handler
	peers map[uint64]*peer
	done  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

var _ Transport = (*TCP)(nil)

// peer is one outgoing link.
type peer struct {
	id   uint64
	addr string
	q    chan *pb.Message
}

// NewTCP returns a TCP transport; Start starts it.
func NewTCP(cfg TCPConfig) (*TCP, error) {
	if cfg.Listener == nil {
		return nil, errors.New("transport: no listener")
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	t := &TCP{cfg: cfg, peers: make(map[uint64]*peer), done: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	for id, addr := range cfg.Peers {
		if id == cfg.ID {
			continue
		}
		t.peers[id] = &peer{id: id, addr: addr, q: make(chan *pb.Message, cfg.QueueLen)}
	}
	return t, nil
}

// Start implements Transport.
func (t *TCP) Start(h Handler) error {
	t.h = h
	t.wg.Add(1)
	go t.accept()
	for _, p := range t.peers {
		t.wg.Add(1)
		go t.write(p)
	}
	return nil
}

// Send implements Transport.
func (t *TCP) Send(msgs []*pb.Message) {
	for _, m := range msgs {
		p, ok := t.peers[m.GetTo()]
		if !ok {
			continue
		}
		select {
		case p.q <- m:
		default:
			t.dropped(m)
		}
	}
}

// dropped tells raft about a message that never left: a snapshot must be
// reported failed, or raft waits for it forever.
func (t *TCP) dropped(m *pb.Message) {
	if m.GetType() == pb.MsgSnap {
		t.h.ReportSnapshot(m.GetTo(), false)
	}
	t.h.ReportUnreachable(m.GetTo())
}

// Close implements Transport.
func (t *TCP) Close() error {
	close(t.done)
	err := t.cfg.Listener.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return err
}

func (t *TCP) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.done:
		return false
	default:
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *TCP) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

func (t *TCP) accept() {
	defer t.wg.Done()
	for {
		c, err := t.cfg.Listener.Accept()
		if err != nil {
			return // closed
		}
		if !t.track(c) {
			c.Close()
			return
		}
		t.wg.Add(1)
		go t.read(c)
	}
}

// read delivers the messages of one incoming connection until it fails;
// a malformed frame closes the connection.
func (t *TCP) read(c net.Conn) {
	defer t.wg.Done()
	defer t.untrack(c)
	r := bufio.NewReaderSize(c, readBufferBytes)
	var buf bytes.Buffer
	for {
		m, err := readMessage(r, &buf, MaxMessageBytes)
		if err != nil {
			return
		}
		if m.GetTo() != t.cfg.ID {
			continue
		}
		t.h.Deliver(m)
	}
}

// write sends one peer's queue over a connection it (re)dials with
// exponential backoff. While the peer is down, messages wait in the queue
// and those that do not fit are dropped by Send.
func (t *TCP) write(p *peer) {
	defer t.wg.Done()
	var c net.Conn
	var w *bufio.Writer
	var frame []byte
	backoff := backoffMin
	defer func() {
		if c != nil {
			t.untrack(c)
		}
	}()
	for {
		var m *pb.Message
		select {
		case <-t.done:
			return
		case m = <-p.q:
		}
		if c == nil {
			var err error
			c, err = net.DialTimeout("tcp", p.addr, defaultDialTimeout)
			if err != nil || !t.track(c) {
				if c != nil {
					c.Close()
				}
				c = nil
				t.dropped(m)
				if !t.wait(backoff) {
					return
				}
				backoff = min(2*backoff, backoffMax)
				continue
			}
			backoff = backoffMin
			w = bufio.NewWriterSize(c, writeBufferBytes)
		}
		snap := m.GetType() == pb.MsgSnap
		err := t.writeOne(c, w, &frame, m)
		// Write what else is queued before flushing, so a burst shares
		// one syscall.
		for err == nil && len(p.q) > 0 {
			m = <-p.q
			snap = snap || m.GetType() == pb.MsgSnap
			err = t.writeOne(c, w, &frame, m)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			if snap {
				t.h.ReportSnapshot(p.id, false)
			}
			t.h.ReportUnreachable(p.id)
			t.untrack(c)
			c = nil
			continue
		}
		if snap {
			t.h.ReportSnapshot(p.id, true)
		}
	}
}

func (t *TCP) writeOne(c net.Conn, w *bufio.Writer, frame *[]byte, m *pb.Message) error {
	var err error
	if *frame, err = appendMessage((*frame)[:0], m); err != nil {
		return err
	}
	if err := c.SetWriteDeadline(time.Now().Add(defaultWriteTimeout)); err != nil {
		return err
	}
	if _, err := w.Write(*frame); err != nil {
		return fmt.Errorf("transport: write to peer: %w", err)
	}
	return nil
}

// wait waits d or until Close; it reports false on Close.
func (t *TCP) wait(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.done:
		return false
	case <-timer.C:
		return true
	}
}
