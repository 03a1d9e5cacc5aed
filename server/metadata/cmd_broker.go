package metadata

import "slices"

// RegisterBrokerRequest is what a broker sends when it starts.
type RegisterBrokerRequest struct {
	ID          int32
	Incarnation IncarnationID
	Rack        string
	Listeners   []Listener
	// PreviousBrokerEpoch is the broker epoch of this broker's previous
	// incarnation if that incarnation shut down cleanly (its logs flushed
	// and closed, as its clean-shutdown marker says), else 0. A new
	// incarnation whose previous epoch does not match the registered one
	// may have lost log records it wrote but never flushed, and leaves the
	// ELR of every partition whose topic does not flush before
	// acknowledging (KIP-966).
	PreviousBrokerEpoch int64
}

// HeartbeatRequest is what a broker sends every heartbeat interval.
type HeartbeatRequest struct {
	ID    int32
	Epoch int64
	// AppliedOffset is the number of metadata records the broker has
	// applied (its State.Offset()).
	AppliedOffset uint64
	// Conn is the id the leader's RPC listener gave the session
	// connection the heartbeat came on, 0 when it came on none (the
	// leader's own broker); see ConnectionLostRequest.
	Conn uint64
}

// RegisterBroker registers a broker process.
//
//   - A retry from the incarnation already registered changes nothing: no
//     records, and the broker keeps its epoch. It must carry the same
//     listeners and rack (else INCONSISTENT_REGISTRATION).
//   - A new incarnation gets the next broker epoch and starts fenced. It is
//     refused (DUPLICATE_BROKER_REGISTRATION) while the old incarnation is
//     unfenced, not in controlled shutdown and within its session, since
//     then two processes would claim one id. If the old incarnation is
//     still unfenced (its session lapsed before Tick saw it, or it was in
//     controlled shutdown) it is fenced first, in the same batch.
//   - A new incarnation whose PreviousBrokerEpoch is not the registered
//     epoch shut down uncleanly: it leaves the ELRs it is in of topics
//     whose flush policy is not sync, in the same batch, before the
//     registration record.
func (c *Controller) RegisterBroker(req RegisterBrokerRequest, nowMs int64) ([]Record, error) {
	if req.ID < 0 {
		return nil, reject(ErrInvalidRequest, "negative broker id %d", req.ID)
	}
	if err := validateListeners(req.Listeners); err != nil {
		return nil, reject(ErrInvalidRequest, "%v", err)
	}
	if err := validateRack(req.Rack); err != nil {
		return nil, reject(ErrInvalidRequest, "%v", err)
	}
	old, exists := c.state.brokers[req.ID]
	if !exists {
		if len(c.state.brokers) >= maxBrokers {
			return nil, reject(ErrTooManyBrokers, "%d brokers registered", len(c.state.brokers))
		}
		c.lastHeartbeatMs[req.ID] = nowMs
		delete(c.reconnectByMs, req.ID)
		return c.commit([]Record{RegisterBrokerRecord{
			ID: req.ID, Incarnation: req.Incarnation, Epoch: 1, Rack: req.Rack,
			Listeners: slices.Clone(req.Listeners),
		}})
	}
	if old.incarnation == req.Incarnation {
		if old.rack != req.Rack || !slices.Equal(old.listeners, req.Listeners) {
			return nil, reject(ErrInconsistentRegistration, "broker %d incarnation %s registered with other listeners or rack", req.ID, req.Incarnation)
		}
		c.lastHeartbeatMs[req.ID] = nowMs
		delete(c.reconnectByMs, req.ID)
		return nil, nil
	}
	if !old.fenced && !old.shuttingDown && c.sessionLive(req.ID, nowMs) {
		return nil, reject(ErrDuplicateBrokerRegistration, "broker %d incarnation %s still holds a live session", req.ID, old.incarnation)
	}
	// Each step's records are built from the state the earlier steps
	// leave, so they are applied as they are built.
	var records []Record
	if !old.fenced {
		recs, err := c.commit(c.fenceRecords(old))
		if err != nil {
			return nil, err
		}
		records = recs
	}
	if req.PreviousBrokerEpoch != old.epoch {
		recs, err := c.commit(c.state.lostLogChanges(req.ID))
		if err != nil {
			return nil, err
		}
		records = append(records, recs...)
	}
	recs, err := c.commit([]Record{RegisterBrokerRecord{
		ID: req.ID, Incarnation: req.Incarnation, Epoch: old.epoch + 1, Rack: req.Rack,
		Listeners: slices.Clone(req.Listeners),
	}})
	if err != nil {
		return nil, err
	}
	c.lastHeartbeatMs[req.ID] = nowMs
	c.forgetSession(req.ID)
	return append(records, recs...), nil
}

