package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/strata-db/strata/schema/fb"
)

// errNoCoordinator: the member's coordinator is being looked up.
var errNoCoordinator = errors.New("strata client: the group's coordinator is not known yet")

// Commit commits the positions of every partition the member holds (the
// offsets after the records Poll returned) and waits for the coordinator's
// answer. Earlier CommitAsync calls are answered first. A commit is
// accepted only at the member's current epoch and for partitions it holds
// (STALE_MEMBER_EPOCH otherwise); one refused because the epoch moved on
// is sent again at the new one.
func (g *GroupConsumer) Commit(ctx context.Context) error {
	return g.com.commitSync(ctx, g.positions(nil, false))
}

// CommitOffsets commits the given offsets (the next offset to read, per
// partition) and waits for the answer.
func (g *GroupConsumer) CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error {
	return g.com.commitSync(ctx, offsets)
}

// CommitAsync commits the positions of every held partition in the
// background; done, if not nil, gets the offsets and the outcome on the
// committer's goroutine. Commits are sent and answered in call order.
func (g *GroupConsumer) CommitAsync(done func(offsets map[TopicPartition]int64, err error)) {
	g.com.commitAsync(g.positions(nil, false), done)
}

// committer sends a member's commits one at a time, in call order, on a
// goroutine of its own, so that a CommitAsync followed by a Commit lands
// in that order and a commit from OnRevoked does not wait on Poll.
type committer struct {
	g     *GroupConsumer // its driver and coordinator client; its cfg is Poll's alone
	group string

	mu        sync.Mutex
	queue     []*commitJob
	closing   bool
	committed map[TopicPartition]int64 // the last offset committed or fetched
	// autoQueued is set while an auto-commit waits or runs: the next one
	// is skipped rather than queued behind it, so a slow coordinator
	// cannot make auto-commits pile up.
	autoQueued bool
	wake       chan struct{}
	done       chan struct{}
}

type commitJob struct {
	ctx     context.Context
	cancel  context.CancelFunc
	offsets map[TopicPartition]int64
	cb      func(map[TopicPartition]int64, error)
}

