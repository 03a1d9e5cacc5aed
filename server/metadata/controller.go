package metadata

import "fmt"

// Config configures a Controller.
type Config struct {
	// SessionTimeoutMs is how long a broker may go without a heartbeat
	// before Tick fences it; zero means DefaultSessionTimeoutMs.
	SessionTimeoutMs int64
	// LeaderImbalanceCheckIntervalMs is how often Tick moves leadership
	// back to preferred replicas (rebalance.go); zero means
	// DefaultLeaderImbalanceCheckIntervalMs and a negative value turns the
	// check off (Kafka's auto.leader.rebalance.enable=false).
	LeaderImbalanceCheckIntervalMs int64
	// ConnectionLossGraceMs is how long after a broker's session
	// connection ends (BrokerConnectionLost) Tick waits for a heartbeat on
	// a new one before fencing it; zero means
	// DefaultConnectionLossGraceMs and a negative value turns fencing on
	// connection loss off (sessions alone fence).
	ConnectionLossGraceMs int64
	// ReconnectGraceMs is how long a newly elected controller leader
	// waits for each registered, unfenced broker to heartbeat to it before
	// fencing the broker (ExpectReconnects, sessions.go), where it would
	// otherwise wait out a whole session: a broker that died with the old
	// leader never reconnects. Zero or negative turns it off; it is capped
	// by the session timeout.
	ReconnectGraceMs int64
}

// Controller runs commands against a State: it validates each against the
// current state and either refuses it with a Rejection or returns the
// records that carry it out, having already applied them to its State (as
// Kafka's active controller applies its records to in-memory state as it
// proposes them, so that the next command sees the effect of this one).
//
// Only the Raft leader runs a Controller. It proposes each command's
// records as one batch (AppendBatch) and, should the proposal fail or
// leadership move, drops the Controller and rebuilds it from the committed
// state. Time comes in as nowMs; the Controller has no clock, goroutine or
// I/O of its own.
type Controller struct {
	state            *State
	sessionTimeoutMs int64
	// lastHeartbeatMs is soft state: it lives only on the leader and never
	// enters the log. A new leader starts every broker's session afresh.
	lastHeartbeatMs map[int32]int64
	// imbalanceCheckMs is the preferred-leader check's interval (negative:
	// off) and nextImbalanceCheckMs when it is next due; soft state too.
	imbalanceCheckMs     int64
	nextImbalanceCheckMs int64
	// connLossGraceMs (negative: off), sessionConn (the newest session
	// connection each broker heartbeated on) and connLost (losses waiting
	// out the grace) are soft state too (sessions.go).
	connLossGraceMs int64
	sessionConn     map[int32]uint64
	connLost        map[int32]connLoss
	// reconnectGraceMs (zero: off) and reconnectByMs (the brokers a new
	// leader has not heard from yet, and until when it waits) are soft
	// state too (sessions.go).
	reconnectGraceMs int64
	reconnectByMs    map[int32]int64
	// lastFences are the brokers the last Tick fenced.
	lastFences []Fence
}

// NewController returns a controller over state (a new empty state when
// nil), giving every registered broker a fresh session starting at nowMs.
func NewController(state *State, cfg Config, nowMs int64) *Controller {
	if state == nil {
		state = NewState()
	}
	if cfg.SessionTimeoutMs <= 0 {
		cfg.SessionTimeoutMs = DefaultSessionTimeoutMs
	}
	if cfg.LeaderImbalanceCheckIntervalMs == 0 {
		cfg.LeaderImbalanceCheckIntervalMs = DefaultLeaderImbalanceCheckIntervalMs
	}
	if cfg.ConnectionLossGraceMs == 0 {
		cfg.ConnectionLossGraceMs = DefaultConnectionLossGraceMs
	}
	c := &Controller{
		state:                state,
		sessionTimeoutMs:     cfg.SessionTimeoutMs,
		lastHeartbeatMs:      make(map[int32]int64, len(state.brokers)),
		imbalanceCheckMs:     cfg.LeaderImbalanceCheckIntervalMs,
		nextImbalanceCheckMs: nowMs + cfg.LeaderImbalanceCheckIntervalMs,
		connLossGraceMs:      cfg.ConnectionLossGraceMs,
		sessionConn:          map[int32]uint64{},
		connLost:             map[int32]connLoss{},
		reconnectGraceMs:     max(min(cfg.ReconnectGraceMs, cfg.SessionTimeoutMs), 0),
		reconnectByMs:        map[int32]int64{},
	}
	for id := range state.brokers {
		c.lastHeartbeatMs[id] = nowMs
	}
	return c
}

// State returns the controller's state, which already reflects every
// record the controller has returned.
func (c *Controller) State() *State { return c.state }

// SessionTimeoutMs returns the configured session timeout.
func (c *Controller) SessionTimeoutMs() int64 { return c.sessionTimeoutMs }

// sessionLive reports whether broker id has heartbeaten within the session.
func (c *Controller) sessionLive(id int32, nowMs int64) bool {
	last, ok := c.lastHeartbeatMs[id]
	return ok && nowMs-last <= c.sessionTimeoutMs
}

// commit applies a command's records to the controller's state. The
// records were built from that state, so a refusal is a bug in this
// package; it is reported rather than hidden, and the caller must rebuild
// the controller from the committed log.
func (c *Controller) commit(records []Record) ([]Record, error) {
	if err := c.state.ApplyAll(records); err != nil {
		return nil, fmt.Errorf("metadata: controller produced a record its state refuses: %w", err)
	}
	return records, nil
}

// Tick fences every unfenced broker whose session has lapsed (no heartbeat
// for more than the session timeout) or whose session connection ended
// more than the connection-loss grace ago with no heartbeat on a newer
// one (sessions.go), in id order, and moves its leaderships as FenceBroker
// does (LastFences says whom and why); then, when the leader-imbalance
// check is due, it moves leadership back to every preferred replica that
// is live and in sync (rebalance.go).
func (c *Controller) Tick(nowMs int64) ([]Record, error) {
	var all []Record
	c.lastFences = nil
	for _, b := range c.state.sortedBrokers() {
		cause, fence := c.fenceCause(b, nowMs)
		if !fence {
			continue
		}
		epoch := b.epoch
		recs, err := c.commit(c.fenceRecords(b))
		if err != nil {
			return all, err
		}
		c.lastFences = append(c.lastFences, Fence{ID: b.id, Epoch: epoch, Cause: cause})
		all = append(all, recs...)
	}
	recs, err := c.rebalanceLeaders(nowMs)
	return append(all, recs...), err
}

// LeaderImbalanceCheckIntervalMs returns the preferred-leader check's
// interval (negative when off).
func (c *Controller) LeaderImbalanceCheckIntervalMs() int64 { return c.imbalanceCheckMs }