// BrokerHeartbeat renews a broker's session. A fenced broker that is not
// in controlled shutdown and has applied its own registration record (so
// it has caught up with the log at least that far) is unfenced, and every
// leaderless partition it can now lead gets it (or another eligible
// replica) as leader.
func (c *Controller) BrokerHeartbeat(req HeartbeatRequest, nowMs int64) ([]Record, error) {
	b, err := c.brokerAtEpoch(req.ID, req.Epoch)
	if err != nil {
		return nil, err
	}
	c.heardFrom(b.id, req.Conn, nowMs)
	if !b.fenced || b.shuttingDown || req.AppliedOffset <= b.registerOffset {
		return nil, nil
	}
	return c.commit(c.unfenceRecords(b))
}

// FenceBroker fences a broker at an operator's request, exactly as Tick
// does when its session lapses. The broker unfences itself with its next
// caught-up heartbeat, so this moves leadership off a broker rather than
// removing it for good.
func (c *Controller) FenceBroker(id int32) ([]Record, error) {
	b, ok := c.state.brokers[id]
	if !ok {
		return nil, reject(ErrBrokerNotRegistered, "broker %d", id)
	}
	if b.fenced {
		return nil, reject(ErrBrokerFenced, "broker %d is already fenced", id)
	}
	return c.commit(c.fenceRecords(b))
}

// UnfenceBroker lifts a broker's fence at an operator's request, without
// waiting for a caught-up heartbeat. A broker in controlled shutdown stays
// fenced until it registers again.
func (c *Controller) UnfenceBroker(id int32) ([]Record, error) {
	b, ok := c.state.brokers[id]
	if !ok {
		return nil, reject(ErrBrokerNotRegistered, "broker %d", id)
	}
	if !b.fenced {
		return nil, reject(ErrBrokerNotFenced, "broker %d", id)
	}
	if b.shuttingDown {
		return nil, reject(ErrBrokerShuttingDown, "broker %d is in controlled shutdown", id)
	}
	return c.commit(c.unfenceRecords(b))
}

// ControlledShutdown starts a broker's controlled shutdown, following
// Kafka's KRaft controller: the broker is marked in controlled shutdown,
// which makes it ineligible to lead or to join an ISR; every partition it
// leads gets a new leader from the rest of its ISR (or none, if it was the
// only member); and it leaves every ISR it is in except where it is the
// last member. It stays registered and unfenced while it keeps
// heartbeating, and is fenced when its session lapses after it stops.
func (c *Controller) ControlledShutdown(id int32, epoch int64) ([]Record, error) {
	b, err := c.brokerAtEpoch(id, epoch)
	if err != nil {
		return nil, err
	}
	if b.fenced {
		return nil, reject(ErrBrokerFenced, "broker %d is fenced", id)
	}
	if b.shuttingDown {
		return nil, reject(ErrBrokerShuttingDown, "broker %d is already in controlled shutdown", id)
	}
	records := []Record{BrokerShutdownRecord{ID: b.id, Epoch: b.epoch}}
	records = append(records, c.state.removeBrokerChanges(b.id)...)
	return c.commit(records)
}

// brokerAtEpoch returns broker id if it is registered at epoch.
func (c *Controller) brokerAtEpoch(id int32, epoch int64) (*broker, error) {
	b, ok := c.state.brokers[id]
	if !ok {
		return nil, reject(ErrBrokerNotRegistered, "broker %d", id)
	}
	if epoch != b.epoch {
		return nil, reject(ErrStaleBrokerEpoch, "broker %d is at epoch %d, request has %d", id, b.epoch, epoch)
	}
	return b, nil
}

// fenceRecords fences b and moves its leaderships and ISR memberships.
func (c *Controller) fenceRecords(b *broker) []Record {
	c.forgetSession(b.id)
	records := []Record{FenceBrokerRecord{ID: b.id, Epoch: b.epoch}}
	return append(records, c.state.removeBrokerChanges(b.id)...)
}

// unfenceRecords unfences b and elects leaders it makes possible.
func (c *Controller) unfenceRecords(b *broker) []Record {
	records := []Record{UnfenceBrokerRecord{ID: b.id, Epoch: b.epoch}}
	return append(records, c.state.leaderlessElections(b.id)...)
}
