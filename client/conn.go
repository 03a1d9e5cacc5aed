package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// ErrConnClosed is the error of requests cut off by a closed connection; the
// cause (the read or write error) is wrapped with it.
var ErrConnClosed = errors.New("strata client: connection closed")

// buildFunc builds a request's message table into b and says which union
// member it is.
type buildFunc func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT)

// doneFunc receives a request's answer on the connection's reader
// goroutine. env and its buffer are valid only during the call; trailing
// (the raw frame bytes after a fetch answer) is freshly allocated, or comes
// from the call's trailing hooks, and may be kept. err is non-nil when no answer came (the connection failed).
type doneFunc func(env *schema.Envelope, trailing []byte, err error)

// call is one request waiting for its answer.
type call struct {
	corr        int32
	api         fb.ApiKey
	trailingMax int64 // fetch: the request's max_bytes, bound of the trailing bytes
	done        doneFunc
	trailing    *trailingHooks // fetch: optional; nil reads as before
}

// trailingHooks let a fetch's sender act between a fetch answer's
// envelope and its trailing frame bytes.
type trailingHooks struct {
	// envelope, if set, sees the verified envelope on the reader goroutine
	// before the trailing bytes are read (env is valid only during the
	// call): a consumer sends its next fetch from there.
	envelope func(env *schema.Envelope)
	// buffer, if set, gives the slice of n bytes the trailing bytes are
	// read into; otherwise a fresh one is allocated.
	buffer func(n int) []byte
	// progress, if set, sees the trailing bytes read so far after each
	// read, which then takes at most trailingReadChunkBytes.
	progress func(have []byte)
}

// brokerConn is one connection to a broker. Requests are written in the
// order send is called and the broker answers them in that order, so the
// pending calls form a FIFO; the correlation id checks the pairing. At
// most inflightMax requests await answers; send blocks (or tryAcquire
// fails) beyond that, which is the pipelining bound.
type brokerConn struct {
	addr     string
	clientID string
	// responseTimeout bounds the wait for the next answer while requests
	// are pending (Config.ResponseTimeoutMs).
	responseTimeout time.Duration
	nc              net.Conn
	slots           chan struct{} // one token per request in flight

	wmu  sync.Mutex // orders encode, pending push and write
	enc  *schema.Encoder
	corr int32

	pmu     sync.Mutex
	pending []*call
	err     error // set once when the connection fails
	dead    chan struct{}
}

// Connection limits and timeouts.
const (
	// writeTimeoutMs bounds one request write.
	writeTimeoutMs = 30_000
	// readBufferBytesInitial is the first size of the reused answer buffer.
	readBufferBytesInitial = 4 << 10
)

// dialConn connects to addr.
func dialConn(ctx context.Context, addr, clientID string, inflightMax int, dialTimeout, responseTimeout time.Duration) (*brokerConn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		// Requests are whole messages written at once; waiting to fill a
		// segment only adds latency.
		_ = tc.SetNoDelay(true)
	}
	c := &brokerConn{addr: addr, clientID: clientID, responseTimeout: responseTimeout, nc: nc, slots: make(chan struct{}, inflightMax),
		enc: schema.NewEncoder(), dead: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

// closed reports whether the connection has failed or been closed.
func (c *brokerConn) closed() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// acquire takes one in-flight slot, waiting for one if all are taken.
func (c *brokerConn) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-c.dead:
		return c.failure()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryAcquire takes one in-flight slot if one is free.
func (c *brokerConn) tryAcquire() bool {
	select {
	case c.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (c *brokerConn) release() { <-c.slots }

// failure is the error the connection failed with.
func (c *brokerConn) failure() error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.err == nil {
		return ErrConnClosed
	}
	return c.err
}

// sendAcquired writes one request for which the caller holds a slot.
// With a non-nil done the answer is awaited and done gets it (or the
// connection's error); the slot is freed then. With a nil done (a produce
// with acks=0, which the broker never answers) the slot is freed once the
// request is written. An error return means done will not be called.
func (c *brokerConn) sendAcquired(api fb.ApiKey, trailingMax int64, build buildFunc, done doneFunc) error {
	return c.sendCall(&call{api: api, trailingMax: trailingMax, done: done}, build)
}

// sendCall is sendAcquired for a call the caller filled in (a fetch with
// trailing hooks); it sets the correlation id.
func (c *brokerConn) sendCall(p *call, build buildFunc) error {
	done := p.done
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.corr++
	p.corr = c.corr
	h := schema.EnvelopeHeader{ApiKey: p.api, CorrelationID: c.corr, ClientID: c.clientID}
	typ, msg := build(c.enc.Builder())
	wire := c.enc.Finish(&h, typ, msg)
	// The call joins the queue under the same lock that fail takes, so it
	// is either failed by fail or refused here, never lost.
	c.pmu.Lock()
	if c.err != nil {
		err := c.err
		c.pmu.Unlock()
		c.release()
		return err
	}
	if done != nil {
		c.pending = append(c.pending, p)
	}
	c.pmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeoutMs * time.Millisecond))
	_, err := c.nc.Write(wire)
	if err != nil {
		err = fmt.Errorf("%w: write to %s: %w", ErrConnClosed, c.addr, err)
		if done == nil {
			c.release()
		}
		c.fail(err)
		if done == nil {
			return err
		}
		return nil // done gets the error from fail
	}
	if done == nil {
		c.release()
	}
	return nil
}

