package ring

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// timespecs live on the heap (a struct field): the kernel reads them at
// submission, and stack memory may move before that.
type timers struct {
	short, long unix.Timespec
}

func newTimers() *timers {
	return &timers{
		short: unix.NsecToTimespec(int64(20 * time.Millisecond)),
		long:  unix.NsecToTimespec(int64(time.Hour)),
	}
}

func TestTimeoutExpiresAndCounts(t *testing.T) {
	r := newShardRing(t, 8)
	tm := newTimers()
	sqe := mustSQE(t, r)
	sqe.PrepTimeout(&tm.short, 0, 0)
	sqe.SetUserData(1)
	start := time.Now()
	c := reap(t, r, 1)[0]
	if !errors.Is(c.Err(), unix.ETIME) {
		t.Fatalf("timeout: %v, want ETIME", c.Err())
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("timeout fired early")
	}

	// A count of 2 completes the timeout (res 0) after two other
	// completions, long before the hour passes.
	sqe = mustSQE(t, r)
	sqe.PrepTimeout(&tm.long, 2, 0)
	sqe.SetUserData(1)
	for i := range 2 {
		sqe = mustSQE(t, r)
		sqe.PrepNop()
		sqe.SetUserData(uint64(10 + i))
	}
	m := byUserData(t, reap(t, r, 3))
	wantRes(t, "counted timeout", m[1], 0)
}

func TestLinkTimeoutCancelsSlowRecv(t *testing.T) {
	r := newShardRing(t, 8)
	tm := newTimers()
	a, _ := socketpair(t)
	buf := make([]byte, 16)
	sqe := mustSQE(t, r)
	sqe.PrepRecv(a, buf, 0) // nothing ever arrives
	sqe.SetFlags(SQEIOLink)
	sqe.SetUserData(1)
	sqe = mustSQE(t, r)
	sqe.PrepLinkTimeout(&tm.short, 0)
	sqe.SetUserData(2)
	m := byUserData(t, reap(t, r, 2))
	if !errors.Is(m[1].Err(), unix.ECANCELED) || !errors.Is(m[2].Err(), unix.ETIME) {
		t.Fatalf("recv %v, link timeout %v; want ECANCELED, ETIME", m[1].Err(), m[2].Err())
	}

	// When the operation wins, the link timeout is cancelled instead.
	b, peer := socketpair(t)
	if _, err := unix.Write(peer, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	sqe = mustSQE(t, r)
	sqe.PrepRecv(b, buf, 0)
	sqe.SetFlags(SQEIOLink)
	sqe.SetUserData(3)
	sqe = mustSQE(t, r)
	sqe.PrepLinkTimeout(&tm.long, 0)
	sqe.SetUserData(4)
	m = byUserData(t, reap(t, r, 2))
	if m[3].Res != 2 || !errors.Is(m[4].Err(), unix.ECANCELED) {
		t.Fatalf("recv %d, link timeout %v; want 2, ECANCELED", m[3].Res, m[4].Err())
	}
	runtime.KeepAlive(buf)
}

func TestCancelPendingRecv(t *testing.T) {
	r := newShardRing(t, 8)
	tm := newTimers()
	a, _ := socketpair(t)
	buf := make([]byte, 16)
	sqe := mustSQE(t, r)
	sqe.PrepRecv(a, buf, 0)
	sqe.SetUserData(77)
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	sqe = mustSQE(t, r)
	sqe.PrepCancel(77, 0)
	sqe.SetUserData(78)
	m := byUserData(t, reap(t, r, 2))
	if !errors.Is(m[77].Err(), unix.ECANCELED) {
		t.Fatalf("cancelled recv: %v", m[77].Err())
	}
	wantRes(t, "cancel", m[78], 0)

	// Cancelling what does not exist says so.
	sqe = mustSQE(t, r)
	sqe.PrepCancel(12345, 0)
	if c := reap(t, r, 1)[0]; !errors.Is(c.Err(), unix.ENOENT) {
		t.Fatalf("cancel of nothing: %v, want ENOENT", c.Err())
	}

	// Cancel every request on a descriptor, and remove a timeout.
	for i := range 3 {
		sqe = mustSQE(t, r)
		sqe.PrepRecv(a, buf, 0)
		sqe.SetUserData(uint64(100 + i))
	}
	sqe = mustSQE(t, r)
	sqe.PrepTimeout(&tm.long, 0, 0)
	sqe.SetUserData(200)
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	sqe = mustSQE(t, r)
	sqe.PrepCancelFD(a, AsyncCancelAll)
	sqe.SetUserData(300)
	sqe = mustSQE(t, r)
	sqe.PrepTimeoutRemove(200, 0)
	sqe.SetUserData(301)
	m = byUserData(t, reap(t, r, 6))
	for i := range 3 {
		if !errors.Is(m[uint64(100+i)].Err(), unix.ECANCELED) {
			t.Fatalf("recv %d: %v", i, m[uint64(100+i)].Err())
		}
	}
	wantRes(t, "cancel fd (count)", m[300], 3)
	if !errors.Is(m[200].Err(), unix.ECANCELED) {
		t.Fatalf("removed timeout: %v", m[200].Err())
	}
	wantRes(t, "timeout remove", m[301], 0)
	runtime.KeepAlive(buf)
}

func TestWaitCQETimeout(t *testing.T) {
	r := newShardRing(t, 8)
	start := time.Now()
	c, err := r.WaitCQETimeout(15 * time.Millisecond)
	if c != nil || !errors.Is(err, unix.ETIME) {
		t.Fatalf("empty ring: %v %v, want ETIME", c, err)
	}
	if time.Since(start) < 15*time.Millisecond {
		t.Fatal("returned before the timeout")
	}
}

// TestMsgRingAcrossThreads: a shard on one thread rings another shard's ring
// on another thread: the cross-shard doorbell.
func TestMsgRingAcrossThreads(t *testing.T) {
	const messages = 1000
	type ready struct {
		fd  int
		err error
	}
	readyc := make(chan ready)
	result := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		target, err := New(16, Options{Flags: ShardFlags, CQEntries: 2048})
		if err != nil {
			readyc <- ready{err: err}
			return
		}
		defer target.Close()
		readyc <- ready{fd: target.FD()}
		next := uint64(0)
		for next < messages {
			c, err := target.WaitCQETimeout(waitLimit)
			if err != nil {
				result <- err
				return
			}
			if c.UserData != next || c.Res != int32(next*3) {
				result <- errors.New("message out of order or altered")
				return
			}
			target.CQESeen()
			next++
		}
		result <- nil
	}()
	rd := <-readyc
	if rd.err != nil {
		t.Fatal(rd.err)
	}
	r := newShardRing(t, 64)
	for i := uint64(0); i < messages; i++ {
		sqe := r.GetSQE()
		if sqe == nil {
			if _, err := r.Submit(); err != nil {
				t.Fatal(err)
			}
			sqe = mustSQE(t, r)
		}
		sqe.PrepMsgRing(rd.fd, uint32(i*3), i, 0)
		sqe.SetUserData(1 << 40)
		sqe.SetFlags(SQECQESkipSuccess)
	}
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	// CQE_SKIP_SUCCESS: the sender saw no completions for its messages.
	if c, err := r.PeekCQE(); err != nil || c != nil {
		t.Fatalf("sender got a completion %+v %v", c, err)
	}
}
