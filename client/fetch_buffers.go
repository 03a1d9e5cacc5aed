package client

import "sync"

// fetchBuffersKeptMax bounds the idle answer buffers a consumer keeps for
// reuse; the consumer has at most fetchesPerBrokerMax answers per broker
// being read and one Poll's worth lent to the caller.
const fetchBuffersKeptMax = 4

// fetchBufferSlackDiv sizes a new buffer 1/fetchBufferSlackDiv above the
// answer that needed it, so the next answer, which is rarely exactly as
// large, fits too.
const fetchBufferSlackDiv = 8

// fetchBuffers is a consumer's pool of fetch answer buffers (with
// ConsumerConfig.ReuseFetchBuffers). Connection readers take a buffer per
// answer; Poll lends the buffers of the answers it decoded to its caller
// and takes them back at the next Poll.
type fetchBuffers struct {
	mu     sync.Mutex
	free   [][]byte
	closed bool

	// lent are the buffers behind the records of the last Poll; only the
	// Poll goroutine touches it.
	lent [][]byte
}

// get returns a buffer of n bytes, reused when one is big enough.
func (p *fetchBuffers) get(n int) []byte {
	p.mu.Lock()
	for i, b := range p.free {
		if cap(b) >= n {
			last := len(p.free) - 1
			p.free[i] = p.free[last]
			p.free[last] = nil
			p.free = p.free[:last]
			p.mu.Unlock()
			return b[:n]
		}
	}
	p.mu.Unlock()
	return make([]byte, n, n+n/fetchBufferSlackDiv)
}

// lend records that the caller's records point into b until the next
// Poll.
func (p *fetchBuffers) lend(b []byte) {
	if cap(b) > 0 {
		p.lent = append(p.lent, b)
	}
}

// reclaim takes back every lent buffer: the caller's records from the
// previous Poll are no longer valid.
func (p *fetchBuffers) reclaim() {
	p.mu.Lock()
	for _, b := range p.lent {
		p.putLocked(b)
	}
	p.mu.Unlock()
	clear(p.lent)
	p.lent = p.lent[:0]
}

// putLocked keeps b for reuse, dropping the smallest buffer when the pool
// is full.
func (p *fetchBuffers) putLocked(b []byte) {
	if p.closed {
		return
	}
	if len(p.free) < fetchBuffersKeptMax {
		p.free = append(p.free, b)
		return
	}
	smallest := 0
	for i := range p.free {
		if cap(p.free[i]) < cap(p.free[smallest]) {
			smallest = i
		}
	}
	if cap(b) > cap(p.free[smallest]) {
		p.free[smallest] = b
	}
}

// close drops every buffer; later answers allocate their own.
func (p *fetchBuffers) close() {
	p.mu.Lock()
	p.closed = true
	p.free = nil
	p.mu.Unlock()
}
