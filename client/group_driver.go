package client

import (
	"context"
	"sync"
	"time"

	"github.com/strata-db/strata/schema"
)

// groupDriver runs a member's state machine (memberCore): its heartbeat
// goroutine performs the network actions (coordinator lookups and
// heartbeats, one at a time) and queues the partition actions for the
// GroupConsumer's Poll, which confirms them back. Heartbeats go on while
// the application works between Polls; partitions change only inside
// Poll (or Close), on the application's goroutine.
type groupDriver struct {
	cl        *Client
	group     string
	hbTimeout time.Duration
	start     time.Time // the core's clock counts milliseconds from here

	mu        sync.Mutex
	core      *memberCore
	coordAddr string         // "" while unknown
	app       []memberAction // partition, commit and end actions for Poll, in order

	kick     chan struct{} // an input came: look at the core again
	appReady chan struct{} // actions wait for Poll (the consumer's wake)
	stop     chan struct{}
	stopped  chan struct{}
}

func newGroupDriver(cl *Client, core *memberCore, hbTimeout time.Duration) *groupDriver {
	return &groupDriver{cl: cl, group: core.cfg.groupID, hbTimeout: hbTimeout, start: time.Now(), core: core,
		kick: make(chan struct{}, 1), appReady: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
}

func (d *groupDriver) nowMs() int64 { return time.Since(d.start).Milliseconds() }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run is the heartbeat goroutine.
func (d *groupDriver) run() {
	defer close(d.stopped)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-d.stopped:
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		now := d.nowMs()
		acts := d.core.actions(now)
		wait := time.Duration(d.core.nextDeadlineMs()-now) * time.Millisecond
		d.mu.Unlock()
		busy := false
		for _, a := range acts {
			switch a.kind {
			case actFindCoordinator:
				d.find(ctx)
				busy = true
			case actHeartbeat:
				d.heartbeat(ctx, a.hb)
				busy = true
			default:
				d.mu.Lock()
				d.app = append(d.app, a)
				d.mu.Unlock()
				signal(d.appReady)
			}
		}
		if busy {
			continue // the answers may have made more to do
		}
		timer.Reset(max(wait, 0)) // (since Go 1.23 a Reset drops a fire not yet received)
		select {
		case <-timer.C:
		case <-d.kick:
		case <-d.stop:
			return
		}
	}
}

func (d *groupDriver) find(ctx context.Context) {
	addr, err := d.cl.coordinatorOnce(ctx, d.group)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		d.coordAddr = addr
		d.core.coordinatorFound(d.nowMs())
		return
	}
	d.coordAddr = ""
	d.core.coordinatorFailed(err, retriable(err) || ctx.Err() != nil, d.nowMs())
}

func (d *groupDriver) heartbeat(ctx context.Context, hb memberHeartbeat) {
	d.mu.Lock()
	addr := d.coordAddr
	d.mu.Unlock()
	hctx, cancel := context.WithTimeout(ctx, d.hbTimeout)
	a, err := d.cl.heartbeatOnce(hctx, addr, d.group, hb)
	cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if code := ErrorCode(err); err != nil && code != 0 {
		// The broker refused the request as a whole (an API it does not
		// serve, say): the member reads it as the heartbeat's answer.
		a, err = memberAnswer{code: schema.ErrorName(code), cause: err}, nil
	}
	if err != nil {
		d.coordAddr = ""
		d.core.heartbeatFailed(d.nowMs())
		return
	}
	if a.code != "" {
		a.retriable = a.cause != nil && schema.ErrorRetriable(ErrorCode(a.cause)) && !coordinatorMoved(a.code)
	}
	if coordinatorMoved(a.code) {
		d.coordAddr = ""
	}
	d.core.heartbeatAnswered(a, d.nowMs())
}

// takeApp returns the next action queued for Poll.
func (d *groupDriver) takeApp() (memberAction, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.app) == 0 {
		return memberAction{}, false
	}
	a := d.app[0]
	d.app[0] = memberAction{}
	d.app = d.app[1:]
	return a, true
}

// input runs f on the core and wakes the heartbeat goroutine.
func (d *groupDriver) input(f func(m *memberCore, nowMs int64)) {
	d.mu.Lock()
	f(d.core, d.nowMs())
	d.mu.Unlock()
	signal(d.kick)
}

func (d *groupDriver) revoked(parts []TopicPartition) {
	d.input(func(m *memberCore, now int64) { m.revoked(parts, now) })
}

func (d *groupDriver) assigned(parts []TopicPartition) {
	d.input(func(m *memberCore, _ int64) { m.assigned(parts) })
}

func (d *groupDriver) subscribe(topics []string, regex string) {
	d.input(func(m *memberCore, now int64) { m.subscribe(topics, regex, now) })
}

func (d *groupDriver) leave() {
	d.input(func(m *memberCore, now int64) { m.leave(now) })
}

// coordinatorLost: a commit or offset fetch sent to addr found the
// coordinator gone or moved.
func (d *groupDriver) coordinatorLost(addr string) {
	d.input(func(m *memberCore, now int64) {
		if d.coordAddr == addr && addr != "" {
			d.coordAddr = ""
			m.coordinatorLost(now)
		}
	})
}

// member is where commits and offset fetches go and who makes them: the
// coordinator's address and the member's id and epoch. ok is false while
// the coordinator is unknown or the member holds no epoch.
func (d *groupDriver) member() (addr string, m groupMember, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.core
	ok = d.coordAddr != "" && c.epoch > 0 && (c.state == stateStable || c.state == stateLeaving)
	return d.coordAddr, groupMember{id: c.memberID, epoch: c.epoch}, ok
}

// inGroup reports whether the member still has an epoch the coordinator
// may accept: a commit waiting for a coordinator is worth waiting then.
func (d *groupDriver) inGroup() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.core.epoch > 0 && (d.core.state == stateStable || d.core.state == stateLeaving)
}

func (d *groupDriver) close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	<-d.stopped
}

// intervalMs is the heartbeat interval the coordinator named.
func (d *groupDriver) intervalMs() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.core.intervalMs
}