// roundTrip sends one request and waits for its answer; parse reads the
// answer on the reader goroutine, while the envelope is valid.
func (c *brokerConn) roundTrip(ctx context.Context, api fb.ApiKey, build buildFunc, parse func(env *schema.Envelope) error) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	result := make(chan error, 1)
	err := c.sendAcquired(api, 0, build, func(env *schema.Envelope, _ []byte, err error) {
		if err == nil {
			if err = env.Err(); err == nil {
				err = parse(env)
			}
		}
		result <- err
	})
	if err != nil {
		return err
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		// The answer still arrives and is dropped; the connection stays
		// in step.
		return ctx.Err()
	}
}

// fail closes the connection once and hands every pending call the error.
func (c *brokerConn) fail(err error) {
	c.pmu.Lock()
	if c.err != nil {
		c.pmu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	close(c.dead)
	c.pmu.Unlock()
	_ = c.nc.Close()
	for _, p := range pending {
		p.done(nil, nil, err)
		c.release()
	}
}

// close shuts the connection; pending calls fail with ErrConnClosed.
func (c *brokerConn) close() { c.fail(ErrConnClosed) }

// readLoop reads answers in order and hands each to its call.
func (c *brokerConn) readLoop() {
	var env schema.Envelope
	buf := make([]byte, readBufferBytesInitial)
	var prefix [schema.LengthPrefixBytes]byte
	for {
		n, err := c.readPrefix(prefix[:])
		if err != nil {
			c.fail(fmt.Errorf("%w: read from %s: %w", ErrConnClosed, c.addr, err))
			return
		}
		c.pmu.Lock()
		var p *call
		if len(c.pending) > 0 {
			p = c.pending[0]
			c.pending[0] = nil
			c.pending = c.pending[1:]
		}
		c.pmu.Unlock()
		if p == nil {
			c.fail(fmt.Errorf("%w: %s sent an answer to no request", ErrConnClosed, c.addr))
			return
		}
		if n > cap(buf) {
			buf = make([]byte, n)
		}
		msg := buf[:n]
		copy(msg, prefix[:])
		_ = c.nc.SetReadDeadline(time.Now().Add(c.responseTimeout))
		if _, err := io.ReadFull(c.nc, msg[schema.LengthPrefixBytes:]); err != nil {
			c.failWith(p, fmt.Errorf("%w: read from %s: %w", ErrConnClosed, c.addr, err))
			return
		}
		if err := env.DecodeResponse(msg); err != nil {
			c.failWith(p, fmt.Errorf("%w: bad answer from %s: %w", ErrConnClosed, c.addr, err))
			return
		}
		if env.CorrelationId() != p.corr {
			c.failWith(p, fmt.Errorf("%w: %s answered correlation id %d, expected %d", ErrConnClosed, c.addr, env.CorrelationId(), p.corr))
			return
		}
		var trailing []byte
		if p.api == fb.ApiKeyFetch && env.MessageType() == fb.MessageFetchResponse {
			fr, _ := env.FetchResponse()
			t, err := schema.FetchTrailingBytes(&fr, p.trailingMax)
			if err != nil {
				c.failWith(p, fmt.Errorf("%w: %s: %w", ErrConnClosed, c.addr, err))
				return
			}
			if h := p.trailing; h != nil && h.envelope != nil {
				h.envelope(&env)
			}
			if t > 0 {
				if h := p.trailing; h != nil && h.buffer != nil {
					trailing = h.buffer(int(t))
				} else {
					trailing = make([]byte, t)
				}
				if err := readTrailing(c.nc, trailing, p.trailing); err != nil {
					c.failWith(p, fmt.Errorf("%w: read from %s: %w", ErrConnClosed, c.addr, err))
					return
				}
			}
		}
		p.done(&env, trailing, nil)
		c.release()
	}
}

// failWith fails the connection and the call already taken off the queue.
func (c *brokerConn) failWith(p *call, err error) {
	c.fail(err)
	p.done(nil, nil, err)
	c.release()
}

// readPrefix waits for the next answer's length prefix and returns the
// whole message size. While nothing is pending it waits without bound;
// while requests are pending it gives up after responseTimeout.
func (c *brokerConn) readPrefix(prefix []byte) (int, error) {
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.responseTimeout))
		got, err := io.ReadFull(c.nc, prefix)
		if err == nil {
			return schema.PeekMessageLength(prefix)
		}
		if got == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			c.pmu.Lock()
			idle := len(c.pending) == 0
			c.pmu.Unlock()
			if idle {
				continue
			}
		}
		return 0, err
	}
}

// readTrailing fills trailing from r, in pieces of at most
// trailingReadChunkBytes shown to the hooks' progress when it is set.
func readTrailing(r io.Reader, trailing []byte, h *trailingHooks) error {
	if h == nil || h.progress == nil {
		_, err := io.ReadFull(r, trailing)
		return err
	}
	for have := 0; have < len(trailing); {
		n, err := r.Read(trailing[have:min(have+trailingReadChunkBytes, len(trailing))])
		have += n
		if n > 0 {
			h.progress(trailing[:have])
		}
		if err != nil && have < len(trailing) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}
