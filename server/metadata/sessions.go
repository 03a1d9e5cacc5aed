package metadata

// Connection loss: the controller's own evidence that a broker died.
//
// A broker heartbeats the controller leader over one long-lived
// connection (its session connection). A process that dies, kill -9
// included, has its sockets closed by its kernel at once, so the leader
// sees that connection end long before the session lapses. The leader's
// RPC listener reports the end (BrokerConnectionLost, with the id it gave
// the connection); unless a heartbeat arrives on a newer connection within
// the grace (ConnectionLossGraceMs), Tick fences the broker as if its
// session had lapsed. A broker whose connection merely broke redials and
// heartbeats within the grace and is never fenced. Silent failures (a
// network partition: no FIN, no reset) still wait out the session.
//
// A broker that dies together with the controller leader leaves no
// connection for the new leader to see end. The new leader therefore
// expects every registered, unfenced broker to heartbeat to it within
// the reconnect grace of its election (ExpectReconnects): live brokers
// heartbeat every interval and learn the new leader from Raft at once, so
// only a dead or cut-off broker misses it, and it is fenced then rather
// than a whole session after the election.
//
// Only the leader's listener reports losses, of connections it accepted
// and authenticated as the broker's own voter: nothing another broker
// says can fence one. The state is leader soft state, like the last
// heartbeat: a new leader starts with no losses, and brokers reconnect to
// it, so a controller change fences nobody.

// ConnectionLostRequest reports that the session connection of broker ID
// at Epoch ended without a clean unregistration. Conn is the id the
// leader's listener gave that connection: ids grow with every connection
// it accepts, so a loss older than the connection the broker heartbeats on
// now is recognised and dropped.
type ConnectionLostRequest struct {
	ID    int32
	Epoch int64
	Conn  uint64
}

// FenceCause says why Tick fenced a broker.
type FenceCause uint8

const (
	// FenceSessionLapsed: no heartbeat for more than the session timeout.
	FenceSessionLapsed FenceCause = iota + 1
	// FenceConnectionLost: its session connection ended and it did not
	// heartbeat on a new one within the grace.
	FenceConnectionLost
	// FenceNotReconnected: it did not heartbeat to a newly elected leader
	// within the reconnect grace.
	FenceNotReconnected
)

func (c FenceCause) String() string {
	switch c {
	case FenceSessionLapsed:
		return "session_lapsed"
	case FenceConnectionLost:
		return "connection_lost"
	case FenceNotReconnected:
		return "not_reconnected"
	}
	return "unknown"
}

// Fence is one broker Tick fenced, and why.
type Fence struct {
	ID    int32
	Epoch int64
	Cause FenceCause
}

// connLoss is a reported loss waiting out its grace.
type connLoss struct {
	atMs int64
	conn uint64
}

// BrokerConnectionLost records that broker req.ID's session connection
// ended. It produces no records: Tick fences the broker once the grace
// has passed without a heartbeat on a newer connection. A report about
// another epoch is STALE_BROKER_EPOCH (a restarted broker's old
// connection), and one about a fenced broker, or about a connection older
// than the one the broker heartbeats on, changes nothing.
func (c *Controller) BrokerConnectionLost(req ConnectionLostRequest, nowMs int64) ([]Record, error) {
	b, err := c.brokerAtEpoch(req.ID, req.Epoch)
	if err != nil {
		return nil, err
	}
	if b.fenced || c.connLossGraceMs < 0 || req.Conn == 0 || req.Conn < c.sessionConn[b.id] {
		return nil, nil
	}
	if l, ok := c.connLost[b.id]; ok && l.conn >= req.Conn {
		return nil, nil
	}
	c.connLost[b.id] = connLoss{atMs: nowMs, conn: req.Conn}
	return nil, nil
}

// heardFrom takes a heartbeat of broker id on connection conn (0: not on
// a session connection, e.g. the leader's own broker): it renews the
// session, and clears a reported loss of an older connection, since the
// broker is alive and connected again.
func (c *Controller) heardFrom(id int32, conn uint64, nowMs int64) {
	c.lastHeartbeatMs[id] = nowMs
	delete(c.reconnectByMs, id)
	if conn > c.sessionConn[id] {
		c.sessionConn[id] = conn
	}
	if l, ok := c.connLost[id]; ok && (conn == 0 || conn > l.conn) {
		delete(c.connLost, id)
	}
}

// fenceCause says whether Tick fences broker b at nowMs, and why.
func (c *Controller) fenceCause(b *broker, nowMs int64) (FenceCause, bool) {
	if b.fenced {
		return 0, false
	}
	if !c.sessionLive(b.id, nowMs) {
		return FenceSessionLapsed, true
	}
	if l, ok := c.connLost[b.id]; ok && nowMs-l.atMs >= c.connLossGraceMs {
		return FenceConnectionLost, true
	}
	if by, ok := c.reconnectByMs[b.id]; ok && nowMs >= by {
		return FenceNotReconnected, true
	}
	return 0, false
}

// ExpectReconnects starts a new leadership's wait for every registered,
// unfenced broker to heartbeat: one that has not by nowMs plus the
// reconnect grace is fenced by Tick. Called once per election, not when
// the Controller is rebuilt within a leadership (CarrySessions).
func (c *Controller) ExpectReconnects(nowMs int64) {
	if c.reconnectGraceMs <= 0 {
		return
	}
	for id, b := range c.state.brokers {
		if !b.fenced {
			c.reconnectByMs[id] = nowMs + c.reconnectGraceMs
		}
	}
}

// CarrySessions takes over prev's session soft state (heartbeats, session
// connections, reported losses, awaited reconnects) for the brokers this
// controller's state still holds at the same epoch. A Controller rebuilt
// within one leadership (a refused or dropped proposal) uses it, so a
// rebuild neither gives a dead broker a fresh session nor forgets a loss.
func (c *Controller) CarrySessions(prev *Controller) {
	if prev == nil {
		return
	}
	for id, b := range c.state.brokers {
		pb, ok := prev.state.brokers[id]
		if !ok || pb.epoch != b.epoch {
			continue
		}
		if ms, ok := prev.lastHeartbeatMs[id]; ok {
			c.lastHeartbeatMs[id] = ms
		}
		if conn, ok := prev.sessionConn[id]; ok {
			c.sessionConn[id] = conn
		}
		if l, ok := prev.connLost[id]; ok {
			c.connLost[id] = l
		}
		if by, ok := prev.reconnectByMs[id]; ok {
			c.reconnectByMs[id] = by
		}
	}
}

// forgetSession drops the soft state of broker id (fenced or registered
// anew): a loss reported before is no longer about a live session.
func (c *Controller) forgetSession(id int32) {
	delete(c.connLost, id)
	delete(c.reconnectByMs, id)
}

// LastFences returns the brokers the last Tick fenced, in order.
func (c *Controller) LastFences() []Fence { return c.lastFences }

// ConnectionLossGraceMs returns the configured grace (negative: off).
func (c *Controller) ConnectionLossGraceMs() int64 { return c.connLossGraceMs }
