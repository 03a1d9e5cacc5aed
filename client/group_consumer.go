package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/strata-db/strata/schema"
)

// Defaults and bounds of GroupConfig.
const (
	// autoCommitIntervalMsDefault is Kafka's auto.commit.interval.ms.
	autoCommitIntervalMsDefault = 5_000
	// groupIDLenMax and instanceIDLenMax are the coordinator's bounds.
	groupIDLenMax    = 255
	instanceIDLenMax = 255
	// memberIDBytes of randomness make a member id (22 characters of
	// base64url, within the coordinator's 64).
	memberIDBytes = 16
	// heartbeatTimeoutDiv bounds one heartbeat's round trip to a third of
	// the session, so a lost one leaves time for two more before the
	// session ends.
	heartbeatTimeoutDiv = 3
)

// Server assignors the coordinator has (GroupConfig.ServerAssignor).
const (
	AssignorUniform = schema.AssignorUniform
	AssignorRange   = schema.AssignorRange
)

// GroupConfig configures a GroupConsumer. The zero value of each optional
// field takes its default.
type GroupConfig struct {
	// GroupID names the group (group.id); required, at most 255 bytes.
	GroupID string
	// InstanceID makes the member static (group.instance.id): a member that
	// closes and comes back within its session under the same instance id
	// keeps its partitions, and the group does not rebalance.
	InstanceID string
	// Topics or TopicRegex (one of the two) is the subscription. The regex
	// is RE2 and matches whole topic names; the coordinator resolves it.
	Topics     []string
	TopicRegex string
	// ServerAssignor asks the coordinator for an assignor: AssignorUniform
	// or AssignorRange; empty: the group's default (uniform).
	ServerAssignor string
	// Reset is auto.offset.reset: where a partition with no committed
	// offset starts. With ResetNone, Poll fails with ErrNoCommittedOffset
	// for it until the application Seeks it.
	Reset ResetPolicy
	// DisableAutoCommit turns enable.auto.commit off. With auto-commit on
	// (the default) the positions are committed every AutoCommitIntervalMs
	// (5 000) from Poll, before a partition is revoked, and on Close.
	DisableAutoCommit    bool
	AutoCommitIntervalMs int
	// SessionTimeoutMs is the coordinator's session
	// (group.consumer.session.timeout.ms, 45 000 by default): when no
	// heartbeat sent within this long has been answered, the member stops
	// consuming, gives its partitions up as lost and joins again, since
	// the coordinator has removed it by then. Keep it at the coordinator's
	// setting; the heartbeat interval comes from the coordinator.
	SessionTimeoutMs int
	// RebalanceTimeoutMs is Kafka's max.poll.interval.ms as the member
	// sends it in its heartbeats: how long it may hold partitions it was
	// asked to revoke (its application not calling Poll, or OnRevoked not
	// returning) before the coordinator removes it. 0: the coordinator's
	// setting (300 000).
	RebalanceTimeoutMs int
	// OnAssigned runs inside Poll when partitions are given to the member,
	// before they are fetched (a Seek there places them). OnRevoked runs
	// inside Poll (or Close) when partitions are taken away, before the
	// coordinator is told they are let go of: the last moment to commit
	// for them. OnLost runs instead of OnRevoked for partitions the member
	// lost (fenced, or its session over), whose commits the coordinator
	// refuses; nil: OnRevoked runs. The partitions are sorted. Their
	// context carries Poll's values but not its deadline (a Poll that
	// waits 100 ms must not cut short the commits before a revocation):
	// it ends after Config.RetryTimeoutMs; inside Close, Close's context.
	// A callback that does not return holds up the revocation, and the
	// coordinator removes a member that holds partitions past its
	// rebalance timeout (RebalanceTimeoutMs).
	OnAssigned func(ctx context.Context, parts []TopicPartition)
	OnRevoked  func(ctx context.Context, parts []TopicPartition)
	OnLost     func(ctx context.Context, parts []TopicPartition)
	// Fetch tuning, as in ConsumerConfig.
	MaxWaitMs         int
	MinBytes          int
	MaxBytes          int
	PartitionMaxBytes int
	ReuseFetchBuffers bool
}

