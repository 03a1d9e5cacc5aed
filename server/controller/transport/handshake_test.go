package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

var secret = []byte("sixteen+ bytes of cluster secret")

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (dialer, acceptor net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if dialer, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if acceptor, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialer.Close(); acceptor.Close() })
	return dialer, acceptor
}

// handshake runs both sides; the acceptor reads the service word first,
// as its callers do.
func handshake(t *testing.T, dialer, acceptor *Auth, dialed uint64) (accepted uint64, acceptErr, dialErr error) {
	t.Helper()
	dc, ac := pair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer ac.Close() // a refusing acceptor closes
		var svc [4]byte
		if _, acceptErr = io.ReadFull(ac, svc[:]); acceptErr != nil {
			return
		}
		accepted, acceptErr = acceptor.Accept(ac, binary.LittleEndian.Uint32(svc[:]))
	}()
	if dialErr = dialer.Dial(dc, ServiceRaft, dialed); dialErr != nil {
		dc.Close() // as a refusing dialer's caller does
	}
	<-done
	return accepted, acceptErr, dialErr
}

func voters(ids ...uint64) func(uint64) bool {
	return func(id uint64) bool {
		for _, v := range ids {
			if v == id {
				return true
			}
		}
		return false
	}
}

func TestHandshakeProvesBothSides(t *testing.T) {
	one := &Auth{ID: 1, Secret: secret, Accepts: voters(2, 3)}
	two := &Auth{ID: 2, Secret: secret, Accepts: voters(1, 3)}
	if id, aerr, derr := handshake(t, two, one, 1); aerr != nil || derr != nil || id != 2 {
		t.Fatalf("good handshake: id %d, accept %v, dial %v", id, aerr, derr)
	}
	// A wrong secret is refused by the acceptor, and the dialer hears no
	// proof.
	stranger := &Auth{ID: 2, Secret: []byte("some other secret of 32 bytes..."), Accepts: voters(1)}
	if _, aerr, derr := handshake(t, stranger, one, 1); !errors.Is(aerr, ErrRefused) || !errors.Is(derr, ErrRefused) {
		t.Fatalf("wrong secret: accept %v, dial %v", aerr, derr)
	}
	// The right secret with an id that is not a peer, or our own id.
	for _, id := range []uint64{4, 1} {
		if _, aerr, derr := handshake(t, &Auth{ID: id, Secret: secret}, one, 1); !errors.Is(aerr, ErrRefused) || !errors.Is(derr, ErrRefused) {
			t.Fatalf("dialer %d: accept %v, dial %v", id, aerr, derr)
		}
	}
	// The dialer refuses an acceptor that is not the node it dialed.
	if _, _, derr := handshake(t, two, &Auth{ID: 3, Secret: secret, Accepts: voters(2)}, 1); !errors.Is(derr, ErrRefused) {
		t.Fatalf("answered by the wrong node: dial %v", derr)
	}
}

// TestHandshakeDialerRefusesForgedProof plays an acceptor that lets the
// dialer in without knowing the secret: the dialer refuses its proof.
func TestHandshakeDialerRefusesForgedProof(t *testing.T) {
	dc, ac := pair(t)
	go func() {
		var in [4 + answerBytes]byte
		hello := make([]byte, helloBytes)
		hello[0] = handshakeVersion
		binary.LittleEndian.PutUint64(hello[1:], 1)
		ac.Write(hello)
		io.ReadFull(ac, in[:])
		ac.Write(make([]byte, macBytes))
	}()
	err := (&Auth{ID: 2, Secret: secret}).Dial(dc, ServiceRaft, 1)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("forged acceptor proof: %v", err)
	}
}

// TestHandshakeDeadline: a dialer that sends its service word and then
// nothing is dropped once the handshake timeout passes.
func TestHandshakeDeadline(t *testing.T) {
	dc, ac := pair(t)
	dc.Write([]byte("STRR"))
	done := make(chan error, 1)
	go func() {
		var svc [4]byte
		io.ReadFull(ac, svc[:])
		_, err := (&Auth{ID: 1, Secret: secret, Accepts: voters(2), Timeout: 50 * time.Millisecond}).Accept(ac, ServiceRaft)
		done <- err
	}()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("silent dialer: %v, want a timeout", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the handshake never gave up on a silent dialer")
	}
}

func TestCheckSecret(t *testing.T) {
	for _, tc := range []struct {
		secret   []byte
		insecure bool
		ok       bool
	}{
		{secret, false, true},
		{nil, true, true},
		{nil, false, false},
		{secret[:MinSecretBytes-1], false, false},
		{secret, true, false},
	} {
		if err := CheckSecret(tc.secret, tc.insecure); (err == nil) != tc.ok {
			t.Errorf("CheckSecret(%d bytes, insecure %v) = %v", len(tc.secret), tc.insecure, err)
		}
	}
}

// FuzzHandshakeAccept answers the acceptor's hello with arbitrary bytes:
// nothing panics, and without the secret nothing gets in.
func FuzzHandshakeAccept(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, answerBytes))
	f.Add(append(binary.LittleEndian.AppendUint64(nil, 2), make([]byte, nonceBytes+macBytes+5)...))
	f.Fuzz(func(t *testing.T, answer []byte) {
		dc, ac := net.Pipe()
		defer dc.Close()
		go func() {
			io.ReadFull(dc, make([]byte, helloBytes))
			dc.Write(answer)
			dc.Close()
		}()
		a := &Auth{ID: 1, Secret: secret, Accepts: voters(2, 3), Timeout: time.Second}
		if id, err := a.Accept(ac, ServiceRaft); err == nil {
			t.Fatalf("forged answer %x accepted as node %d", answer, id)
		}
		ac.Close()
	})
}
