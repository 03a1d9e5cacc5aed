package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Defaults and bounds of the TCP transport.
const (
	DefaultQueueLen     = 1024
	defaultDialTimeout  = time.Second
	defaultWriteTimeout = 5 * time.Second
	backoffMin          = 20 * time.Millisecond
	backoffMax          = 2 * time.Second
	readBufferBytes     = 64 << 10
	writeBufferBytes    = 64 << 10
	// DefaultMaxConns bounds the accepted connections open at once,
	// handshakes included: each voter keeps one, so this leaves room for
	// redials while a stranger opening sockets is turned away at once.
	DefaultMaxConns = 64
	// DefaultIdleTimeout is the read deadline of an authenticated
	// connection: several election timeouts. Writers send a keepalive
	// after a quarter of it without a message, so only a dead or stuck
	// peer reaches it.
	DefaultIdleTimeout = 10 * time.Second
	// keepaliveDivisor is how many keepalives fit in one idle timeout.
	keepaliveDivisor = 4
	// MinSecretBytes is the shortest cluster secret accepted: 128 bits.
	MinSecretBytes = 16
)

// TCPConfig configures a TCP transport.
type TCPConfig struct {
	// ID is this voter's id.
	ID uint64
	// Listener accepts connections from peers (taken over by the
	// transport, which closes it).
	Listener net.Listener
	// Peers maps every other voter's id to its host:port; only they may
	// connect.
	Peers map[uint64]string
	// Secret is the cluster secret every voter holds (at least
	// MinSecretBytes). Without one Insecure must be set: peers then state
	// their ids unproven.
	Secret   []byte
	Insecure bool
	// QueueLen bounds each peer's outgoing queue (DefaultQueueLen).
	QueueLen int
	// MaxConns bounds accepted connections (DefaultMaxConns).
	MaxConns int
	// IdleTimeout is the read deadline of a peer connection
	// (DefaultIdleTimeout); HandshakeTimeout bounds a handshake
	// (DefaultHandshakeTimeout).
	IdleTimeout      time.Duration
	HandshakeTimeout time.Duration
	// Logger receives refused connections (discarded when nil).
	Logger *slog.Logger
}