func (c GroupConfig) validate() error {
	switch {
	case c.GroupID == "":
		return errors.New("strata client: GroupConfig.GroupID is empty")
	case len(c.GroupID) > groupIDLenMax:
		return fmt.Errorf("strata client: GroupConfig.GroupID is %d bytes, longer than %d", len(c.GroupID), groupIDLenMax)
	case len(c.InstanceID) > instanceIDLenMax:
		return fmt.Errorf("strata client: GroupConfig.InstanceID is %d bytes, longer than %d", len(c.InstanceID), instanceIDLenMax)
	case len(c.Topics) > 0 && c.TopicRegex != "":
		return errors.New("strata client: GroupConfig sets both Topics and TopicRegex; subscribe with one")
	case len(c.Topics) == 0 && c.TopicRegex == "":
		return errors.New("strata client: GroupConfig subscribes to nothing; set Topics or TopicRegex")
	case c.ServerAssignor != "" && c.ServerAssignor != AssignorUniform && c.ServerAssignor != AssignorRange:
		return fmt.Errorf("strata client: GroupConfig.ServerAssignor %q: the coordinator has %q and %q", c.ServerAssignor, AssignorUniform, AssignorRange)
	case c.Reset < ResetLatest || c.Reset > ResetNone:
		return fmt.Errorf("strata client: GroupConfig.Reset %d is not a reset policy", c.Reset)
	case c.AutoCommitIntervalMs < 0 || c.SessionTimeoutMs < 0 || c.RebalanceTimeoutMs < 0:
		return errors.New("strata client: GroupConfig intervals must not be negative")
	case c.RebalanceTimeoutMs > math.MaxInt32:
		return fmt.Errorf("strata client: GroupConfig.RebalanceTimeoutMs %d is above the wire's %d", c.RebalanceTimeoutMs, math.MaxInt32)
	}
	for _, t := range c.Topics {
		if t == "" {
			return errors.New("strata client: GroupConfig.Topics holds an empty name")
		}
	}
	if c.TopicRegex != "" {
		if _, err := regexp.Compile(c.TopicRegex); err != nil {
			return fmt.Errorf("strata client: GroupConfig.TopicRegex: %w", err)
		}
	}
	return nil
}

// ErrNoCommittedOffset is Poll's error under ResetNone for an assigned
// partition the group has no committed offset for.
var ErrNoCommittedOffset = errors.New("strata client: no committed offset and auto.offset.reset is none")

// GroupConsumer is a member of a consumer group (KIP-848): the
// coordinator assigns it partitions of its subscription, and it reads
// them with a Consumer's fetch machinery from their committed offsets.
// A background goroutine heartbeats; partitions are taken up and let go of
// only inside Poll and Close, with OnAssigned and OnRevoked, so the
// application sees every change between two Polls. It is not safe for
// concurrent use, except that Commit and CommitAsync may be called from
// the callbacks.
type GroupConsumer struct {
	cl *Client
	// coord is cl's configuration with connections of its own, for the
	// coordinator's requests: a heartbeat must not wait in line behind a
	// fetch's long poll on a shared connection (Kafka's clients also
	// keep a separate coordinator connection).
	coord *Client
	cfg   GroupConfig
	cons  *Consumer
	fetch *ownedAssignor
	d     *groupDriver
	com   *committer

	held map[TopicPartition]*heldPart
	err  error // the member failed: every Poll returns it
	left bool
	// retryWake wakes a Poll waiting while committed offsets are to be
	// fetched again.
	retryWake *time.Timer
	closed    bool
}

// heldPart is a partition the member holds: fetching once it has a
// position.
type heldPart struct {
	fetching bool
	noOffset bool // ResetNone and nothing committed: waits for a Seek
	retryAt  time.Time
	attempts int
}

