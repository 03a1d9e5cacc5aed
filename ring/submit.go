package ring

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GetSQE hands out the next free submission slot, zeroed, or nil when the
// submission queue is full (submit, then try again). The SQE is published to
// the kernel by the next Submit.
func (r *Ring) GetSQE() *SQE {
	sq := &r.sq
	// Acquire: a slot is reused only after the kernel has read it (with
	// SQPOLL the kernel thread consumes SQEs concurrently).
	head := atomic.LoadUint32(sq.khead)
	if sq.sqeTail-head >= sq.entries {
		return nil
	}
	sqe := &sq.sqes[sq.sqeTail&sq.mask]
	sq.sqeTail++
	*sqe = SQE{}
	return sqe
}

// SQReady is the number of SQEs handed out and not yet submitted.
func (r *Ring) SQReady() uint32 { return r.sq.sqeTail - r.sq.sqeHead }

// SQSpace is the number of SQEs GetSQE can still hand out.
func (r *Ring) SQSpace() uint32 {
	return r.sq.entries - (r.sq.sqeTail - atomic.LoadUint32(r.sq.khead))
}

// flushSQ publishes the SQEs handed out since the last flush by moving the
// kernel-visible tail, and returns how many SQEs the kernel has yet to
// consume. The store is a release: the SQE contents written before it are
// visible to the kernel once it sees the new tail.
func (r *Ring) flushSQ() uint32 {
	sq := &r.sq
	tail := sq.sqeTail
	if sq.sqeHead != tail {
		sq.sqeHead = tail
		atomic.StoreUint32(sq.ktail, tail)
	}
	return tail - atomic.LoadUint32(sq.khead)
}

// Submit publishes pending SQEs and tells the kernel about them, without
// waiting for completions. It returns the number of SQEs the kernel took.
func (r *Ring) Submit() (int, error) {
	return r.submit(r.flushSQ(), 0, false)
}

// SubmitAndWait publishes pending SQEs and waits until at least waitNr
// completions are available.
func (r *Ring) SubmitAndWait(waitNr uint32) (int, error) {
	return r.submit(r.flushSQ(), waitNr, waitNr > 0)
}

// SubmitAndWaitTimeout publishes pending SQEs and waits until at least
// waitNr completions are available or timeout passes, in which case it
// returns unix.ETIME. It needs IORING_FEAT_EXT_ARG (Linux 5.11+), so no
// timeout SQE is consumed and no CQE is posted for the timer.
func (r *Ring) SubmitAndWaitTimeout(waitNr uint32, timeout time.Duration) (int, error) {
	if r.features&FeatExtArg == 0 {
		return 0, unix.EOPNOTSUPP
	}
	submit := r.flushSQ()
	r.ts = unix.NsecToTimespec(int64(timeout))
	r.arg = getEventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.ts)))}
	flags := uint32(enterGetEvents|enterExtArg) | r.enterFlags
	if r.flags&SetupSQPoll != 0 {
		submit = 0
		if atomic.LoadUint32(r.sq.kflags)&sqNeedWakeup != 0 {
			flags |= enterSQWakeup
		}
	}
	n, err := r.enter(submit, waitNr, flags, unsafe.Pointer(&r.arg), unsafe.Sizeof(r.arg))
	return n, err
}

// submit calls io_uring_enter when it has to: when there is something to
// submit, a wait is asked for, completions are held back (CQ overflow, or
// deferred task work pending under DEFER_TASKRUN/TASKRUN_FLAG), or the
// SQPOLL thread sleeps.
func (r *Ring) submit(submitted, waitNr uint32, getEvents bool) (int, error) {
	flags := r.enterFlags
	if getEvents || r.cqNeedsEnter() {
		flags |= enterGetEvents
	}
	if r.flags&SetupSQPoll != 0 {
		// The kernel thread submits; enter only to wake it or to wait.
		if atomic.LoadUint32(r.sq.kflags)&sqNeedWakeup != 0 {
			flags |= enterSQWakeup
		} else if flags&enterGetEvents == 0 {
			return int(submitted), nil
		}
		n, err := r.enter(0, waitNr, flags, nil, 0)
		if err != nil {
			return n, err
		}
		return int(submitted), nil
	}
	if submitted == 0 && flags&enterGetEvents == 0 {
		return 0, nil
	}
	return r.enter(submitted, waitNr, flags, nil, 0)
}

// cqNeedsEnter reports whether completions are waiting on the kernel side:
// overflowed CQEs, or task work that only runs inside io_uring_enter.
func (r *Ring) cqNeedsEnter() bool {
	if atomic.LoadUint32(r.sq.kflags)&(sqCQOverflow|sqTaskrun) != 0 {
		return true
	}
	return false
}

// enter is io_uring_enter(2). An interrupted wait (EINTR) is retried: the
// Go runtime's preemption signals land on locked threads too.
func (r *Ring) enter(toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSize uintptr) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.enterFD),
			uintptr(toSubmit), uintptr(minComplete), uintptr(flags), uintptr(arg), argSize)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return int(n), errno
		}
		return int(n), nil
	}
}