// TCP is the transport between voters over TCP: one outgoing connection,
// queue and writer goroutine per peer, and one reader goroutine per
// accepted connection.
type TCP struct {
	cfg     TCPConfig
	auth    Auth
	h       Handler
	peers   map[uint64]*peer
	done    chan struct{}
	wg      sync.WaitGroup
	refused LogLimit

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	inbound int                 // accepted connections open
	byPeer  map[uint64]net.Conn // each peer's authenticated inbound connection
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
	if err := CheckSecret(cfg.Secret, cfg.Insecure); err != nil {
		return nil, err
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &TCP{cfg: cfg, peers: make(map[uint64]*peer), done: make(chan struct{}),
		conns: make(map[net.Conn]struct{}), byPeer: make(map[uint64]net.Conn)}
	for id, addr := range cfg.Peers {
		if id == cfg.ID {
			continue
		}
		t.peers[id] = &peer{id: id, addr: addr, q: make(chan *pb.Message, cfg.QueueLen)}
	}
	t.auth = Auth{ID: cfg.ID, Secret: cfg.Secret, Timeout: cfg.HandshakeTimeout, Accepts: func(id uint64) bool {
		_, ok := t.peers[id]
		return ok
	}}
	return t, nil
}

// CheckSecret refuses a cluster secret too short to resist guessing, and
// no secret unless insecure was chosen; a secret and insecure together
// are refused as contradictory.
func CheckSecret(secret []byte, insecure bool) error {
	switch {
	case insecure && len(secret) > 0:
		return errors.New("transport: a cluster secret and insecure mode are exclusive")
	case insecure:
		return nil
	case len(secret) == 0:
		return errors.New("transport: no cluster secret (choose insecure mode explicitly to run without one)")
	case len(secret) < MinSecretBytes:
		return fmt.Errorf("transport: the cluster secret has %d bytes, want at least %d", len(secret), MinSecretBytes)
	}
	return nil
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

// refuse logs why a connection or message was refused, rate-limited.
func (t *TCP) refuse(c net.Conn, err error) {
	if ok, suppressed := t.refused.Allow(time.Now()); ok {
		t.cfg.Logger.Warn("controller transport refused a peer", "node", t.cfg.ID,
			"remote", c.RemoteAddr().String(), "err", err, "refusals_not_logged", suppressed)
	}
}

func (t *TCP) track(c net.Conn, inbound bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.done:
		return false
	default:
	}
	if inbound {
		if t.inbound >= t.cfg.MaxConns {
			return false
		}
		t.inbound++
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *TCP) untrack(c net.Conn, inbound bool) {
	t.mu.Lock()
	delete(t.conns, c)
	if inbound {
		t.inbound--
	}
	for id, pc := range t.byPeer {
		if pc == c {
			delete(t.byPeer, id)
		}
	}
	t.mu.Unlock()
	c.Close()
}

// adopt makes c the one inbound connection of peer id, closing an older
// one: a voter that redials leaves its old socket behind.
func (t *TCP) adopt(id uint64, c net.Conn) {
	t.mu.Lock()
	old := t.byPeer[id]
	t.byPeer[id] = c
	t.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

func (t *TCP) accept() {
	defer t.wg.Done()
	for {
		c, err := t.cfg.Listener.Accept()
		if err != nil {
			return // closed
		}
		if !t.track(c, true) {
			select {
			case <-t.done:
				c.Close()
				return
			default:
			}
			t.refuse(c, fmt.Errorf("%d connections open, the most accepted", t.cfg.MaxConns))
			c.Close()
			continue
		}
		t.wg.Add(1)
		go t.read(c)
	}
}

// read authenticates one incoming connection, then delivers its messages
// until it fails. A failed handshake, a malformed frame, or a message
// that is not from the authenticated peer to this voter closes it.
func (t *TCP) read(c net.Conn) {
	defer t.wg.Done()
	defer t.untrack(c, true)
	from, err := t.handshake(c)
	if err != nil {
		t.refuse(c, err)
		return
	}
	t.adopt(from, c)
	r := bufio.NewReaderSize(c, readBufferBytes)
	var buf bytes.Buffer
	for {
		if err := c.SetReadDeadline(time.Now().Add(t.cfg.IdleTimeout)); err != nil {
			return
		}
		m, err := readMessage(r, &buf, MaxMessageBytes)
		if err != nil {
			// A peer that went away or went silent past the idle
			// deadline is closed quietly; bytes that are not a frame
			// are a refusal.
			var ne net.Error
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &ne) {
				t.refuse(c, fmt.Errorf("node %d: %w", from, err))
			}
			return
		}
		if m == nil {
			continue // keepalive
		}
		if m.GetFrom() != from || m.GetTo() != t.cfg.ID {
			t.refuse(c, fmt.Errorf("node %d sent a %s from %d to %d", from, m.GetType(), m.GetFrom(), m.GetTo()))
			return
		}
		t.h.Deliver(m)
	}
}

// handshake reads the service word and runs the acceptor's handshake.
func (t *TCP) handshake(c net.Conn) (uint64, error) {
	if err := c.SetReadDeadline(time.Now().Add(t.auth.timeout())); err != nil {
		return 0, err
	}
	var svc [4]byte
	if _, err := io.ReadFull(c, svc[:]); err != nil {
		return 0, fmt.Errorf("transport: handshake: %w", err)
	}
	if got := binary.LittleEndian.Uint32(svc[:]); got != ServiceRaft {
		return 0, fmt.Errorf("%w: service %#x is not Raft", ErrRefused, got)
	}
	return t.auth.Accept(c, ServiceRaft)
}

// dial connects to p and authenticates both ends. The connection is
// tracked from the start, so Close need not wait out a handshake.
func (t *TCP) dial(p *peer) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", p.addr, defaultDialTimeout)
	if err != nil {
		return nil, err
	}
	if !t.track(c, false) {
		c.Close()
		return nil, net.ErrClosed
	}
	if err := t.auth.Dial(c, ServiceRaft, p.id); err != nil {
		t.untrack(c, false)
		if errors.Is(err, ErrRefused) {
			t.refuse(c, err)
		}
		return nil, err
	}
	return c, nil
}

// write sends one peer's queue over a connection it (re)dials with
// exponential backoff, and a keepalive when the queue stays empty. While
// the peer is down, messages wait in the queue and those that do not fit
// are dropped by Send.
func (t *TCP) write(p *peer) {
	defer t.wg.Done()
	var c net.Conn
	var w *bufio.Writer
	var frame []byte
	backoff := backoffMin
	keepalive := time.NewTimer(t.cfg.IdleTimeout / keepaliveDivisor)
	defer keepalive.Stop()
	defer func() {
		if c != nil {
			t.untrack(c, false)
		}
	}()
	for {
		var idle <-chan time.Time
		if c != nil {
			keepalive.Reset(t.cfg.IdleTimeout / keepaliveDivisor)
			idle = keepalive.C
		}
		var m *pb.Message
		select {
		case <-t.done:
			return
		case <-idle:
			frame = appendKeepalive(frame[:0])
			if err := t.flush(c, w, frame); err != nil {
				t.untrack(c, false)
				c = nil
			}
			continue
		case m = <-p.q:
		}
		if c == nil {
			var err error
			if c, err = t.dial(p); err != nil {
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
			t.untrack(c, false)
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

// flush writes frame and flushes it within the write deadline.
func (t *TCP) flush(c net.Conn, w *bufio.Writer, frame []byte) error {
	if err := c.SetWriteDeadline(time.Now().Add(defaultWriteTimeout)); err != nil {
		return err
	}
	if _, err := w.Write(frame); err != nil {
		return err
	}
	return w.Flush()
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
