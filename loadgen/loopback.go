package main

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// loopbackAddr is where the ceiling's one TCP stream runs: the loopback
// interface, so the figure measures the host and not a network.
const loopbackAddr = "127.0.0.1:0"

// loopbackPair opens one TCP connection over loopback and returns both ends:
// accepted is the listening side (where a broker would sit), dialed the
// connecting side (where a client would sit).
func loopbackPair(ctx context.Context) (accepted, dialed *net.TCPConn, err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", loopbackAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on loopback: %w", err)
	}
	defer ln.Close()

	type acceptResult struct {
		c   net.Conn
		err error
	}
	acc := make(chan acceptResult, 1)
	go func() {
		c, err := ln.Accept()
		acc <- acceptResult{c, err}
	}()

	var d net.Dialer
	dc, dialErr := d.DialContext(ctx, "tcp", ln.Addr().String())
	if dialErr != nil {
		// Closing the listener ends the pending Accept.
		ln.Close()
		if r := <-acc; r.c != nil {
			r.c.Close()
		}
		return nil, nil, fmt.Errorf("dial loopback: %w", dialErr)
	}
	r := <-acc
	if r.err != nil {
		dc.Close()
		return nil, nil, fmt.Errorf("accept on loopback: %w", r.err)
	}
	return r.c.(*net.TCPConn), dc.(*net.TCPConn), nil
}

// runPair runs the sending and receiving halves of a stream concurrently. If
// either fails, abort is called so the other, possibly blocked on the
// connection, returns too. The error reported is the one that caused the
// abort, not the "use of closed connection" it then provokes in the other.
func runPair(send, receive func() error, abort func()) error {
	done := make(chan struct{}, 2)
	var once sync.Once
	var cause error
	for _, f := range []func() error{send, receive} {
		go func() {
			if err := f(); err != nil {
				once.Do(func() {
					cause = err
					abort()
				})
			}
			done <- struct{}{}
		}()
	}
	for range 2 {
		<-done
	}
	return cause
}
