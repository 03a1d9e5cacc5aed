package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// waitFor bounds every wait on a condition here.
const waitFor = 30 * time.Second

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []*pb.Message
}

func (r *recorder) Deliver(m *pb.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}
func (r *recorder) ReportUnreachable(uint64)    {}
func (r *recorder) ReportSnapshot(uint64, bool) {}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// logLines is a slog handler that keeps every line.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func (l *logLines) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
}

// startTCP runs voter 1's transport, peers 2 and 3 at addresses nobody
// listens on (the tests play them).
func startTCP(t *testing.T, cfg TCPConfig) (*TCP, *recorder, *logLines, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logLines{}
	cfg.ID, cfg.Listener, cfg.Logger = 1, ln, slog.New(logs)
	if cfg.Peers == nil {
		cfg.Peers = map[uint64]string{2: "127.0.0.1:1", 3: "127.0.0.1:1"}
	}
	if cfg.Secret == nil {
		cfg.Secret = secret
	}
	tr, err := NewTCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if err := tr.Start(rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, rec, logs, ln.Addr().String()
}

// closed reports whether the other end closed c (reading gives EOF or a
// reset, not a timeout).
func closed(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// dialAs opens an authenticated Raft connection to addr as node id.
func dialAs(t *testing.T, addr string, id uint64, key []byte) (net.Conn, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, (&Auth{ID: id, Secret: key}).Dial(c, ServiceRaft, 1)
}

func frame(t *testing.T, m *pb.Message) []byte {
	t.Helper()
	b, err := appendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTCPRefusesStrangersAndForgedSenders(t *testing.T) {
	_, rec, logs, addr := startTCP(t, TCPConfig{})
	heartbeat := func(from uint64) *pb.Message {
		return &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(from), To: new(uint64(1)), Term: new(uint64(1))}
	}
	// Raft frames with no handshake: the first four bytes are not the
	// service word, and nothing is delivered.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write(frame(t, heartbeat(2)))
	if !closed(t, raw) {
		t.Fatal("a connection with no handshake stayed open")
	}
	// A wrong secret.
	if _, err := dialAs(t, addr, 2, []byte("not the secret, but long enough")); err == nil {
		t.Fatal("a wrong secret passed the handshake")
	}
	// The right secret, an id that is not a peer.
	if _, err := dialAs(t, addr, 7, secret); err == nil {
		t.Fatal("a node that is not a peer passed the handshake")
	}
	// Authenticated as 2, sending as 3: refused and closed.
	c, err := dialAs(t, addr, 2, secret)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(frame(t, heartbeat(3)))
	if !closed(t, c) {
		t.Fatal("a forged sender's connection stayed open")
	}
	// Authenticated as 2, garbage after the handshake.
	g, err := dialAs(t, addr, 2, secret)
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte{3, 0, 0, 0, 0xff, 0xff, 0xff})
	if !closed(t, g) {
		t.Fatal("a connection sending garbage stayed open")
	}
	if n := rec.count(); n != 0 {
		t.Fatalf("%d forged messages delivered", n)
	}
	for _, want := range []string{"is not Raft", "wrong cluster secret", "node 7 is not a peer", "node 2 sent a MsgHeartbeat from 3 to 1", "decode message"} {
		if !logs.has(want) {
			t.Errorf("no refusal logged for %q; log: %q", want, logs.lines)
		}
	}
	// A real peer still gets through.
	ok, err := dialAs(t, addr, 2, secret)
	if err != nil {
		t.Fatal(err)
	}
	ok.Write(frame(t, heartbeat(2)))
	eventually(t, "the real heartbeat", func() bool { return rec.count() == 1 })
}

// TestTCPCapsConnections: with room for two connections, a third is
// closed at once (the handshake timeout is far off); once one of the
// two goes, a peer gets in again.
func TestTCPCapsConnections(t *testing.T) {
	_, rec, logs, addr := startTCP(t, TCPConfig{MaxConns: 2, HandshakeTimeout: time.Hour})
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	eventually(t, "the two connections to be taken", func() bool {
		third, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer third.Close()
		return closed(t, third) && logs.has("2 connections open, the most accepted")
	})
	silent[0].Close()
	eventually(t, "a peer to get in", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := (&Auth{ID: 2, Secret: secret, Timeout: waitFor}).Dial(c, ServiceRaft, 1); err != nil {
			c.Close()
			return false
		}
		t.Cleanup(func() { c.Close() })
		c.Write(frame(t, &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1))}))
		return true
	})
	eventually(t, "the heartbeat", func() bool { return rec.count() == 1 })
}

// TestTCPDeadlines: a connection silent before its handshake ends, or
// silent after it past the idle timeout, is closed.
func TestTCPDeadlines(t *testing.T) {
	_, _, _, addr := startTCP(t, TCPConfig{HandshakeTimeout: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closed(t, c) {
		t.Fatal("a connection silent in its handshake stayed open")
	}
	idle, err := dialAs(t, addr, 2, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !closed(t, idle) {
		t.Fatal("an idle peer connection stayed open")
	}
}

// TestTCPWriterSendsKeepalives plays peer 2 to voter 1's writer: after
// the handshake and a message, an idle link carries empty frames, so the
// reader's deadline never closes a healthy link.
func TestTCPWriterSendsKeepalives(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tr, _, _, _ := startTCP(t, TCPConfig{Peers: map[uint64]string{2: ln.Addr().String()}, IdleTimeout: 200 * time.Millisecond})
	hb := &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(1))}
	tr.Send([]*pb.Message{hb})
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var svc [4]byte
	c.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(c, svc[:]); err != nil || binary.LittleEndian.Uint32(svc[:]) != ServiceRaft {
		t.Fatalf("service word %x, %v", svc, err)
	}
	if _, err := (&Auth{ID: 2, Secret: secret, Accepts: voters(1)}).Accept(c, ServiceRaft); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitFor))
	r := bufio.NewReader(c)
	var buf bytes.Buffer
	m, err := readMessage(r, &buf, MaxMessageBytes)
	if err != nil || m.GetType() != pb.MsgHeartbeat {
		t.Fatalf("first frame: %v, %v", m, err)
	}
	for range 3 {
		if m, err := readMessage(r, &buf, MaxMessageBytes); err != nil || m != nil {
			t.Fatalf("want a keepalive, got %v, %v", m, err)
		}
	}
}
