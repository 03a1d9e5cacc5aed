package ring

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// PeekCQE returns the oldest completion without waiting, or nil when none is
// ready. Under DEFER_TASKRUN completions are posted only inside
// io_uring_enter, so when the queue looks empty and the kernel flags pending
// work, PeekCQE enters once to let it run. The CQE stays valid until
// CQAdvance or CQESeen releases it.
func (r *Ring) PeekCQE() (*CQE, error) {
	if c := r.peek(); c != nil {
		return c, nil
	}
	if r.cqNeedsEnter() {
		if _, err := r.enter(0, 0, enterGetEvents|r.enterFlags, nil, 0); err != nil {
			return nil, err
		}
		return r.peek(), nil
	}
	return nil, nil
}

// WaitCQE returns the oldest completion, waiting for one if none is ready.
func (r *Ring) WaitCQE() (*CQE, error) {
	for {
		if c := r.peek(); c != nil {
			return c, nil
		}
		if _, err := r.submit(r.flushSQ(), 1, true); err != nil {
			return nil, err
		}
	}
}

// WaitCQETimeout is WaitCQE bounded by timeout; it returns unix.ETIME when
// no completion arrived in time. Pending SQEs are submitted too.
func (r *Ring) WaitCQETimeout(timeout time.Duration) (*CQE, error) {
	if c := r.peek(); c != nil {
		return c, nil
	}
	if _, err := r.SubmitAndWaitTimeout(1, timeout); err != nil && err != unix.ETIME {
		return nil, err
	}
	if c := r.peek(); c != nil {
		return c, nil
	}
	return nil, unix.ETIME
}

// peek returns the CQE at the head, or nil. The tail load is an acquire:
// the CQE contents the kernel wrote before moving the tail are visible.
func (r *Ring) peek() *CQE {
	cq := &r.cq
	head := *cq.khead // only this side writes the head
	if head == atomic.LoadUint32(cq.ktail) {
		return nil
	}
	return &cq.cqes[head&cq.mask]
}

// CQReady is the number of completions ready to be read.
func (r *Ring) CQReady() uint32 {
	return atomic.LoadUint32(r.cq.ktail) - *r.cq.khead
}

// PeekBatchCQE fills cqes with ready completions, oldest first, without
// waiting or allocating, and returns how many it filled. Release them with
// CQAdvance(n) once handled.
func (r *Ring) PeekBatchCQE(cqes []*CQE) int {
	cq := &r.cq
	head := *cq.khead
	ready := atomic.LoadUint32(cq.ktail) - head
	if ready == 0 && r.cqNeedsEnter() {
		if _, err := r.enter(0, 0, enterGetEvents|r.enterFlags, nil, 0); err == nil {
			ready = atomic.LoadUint32(cq.ktail) - head
		}
	}
	n := min(int(ready), len(cqes))
	for i := range n {
		cqes[i] = &cq.cqes[(head+uint32(i))&cq.mask]
	}
	return n
}

// ForEachCQE calls fn for every ready completion, oldest first, then
// releases them all, and returns how many it saw. fn must not keep the *CQE.
func (r *Ring) ForEachCQE(fn func(*CQE)) int {
	cq := &r.cq
	head := *cq.khead
	tail := atomic.LoadUint32(cq.ktail)
	if head == tail && r.cqNeedsEnter() {
		if _, err := r.enter(0, 0, enterGetEvents|r.enterFlags, nil, 0); err == nil {
			tail = atomic.LoadUint32(cq.ktail)
		}
	}
	for i := head; i != tail; i++ {
		fn(&cq.cqes[i&cq.mask])
	}
	n := tail - head
	if n > 0 {
		r.CQAdvance(n)
	}
	return int(n)
}

// CQAdvance releases n completions back to the kernel. The store is a
// release: the kernel reuses the slots only after our reads of them.
func (r *Ring) CQAdvance(n uint32) {
	atomic.StoreUint32(r.cq.khead, *r.cq.khead+n)
}

// CQESeen releases one completion.
func (r *Ring) CQESeen() { r.CQAdvance(1) }

// Overflow is the number of completions the kernel dropped because the
// completion queue was full (0 with IORING_FEAT_NODROP unless memory ran
// out).
func (r *Ring) Overflow() uint32 { return atomic.LoadUint32(r.cq.koverflow) }

// Dropped is the number of invalid SQEs the kernel skipped.
func (r *Ring) Dropped() uint32 { return atomic.LoadUint32(r.sq.kdropped) }