func newCommitter(g *GroupConsumer) *committer {
	c := &committer{g: g, group: g.cfg.GroupID, committed: map[TopicPartition]int64{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *committer) run() {
	defer close(c.done)
	for {
		c.mu.Lock()
		for len(c.queue) == 0 {
			if c.closing {
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			<-c.wake
			c.mu.Lock()
		}
		j := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()
		err := c.commit(j.ctx, j.offsets)
		if j.cancel != nil {
			j.cancel()
		}
		if j.cb != nil {
			j.cb(j.offsets, err)
		}
	}
}

// enqueue adds a job; false when the committer is closed.
func (c *committer) enqueue(j *commitJob) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.queue = append(c.queue, j)
	signal(c.wake)
	return true
}

func (c *committer) commitSync(ctx context.Context, offsets map[TopicPartition]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	result := make(chan error, 1)
	if !c.enqueue(&commitJob{ctx: ctx, offsets: offsets, cb: func(_ map[TopicPartition]int64, err error) { result <- err }}) {
		return ErrClosed
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *committer) commitAsync(offsets map[TopicPartition]int64, cb func(map[TopicPartition]int64, error)) {
	if len(offsets) == 0 {
		if cb != nil {
			cb(offsets, nil)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(c.g.cl.cfg.RetryTimeoutMs)*time.Millisecond)
	if !c.enqueue(&commitJob{ctx: ctx, cancel: cancel, offsets: offsets, cb: cb}) {
		cancel()
		if cb != nil {
			cb(offsets, ErrClosed)
		}
	}
}

// autoCommit queues an auto-commit of offsets unless one is still queued.
func (c *committer) autoCommit(offsets map[TopicPartition]int64) {
	if len(offsets) == 0 {
		return
	}
	c.mu.Lock()
	if c.autoQueued {
		c.mu.Unlock()
		return
	}
	c.autoQueued = true
	c.mu.Unlock()
	c.commitAsync(offsets, func(map[TopicPartition]int64, error) {
		// A failure leaves the last commit in place; the next interval
		// commits the positions again.
		c.mu.Lock()
		c.autoQueued = false
		c.mu.Unlock()
	})
}

// forget drops what is known of tp's committed offset: the member let go
// of it, and its next owner may commit it.
func (c *committer) forget(tp TopicPartition) {
	c.mu.Lock()
	delete(c.committed, tp)
	c.mu.Unlock()
}

// close lets the queued commits finish (within ctx) and stops the
// committer; commits still queued past ctx end with ErrClosed.
func (c *committer) close(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	signal(c.wake)
	c.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	left := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, j := range left {
		if j.cancel != nil {
			j.cancel()
		}
		if j.cb != nil {
			j.cb(j.offsets, ErrClosed)
		}
	}
	return ctx.Err()
}

func (c *committer) isCommitted(tp TopicPartition, off int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, ok := c.committed[tp]
	return ok && got == off
}

func (c *committer) setCommitted(tp TopicPartition, off int64) {
	c.mu.Lock()
	c.committed[tp] = off
	c.mu.Unlock()
}

// commit sends offsets to the coordinator until each partition is
// answered. A lost connection or a moved coordinator is retried (after a
// new lookup) inside RetryTimeoutMs; STALE_MEMBER_EPOCH is retried for one
// heartbeat interval, the time a heartbeat takes to bring the member its
// current epoch; any other refusal is final for its partition.
func (c *committer) commit(ctx context.Context, offsets map[TopicPartition]int64) error {
	g := c.g
	group := c.group
	left := make(map[TopicPartition]int64, len(offsets))
	for tp, off := range offsets {
		left[tp] = off
	}
	start := time.Now()
	limit := time.Duration(g.cl.cfg.RetryTimeoutMs) * time.Millisecond
	var staleSince time.Time
	var final []error
	for attempt := 1; ; attempt++ {
		addr, m, ok := g.d.member()
		var err error
		switch {
		case !ok && !g.d.inGroup():
			return errors.Join(append(final, fmt.Errorf("group %q: commit: the member is not in the group (it is joining again); its partitions are someone else's to commit", group))...)
		case !ok:
			err = errNoCoordinator
		default:
			var per map[TopicPartition]error
			per, err = g.coord.commitOnce(ctx, addr, group, m, left)
			for tp, perr := range per {
				switch {
				case perr == nil:
					c.setCommitted(tp, left[tp])
					delete(left, tp)
				case ErrorCode(perr) == fb.ErrorCodeStaleMemberEpoch:
					err = perr // retried below, while it may be the epoch moving
				default:
					final = append(final, fmt.Errorf("commit %s/%d at offset %d: %w", tp.Topic, tp.Partition, left[tp], perr))
					delete(left, tp)
				}
			}
			if err == nil && len(left) == 0 {
				return errors.Join(final...)
			}
		}
		retry := errors.Is(err, errNoCoordinator) || coordinatorErr(err) || retriable(err)
		if coordinatorErr(err) {
			g.d.coordinatorLost(addr)
		}
		if ErrorCode(err) == fb.ErrorCodeStaleMemberEpoch {
			if staleSince.IsZero() {
				staleSince = time.Now()
			}
			retry = time.Since(staleSince) < time.Duration(g.d.intervalMs())*time.Millisecond
		}
		wait := g.cl.cfg.backoff(attempt)
		if !retry || ctx.Err() != nil || time.Since(start)+wait > limit {
			return errors.Join(append(final, fmt.Errorf("group %q: commit %s: %w", group, offsetsText(left), err))...)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// offsetsText is offsets as "t/0@5, t/1@7", in partition order.
func offsetsText(offsets map[TopicPartition]int64) string {
	parts := make([]TopicPartition, 0, len(offsets))
	for tp := range offsets {
		parts = append(parts, tp)
	}
	slices.SortFunc(parts, compareTP)
	s := ""
	for i, tp := range parts {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s/%d@%d", tp.Topic, tp.Partition, offsets[tp])
	}
	return s
}

// positionPending fetches the committed offsets of held partitions that
// have no position yet and starts fetching them there, or by the reset
// policy where nothing is committed. Failures the heartbeat mends (the
// coordinator moving, the epoch moving on) are tried again after a
// backoff, while the other partitions are read.
func (g *GroupConsumer) positionPending(ctx context.Context) error {
	now := time.Now()
	var want []TopicPartition
	for tp, hp := range g.held {
		if !hp.fetching && !hp.noOffset && !now.Before(hp.retryAt) {
			want = append(want, tp)
		}
	}
	if len(want) > 0 {
		slices.SortFunc(want, compareTP)
		addr, m, ok := g.d.member()
		var offs map[TopicPartition]committedOffset
		err := errNoCoordinator
		if ok {
			offs, err = g.coord.fetchOffsetsOnce(ctx, addr, g.cfg.GroupID, m, want)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if coordinatorErr(err) {
				g.d.coordinatorLost(addr)
			}
			if !errors.Is(err, errNoCoordinator) && !coordinatorErr(err) && !retriable(err) && !memberErr(err) {
				return fmt.Errorf("group %q: fetch the committed offsets: %w", g.cfg.GroupID, err)
			}
		}
		for _, tp := range want {
			hp := g.held[tp]
			co, answered := offs[tp]
			switch {
			case err != nil || !answered || co.err != nil:
				hp.attempts++
				hp.retryAt = now.Add(g.cl.cfg.backoff(hp.attempts))
			case co.offset >= 0:
				g.cons.Seek(tp.Topic, tp.Partition, co.offset)
				g.com.setCommitted(tp, co.offset)
				g.startFetching(tp, hp)
			case g.cfg.Reset == ResetNone:
				hp.noOffset = true
			default:
				g.startFetching(tp, hp) // the reset policy places it
			}
		}
		g.scheduleRetry()
	}
	for _, tp := range g.Assignment() {
		if g.held[tp].noOffset {
			return fmt.Errorf("%w: group %q has none for %s/%d; Seek it, or set one with `strata group reset-offsets %s --topic %s --to-earliest`",
				ErrNoCommittedOffset, g.cfg.GroupID, tp.Topic, tp.Partition, g.cfg.GroupID, tp.Topic)
		}
	}
	return nil
}

// scheduleRetry wakes Poll when the first partition waiting for its
// committed offset may ask again.
func (g *GroupConsumer) scheduleRetry() {
	var at time.Time
	for _, hp := range g.held {
		if !hp.fetching && !hp.noOffset && (at.IsZero() || hp.retryAt.Before(at)) {
			at = hp.retryAt
		}
	}
	if g.retryWake != nil {
		g.retryWake.Stop()
	}
	if !at.IsZero() {
		g.retryWake = time.AfterFunc(time.Until(at), func() { signal(g.d.appReady) })
	}
}

// memberErr reports whether err is a refusal of the member's id or epoch,
// which its heartbeats mend (a new epoch, or a rejoin).
func memberErr(err error) bool {
	switch ErrorCode(err) {
	case fb.ErrorCodeStaleMemberEpoch, fb.ErrorCodeUnknownMemberId, fb.ErrorCodeFencedMemberEpoch:
		return true
	}
	return false
}
