package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Every connection between controller nodes opens with a handshake that
// names the service, proves each side holds the cluster secret and fixes
// each side's node id for the life of the connection:
//
//	dialer   -> acceptor  service:u32le                    ("STRR" Raft, "STRC" metadata RPC)
//	acceptor -> dialer    version:u8 acceptor:u64le nonceA:[32]
//	dialer   -> acceptor  dialer:u64le nonceD:[32] macD:[32]
//	acceptor -> dialer    macA:[32]
//
//	macD = HMAC-SHA256(secret, "strata-controller dialer v1"   service acceptor dialer nonceA nonceD)
//	macA = HMAC-SHA256(secret, "strata-controller acceptor v1" service acceptor dialer nonceA nonceD)
//
// The acceptor checks macD and that the dialer is a peer it accepts
// before it sends macA, so a stranger learns nothing but a nonce; the
// dialer checks macA before it sends anything else, so it never talks to
// an impostor. Fresh nonces on both sides make a recorded handshake
// worthless, and the labels keep one side's proof from being replayed as
// the other's. With an empty secret the same exchange runs and the ids
// are stated, not proven (a cluster started with --cluster-insecure).
const (
	// ServiceRaft opens a Raft transport connection.
	ServiceRaft uint32 = 0x52525453 // "STRR"
	// handshakeVersion is the handshake's layout version.
	handshakeVersion = 1
	nonceBytes       = 32
	macBytes         = sha256.Size
	// helloBytes is the acceptor's first message: version, id, nonce.
	helloBytes = 1 + 8 + nonceBytes
	// answerBytes is the dialer's answer: id, nonce, proof.
	answerBytes = 8 + nonceBytes + macBytes
	// DefaultHandshakeTimeout bounds the whole handshake, so a silent or
	// slow stranger holds a connection slot for at most this long.
	DefaultHandshakeTimeout = 5 * time.Second
	labelDialer             = "strata-controller dialer v1"
	labelAcceptor           = "strata-controller acceptor v1"
)

// ErrRefused marks a handshake the other side failed: a wrong proof, an
// id that is not accepted, a wrong service or version.
var ErrRefused = errors.New("transport: peer refused")

// Auth is one node's side of the handshake.
type Auth struct {
	// ID is this node's id.
	ID uint64
	// Secret is the cluster secret; empty means ids are taken on trust.
	Secret []byte
	// Accepts reports whether a dialer may connect with this id.
	Accepts func(id uint64) bool
	// Timeout bounds the handshake (DefaultHandshakeTimeout when zero).
	Timeout time.Duration
}

func (a *Auth) timeout() time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return DefaultHandshakeTimeout
}

func (a *Auth) mac(label string, service uint32, acceptor, dialer uint64, nonceA, nonceD []byte) []byte {
	h := hmac.New(sha256.New, a.Secret)
	h.Write([]byte(label))
	var ids [4 + 8 + 8]byte
	binary.LittleEndian.PutUint32(ids[0:], service)
	binary.LittleEndian.PutUint64(ids[4:], acceptor)
	binary.LittleEndian.PutUint64(ids[12:], dialer)
	h.Write(ids[:])
	h.Write(nonceA)
	h.Write(nonceD)
	return h.Sum(nil)
}

// Accept runs the acceptor's side on c, whose service word the caller
// has already read, and returns the dialer's proven id. On error the
// caller closes c.
func (a *Auth) Accept(c net.Conn, service uint32) (uint64, error) {
	if err := c.SetDeadline(time.Now().Add(a.timeout())); err != nil {
		return 0, err
	}
	var hello [helloBytes]byte
	hello[0] = handshakeVersion
	binary.LittleEndian.PutUint64(hello[1:], a.ID)
	nonceA := hello[9:]
	if _, err := rand.Read(nonceA); err != nil {
		return 0, err
	}
	if _, err := c.Write(hello[:]); err != nil {
		return 0, err
	}
	var ans [answerBytes]byte
	if _, err := io.ReadFull(c, ans[:]); err != nil {
		return 0, fmt.Errorf("transport: handshake: %w", err)
	}
	dialer := binary.LittleEndian.Uint64(ans[0:])
	nonceD, macD := ans[8:8+nonceBytes], ans[8+nonceBytes:]
	if !hmac.Equal(macD, a.mac(labelDialer, service, a.ID, dialer, nonceA, nonceD)) {
		return 0, fmt.Errorf("%w: node %d: wrong cluster secret", ErrRefused, dialer)
	}
	if dialer == a.ID || a.Accepts == nil || !a.Accepts(dialer) {
		return 0, fmt.Errorf("%w: node %d is not a peer of node %d", ErrRefused, dialer, a.ID)
	}
	if _, err := c.Write(a.mac(labelAcceptor, service, a.ID, dialer, nonceA, nonceD)); err != nil {
		return 0, err
	}
	return dialer, c.SetDeadline(time.Time{})
}

// Dial runs the dialer's side on a fresh connection c to node peer: it
// sends the service word and proves this node's id, and checks that the
// other end is peer and holds the secret. On error the caller closes c.
func (a *Auth) Dial(c net.Conn, service uint32, peer uint64) error {
	if err := c.SetDeadline(time.Now().Add(a.timeout())); err != nil {
		return err
	}
	var svc [4]byte
	binary.LittleEndian.PutUint32(svc[:], service)
	if _, err := c.Write(svc[:]); err != nil {
		return err
	}
	var hello [helloBytes]byte
	if _, err := io.ReadFull(c, hello[:]); err != nil {
		return fmt.Errorf("transport: handshake with node %d: %w", peer, err)
	}
	if hello[0] != handshakeVersion {
		return fmt.Errorf("%w: node %d speaks handshake version %d, want %d", ErrRefused, peer, hello[0], handshakeVersion)
	}
	if got := binary.LittleEndian.Uint64(hello[1:]); got != peer {
		return fmt.Errorf("%w: dialed node %d, answered by node %d", ErrRefused, peer, got)
	}
	nonceA := hello[9:]
	var ans [answerBytes]byte
	binary.LittleEndian.PutUint64(ans[0:], a.ID)
	nonceD := ans[8 : 8+nonceBytes]
	if _, err := rand.Read(nonceD); err != nil {
		return err
	}
	copy(ans[8+nonceBytes:], a.mac(labelDialer, service, peer, a.ID, nonceA, nonceD))
	if _, err := c.Write(ans[:]); err != nil {
		return err
	}
	var macA [macBytes]byte
	if _, err := io.ReadFull(c, macA[:]); err != nil {
		// The acceptor closes without a word when it refuses us.
		return fmt.Errorf("%w: node %d closed the handshake (a wrong cluster secret, or not its peer): %w", ErrRefused, peer, err)
	}
	if !hmac.Equal(macA[:], a.mac(labelAcceptor, service, peer, a.ID, nonceA, nonceD)) {
		return fmt.Errorf("%w: node %d does not hold the cluster secret", ErrRefused, peer)
	}
	return c.SetDeadline(time.Time{})
}