// NewGroupConsumer joins the group cfg names through cl (the join happens
// in the background; Poll returns records once partitions are assigned).
// cl stays open when the consumer is closed.
func NewGroupConsumer(cl *Client, cfg GroupConfig) (*GroupConsumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.AutoCommitIntervalMs == 0 {
		cfg.AutoCommitIntervalMs = autoCommitIntervalMsDefault
	}
	if cfg.SessionTimeoutMs == 0 {
		cfg.SessionTimeoutMs = sessionTimeoutMsDefault
	}
	id := make([]byte, memberIDBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	mc := memberConfig{groupID: cfg.GroupID, memberID: base64.RawURLEncoding.EncodeToString(id), instanceID: cfg.InstanceID,
		topics: slices.Clone(cfg.Topics), regex: cfg.TopicRegex, assignor: cfg.ServerAssignor,
		sessionTimeoutMs: int64(cfg.SessionTimeoutMs), rebalanceTimeoutMs: -1,
		backoffMs: func(attempt int) int64 { return cl.cfg.backoff(attempt).Milliseconds() }}
	if !cfg.DisableAutoCommit {
		mc.autoCommitIntervalMs = int64(cfg.AutoCommitIntervalMs)
	}
	if cfg.RebalanceTimeoutMs > 0 {
		mc.rebalanceTimeoutMs = int32(cfg.RebalanceTimeoutMs)
	}
	g := &GroupConsumer{cl: cl, coord: cl.sibling(), cfg: cfg, fetch: &ownedAssignor{}, held: map[TopicPartition]*heldPart{}}
	g.cons = NewConsumer(cl, ConsumerConfig{Reset: cfg.Reset, MaxWaitMs: cfg.MaxWaitMs, MinBytes: cfg.MinBytes,
		MaxBytes: cfg.MaxBytes, PartitionMaxBytes: cfg.PartitionMaxBytes, Assignor: g.fetch, ReuseFetchBuffers: cfg.ReuseFetchBuffers})
	hbTimeout := min(time.Duration(cl.cfg.ResponseTimeoutMs), time.Duration(cfg.SessionTimeoutMs/heartbeatTimeoutDiv)) * time.Millisecond
	g.d = newGroupDriver(g.coord, newMemberCore(mc), hbTimeout)
	g.cons.wake = g.d.appReady
	g.com = newCommitter(g)
	go g.d.run()
	return g, nil
}

// MemberID is the member's id in the group.
func (g *GroupConsumer) MemberID() string {
	g.d.mu.Lock()
	defer g.d.mu.Unlock()
	return g.d.core.memberID
}

// Assignment lists the partitions the member holds now, sorted: those of
// the last OnAssigned not given up in an OnRevoked or OnLost since.
func (g *GroupConsumer) Assignment() []TopicPartition {
	out := make([]TopicPartition, 0, len(g.held))
	for tp := range g.held {
		out = append(out, tp)
	}
	slices.SortFunc(out, compareTP)
	return out
}

// Position is the next offset Poll returns from a held partition; ok is
// false when it has none yet.
func (g *GroupConsumer) Position(topic string, partition int32) (int64, bool) {
	tp := TopicPartition{Topic: topic, Partition: partition}
	if g.held[tp] == nil {
		return -1, false
	}
	return g.cons.Position(topic, partition)
}

// Seek sets the next offset to read from a held partition (in OnAssigned:
// where it starts instead of its committed offset).
func (g *GroupConsumer) Seek(topic string, partition int32, offset int64) error {
	tp := TopicPartition{Topic: topic, Partition: partition}
	hp := g.held[tp]
	if hp == nil {
		return fmt.Errorf("strata client: group %q: seek %s/%d: the member does not hold the partition", g.cfg.GroupID, topic, partition)
	}
	g.cons.Seek(topic, partition, offset)
	hp.noOffset = false
	g.startFetching(tp, hp)
	return nil
}

// Subscribe replaces the subscription with topics, or with the regex
// when topics is empty and regex is not (the two rules of GroupConfig's
// Topics and TopicRegex). The next heartbeat, sent at once, carries it;
// the partitions it leaves out are revoked and those it adds assigned in
// later Polls, as the coordinator moves the assignment.
func (g *GroupConsumer) Subscribe(topics []string, regex string) error {
	cfg := g.cfg
	cfg.Topics, cfg.TopicRegex = slices.Clone(topics), regex
	if err := cfg.validate(); err != nil {
		return err
	}
	g.cfg.Topics, g.cfg.TopicRegex = cfg.Topics, cfg.TopicRegex
	g.d.subscribe(slices.Clone(topics), regex)
	return nil
}

// Poll returns the next records of the member's partitions, waiting until
// there are some or ctx ends. Partition changes happen here first, with
// their callbacks; so does auto-commit. The returned slice is reused by
// the next Poll.
func (g *GroupConsumer) Poll(ctx context.Context) ([]Record, error) {
	for {
		if g.closed {
			return nil, ErrClosed
		}
		if err := g.handle(ctx); err != nil {
			return nil, err
		}
		if g.err != nil {
			return nil, g.err
		}
		if g.left {
			return nil, ErrClosed
		}
		if err := g.positionPending(ctx); err != nil {
			return nil, err
		}
		recs, err := g.cons.Poll(ctx)
		switch {
		case errors.Is(err, errPollWoken):
			continue
		case errors.Is(err, ErrNoPosition):
			return nil, fmt.Errorf("group %q: %w", g.cfg.GroupID, err)
		}
		return recs, err
	}
}

// handle acts on the partition, commit and end actions the member queued.
func (g *GroupConsumer) handle(ctx context.Context) error {
	for {
		a, ok := g.d.takeApp()
		if !ok {
			return nil
		}
		switch a.kind {
		case actRevoke:
			cctx, cancel := g.callbackContext(ctx)
			g.revoke(cctx, a.parts, a.lost)
			cancel()
		case actAssign:
			for _, tp := range a.parts {
				g.held[tp] = &heldPart{}
			}
			// The partitions are reported owned from the moment they were
			// handed out; confirming here only lets the member revoke
			// them if its target moved on meanwhile.
			g.d.assigned(a.parts)
			if g.cfg.OnAssigned != nil {
				cctx, cancel := g.callbackContext(ctx)
				g.cfg.OnAssigned(cctx, a.parts)
				cancel()
			}
		case actCommit:
			g.com.autoCommit(g.positions(nil, true))
		case actFail:
			g.err = a.err
		case actLeft:
			g.left = true
		}
	}
}

// callbackContext is the context of a callback and of a revocation's
// commit: Poll's values without its deadline, bounded by RetryTimeoutMs
// (Kafka's default.api.timeout.ms), since a Poll with a short deadline
// must not make the commit before a revocation fail; inside Close, Close's
// own context.
func (g *GroupConsumer) callbackContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if g.closed {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), time.Duration(g.cl.cfg.RetryTimeoutMs)*time.Millisecond)
}

