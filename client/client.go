package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// ErrClosed is returned by a Client, Producer or Consumer used after Close.
var ErrClosed = errors.New("strata client: closed")

// Client holds the connections to the brokers and the metadata cache that
// Producer, Consumer and Admin share. It is safe for concurrent use.
type Client struct {
	cfg Config

	mu     sync.Mutex
	conns  map[string]*brokerConn // by address
	meta   metadataCache
	closed bool

	// dialGate, when set (by tests), is waited on before every dial: a
	// test holds reconnections back while it restarts a broker.
	dialGate func(ctx context.Context) error
}

// Dial returns a Client for cfg after checking that one of the seed
// brokers answers (an ApiVersions round trip).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c := &Client{cfg: cfg.withDefaults(), conns: map[string]*brokerConn{}}
	c.meta.init()
	var errs []error
	for _, addr := range c.cfg.Brokers {
		conn, err := c.connTo(ctx, addr)
		if err == nil {
			err = conn.roundTrip(ctx, fb.ApiKeyApiVersions, buildApiVersions, func(env *schema.Envelope) error {
				r, err := env.ApiVersionsResponse()
				if err != nil {
					return err
				}
				if r.ErrorCode() != fb.ErrorCodeNone {
					return &schema.CodeError{Code: r.ErrorCode()}
				}
				return nil
			})
		}
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	c.Close()
	return nil, fmt.Errorf("strata client: no broker reachable: %w", errors.Join(errs...))
}

// sibling is a Client with c's configuration, seeds and known brokers
// but connections of its own.
func (c *Client) sibling() *Client {
	s := &Client{cfg: c.cfg, conns: map[string]*brokerConn{}}
	s.meta.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	s.dialGate = c.dialGate
	for id, b := range c.meta.brokers {
		s.meta.brokers[id] = b
	}
	return s
}

// Config is the client's configuration with defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// Close closes every connection; requests in flight fail.
func (c *Client) Close() error {
	c.mu.Lock()
	conns := c.conns
	c.conns = map[string]*brokerConn{}
	c.closed = true
	c.mu.Unlock()
	for _, conn := range conns {
		conn.close()
	}
	return nil
}

// connTo returns the live connection to addr, dialing one if there is
// none (a failed connection is replaced).
func (c *Client) connTo(ctx context.Context, addr string) (*brokerConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if conn := c.conns[addr]; conn != nil && !conn.closed() {
		c.mu.Unlock()
		return conn, nil
	}
	gate := c.dialGate
	c.mu.Unlock()
	if gate != nil {
		if err := gate(ctx); err != nil {
			return nil, err
		}
	}
	conn, err := dialConn(ctx, addr, c.cfg.ClientID, c.cfg.InflightPerConn, time.Duration(c.cfg.DialTimeoutMs)*time.Millisecond,
		time.Duration(c.cfg.ResponseTimeoutMs)*time.Millisecond)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.close()
		return nil, ErrClosed
	}
	if old := c.conns[addr]; old != nil && !old.closed() {
		// Another goroutine dialed first; keep one connection per broker.
		conn.close()
		return old, nil
	}
	c.conns[addr] = conn
	return conn, nil
}

// anyConn returns a connection to some broker: a live one if there is
// one, else the first seed or known broker that accepts a connection.
func (c *Client) anyConn(ctx context.Context) (*brokerConn, error) {
	c.mu.Lock()
	for _, conn := range c.conns {
		if !conn.closed() {
			c.mu.Unlock()
			return conn, nil
		}
	}
	addrs := append([]string(nil), c.cfg.Brokers...)
	addrs = append(addrs, c.meta.brokerAddrs()...)
	c.mu.Unlock()
	var errs []error
	for _, addr := range addrs {
		conn, err := c.connTo(ctx, addr)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("strata client: no broker reachable: %w", errors.Join(errs...))
}

// request sends one admin-style request to any broker and waits for its
// answer.
func (c *Client) request(ctx context.Context, api fb.ApiKey, build buildFunc, parse func(env *schema.Envelope) error) error {
	conn, err := c.anyConn(ctx)
	if err != nil {
		return err
	}
	return conn.roundTrip(ctx, api, build, parse)
}

func buildApiVersions(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
	name := b.CreateString(clientIDDefault)
	fb.ApiVersionsRequestStart(b)
	fb.ApiVersionsRequestAddClientSoftwareName(b, name)
	return fb.MessageApiVersionsRequest, fb.ApiVersionsRequestEnd(b)
}