// revoke lets go of parts: an auto-commit of their positions (unless
// lost), OnRevoked or OnLost, then no more fetching, then the member is
// told, and only then does a heartbeat stop reporting them.
func (g *GroupConsumer) revoke(ctx context.Context, parts []TopicPartition, lost bool) {
	if !lost && !g.cfg.DisableAutoCommit {
		// A failure here (the coordinator gone, the epoch moved on) leaves
		// the last commit in place; the partition's next owner starts from
		// it, so records since are read again, never skipped.
		_ = g.com.commitSync(ctx, g.positions(parts, false))
	}
	cb := g.cfg.OnRevoked
	if lost && g.cfg.OnLost != nil {
		cb = g.cfg.OnLost
	}
	if cb != nil {
		cb(ctx, parts)
	}
	for _, tp := range parts {
		delete(g.held, tp)
		delete(g.cons.seeks, tp) // a Seek never adopted must not place a later assignment
		g.com.forget(tp)         // others may commit it from now on
	}
	g.fetch.remove(parts)
	g.d.revoked(parts)
}

// startFetching hands a positioned partition to the fetch machinery.
func (g *GroupConsumer) startFetching(tp TopicPartition, hp *heldPart) {
	if !hp.fetching {
		hp.fetching = true
		g.fetch.add(tp)
	}
}

// positions are the positions to commit of parts (nil: every held
// partition); changedOnly leaves out those already committed there.
func (g *GroupConsumer) positions(parts []TopicPartition, changedOnly bool) map[TopicPartition]int64 {
	if parts == nil {
		parts = g.Assignment()
	}
	out := map[TopicPartition]int64{}
	for _, tp := range parts {
		hp := g.held[tp]
		if hp == nil || !hp.fetching {
			continue
		}
		off, ok := g.cons.Position(tp.Topic, tp.Partition)
		if !ok || (changedOnly && g.com.isCommitted(tp, off)) {
			continue
		}
		out[tp] = off
	}
	return out
}

// Close leaves the group at once: the member's partitions are revoked
// (auto-commit commits their positions, OnRevoked runs), then the leave
// heartbeat goes (epoch -1, or -2 for a static member, whose partitions
// stay reserved for its instance for a session). ctx bounds the wait for
// the commits and the coordinator's answer; past it the member is left
// to its session on the coordinator.
func (g *GroupConsumer) Close(ctx context.Context) error {
	if g.closed {
		return nil
	}
	g.closed = true
	g.d.leave()
	var err error
	for !g.left && g.err == nil {
		if err = g.handle(ctx); err != nil {
			break
		}
		if g.left || g.err != nil {
			break
		}
		select {
		case <-g.d.appReady:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	if werr := g.com.close(ctx); err == nil {
		err = werr
	}
	g.d.close()
	if g.retryWake != nil {
		g.retryWake.Stop()
	}
	g.cons.Close()
	g.coord.Close()
	return err
}

// ownedAssignor is the set of partitions a GroupConsumer fetches, as its
// Consumer's Assignor.
type ownedAssignor struct {
	mu    sync.Mutex
	gen   uint64
	parts []TopicPartition
}

func (o *ownedAssignor) Assignment() (uint64, []TopicPartition) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gen, o.parts
}

func (o *ownedAssignor) add(tp TopicPartition) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.parts = append(slices.Clone(o.parts), tp)
	o.gen++
}

func (o *ownedAssignor) remove(parts []TopicPartition) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.parts = slices.DeleteFunc(slices.Clone(o.parts), func(tp TopicPartition) bool { return slices.Contains(parts, tp) })
	o.gen++
}
