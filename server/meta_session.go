package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-db/strata/server/controller"
	"github.com/strata-db/strata/server/controller/transport"
	"github.com/strata-db/strata/server/metadata"
)

// The session connection. A broker heartbeats the controller leader over
// one long-lived controller RPC connection instead of a fresh one per
// call, so that the leader can tell a dead broker from a quiet one: when
// the process dies, kill -9 included, its kernel closes the socket and
// the leader reads the end at once. The leader's listener then reports
// the loss (metadata.ConnectionLostRequest) and the metadata controller
// fences the broker unless it heartbeats on a new connection within
// --broker-connection-loss-grace (server/metadata/sessions.go). Only the
// leader's own socket is evidence: a follower that sees its leader's
// connection reset says nothing to the controller, since a claim about
// another broker could be wrong (a partition between those two only) or
// forged.
//
// The broker closes its session connection only when it must: the leader
// moved (a not_leader reply, or another leader known), the connection
// failed, a call ran past its deadline (the reply would arrive out of
// turn), or the broker stops. After any of these but the last it dials
// again at once and heartbeats, well within the grace.

// DefaultConnectionLossGrace is how long the controller leader waits
// after a broker's session connection ends for a heartbeat on a new one
// before fencing it (--broker-connection-loss-grace).
const DefaultConnectionLossGrace = time.Duration(metadata.DefaultConnectionLossGraceMs) * time.Millisecond

// sessionConfig is the metadata controller's session settings: a
// negative grace turns fencing on connection loss off, zero is the
// default, and anything else is at least a millisecond.
//
// A new controller leader waits for every broker's first heartbeat for
// reconnectGraceIntervals heartbeat intervals plus the connection-loss
// grace (5 s by default, against the 9 s session), capped by the session:
// brokers learn the new leader from their own quorum member at once and
// heartbeat every interval, so a live one misses that only if two
// heartbeats in a row fail. The cluster's brokers are taken to share this
// broker's heartbeat interval. A negative grace turns it off too, since
// both rest on the same evidence.
func sessionConfig(sessionTimeout, heartbeatInterval, grace time.Duration) metadata.Config {
	cfg := metadata.Config{SessionTimeoutMs: sessionTimeout.Milliseconds()}
	if heartbeatInterval <= 0 {
		heartbeatInterval = DefaultHeartbeatInterval
	}
	switch {
	case grace < 0:
		cfg.ConnectionLossGraceMs = -1
		return cfg
	case grace > 0:
		cfg.ConnectionLossGraceMs = max(grace.Milliseconds(), 1)
	default:
		grace = DefaultConnectionLossGrace
	}
	cfg.ReconnectGraceMs = (reconnectGraceIntervals*heartbeatInterval + grace).Milliseconds()
	return cfg
}

// reconnectGraceIntervals is how many heartbeat intervals a new controller
// leader waits for a broker's first heartbeat, beyond the connection-loss
// grace.
const reconnectGraceIntervals = 2

// connectionLostTimeout bounds proposing one connection loss on the leader.
const connectionLostTimeout = 5 * time.Second

// errSessionLost marks a heartbeat whose session connection failed after
// the request may have left. A heartbeat is safe to send again (it only
// renews a session, and unfences a broker that is fenced), so the caller
// retries it on a new connection.
var errSessionLost = errors.New("server: controller session connection lost")

// rpcSession is a broker's session connection to the controller leader.
type rpcSession struct {
	mu   sync.Mutex
	peer uint64
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

// call sends req to voter peer at addr on the session connection, dialing
// it first when there is none to that peer, and waits for the reply.
func (s *rpcSession) call(ctx context.Context, auth *transport.Auth, peer uint64, addr string, req *rpcRequest) (rpcReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil && s.peer != peer {
		s.closeLocked()
	}
	if s.c == nil {
		d := net.Dialer{Timeout: rpcDialTimeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return rpcReply{}, fmt.Errorf("%w: %w", errNotSent, err)
		}
		if err := auth.Dial(c, rpcMagic, peer); err != nil {
			c.Close()
			return rpcReply{}, fmt.Errorf("%w: %w", errNotSent, err)
		}
		s.peer, s.c, s.r, s.w = peer, c, bufio.NewReader(c), bufio.NewWriter(c)
	}
	deadline := time.Now().Add(rpcCallTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	session := *req
	session.Session = true
	c := s.c
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	var reply rpcReply
	err := writeRPC(s.w, &session)
	if err == nil {
		err = readRPC(s.r, &reply)
	}
	if err != nil {
		s.closeLocked()
		return rpcReply{}, fmt.Errorf("%w: %s: %w", errSessionLost, addr, err)
	}
	if reply.Outcome == rpcNotLeader {
		// The leader moved: the next call dials the new one.
		s.closeLocked()
	}
	return reply, nil
}

func (s *rpcSession) closeLocked() {
	if s.c != nil {
		s.c.Close()
		s.c, s.r, s.w = nil, nil, nil
	}
}

// close ends the session connection (the broker stops).
func (s *rpcSession) close() {
	s.mu.Lock()
	s.closeLocked()
	s.mu.Unlock()
}

// heartbeat renews this broker's session on the controller leader: here
// when this voter leads, else over the session connection. It retries as
// propose does, and also after a lost session connection, on a new one.
func (q *quorumMember) heartbeat(ctx context.Context, req *rpcRequest) (uint64, error) {
	return q.proposeVia(ctx, req, func(ctx context.Context, peer uint64, req *rpcRequest) (rpcReply, error) {
		if q.session == nil {
			return callRPC(ctx, q.auth, peer, q.addrs[peer], req)
		}
		return q.session.call(ctx, q.auth, peer, q.addrs[peer], req)
	})
}

// sessionConn is what the leader's listener knows of one RPC connection:
// the id it gave it and the broker whose heartbeats it carried.
type sessionConn struct {
	id     uint64
	broker int32 // 0: no heartbeat answered on it
	epoch  int64
}

// heartbeatServed notes an answered heartbeat on a session connection.
func (sc *sessionConn) heartbeatServed(req *rpcRequest, reply *rpcReply) {
	if req.Kind == rpcBrokerHeartbeat && req.Session && reply.Outcome == rpcOK {
		sc.broker, sc.epoch = req.BrokerID, req.Epoch
	}
}

// connectionLost reports on this voter that a broker's session connection
// ended (the listener calls it when a connection that carried heartbeats
// closes). Only a leader acts on it; elsewhere it is dropped.
func (q *quorumMember) connectionLost(ctx context.Context, sc sessionConn, remote string) {
	ctx, cancel := context.WithTimeout(ctx, connectionLostTimeout)
	defer cancel()
	_, err := q.node.Propose(ctx, controller.BrokerConnectionLost(metadata.ConnectionLostRequest{
		ID: sc.broker, Epoch: sc.epoch, Conn: sc.id}))
	var nl *controller.NotLeaderError
	switch {
	case err == nil:
		q.lossReports.Add(1)
		q.log.Info("broker's controller session connection closed; fencing it unless it reconnects within the grace",
			"broker", sc.broker, "epoch", sc.epoch, "remote", remote)
	case errors.As(err, &nl):
		q.log.Debug("broker's controller session connection closed on a voter that does not lead", "broker", sc.broker)
	default:
		q.log.Debug("broker's controller session connection closed", "broker", sc.broker, "err", err)
	}
}

// registerMetrics exposes the controller's fences by cause and the
// connection losses it heard of, both counted while this voter led.
func (q *quorumMember) registerMetrics(reg *prometheus.Registry) {
	for _, cause := range []metadata.FenceCause{metadata.FenceSessionLapsed, metadata.FenceConnectionLost, metadata.FenceNotReconnected} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_controller_broker_fences_total",
			Help:        "Brokers this node's controller fenced while it led, by cause: a lapsed session, a closed session connection, or no heartbeat to a newly elected leader within its reconnect wait.",
			ConstLabels: prometheus.Labels{"cause": cause.String()}},
			func() float64 { return float64(q.fences[cause].Load()) }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_controller_session_connections_lost_total",
		Help: "Brokers' session connections this node's controller saw closed by the broker while it led."},
		func() float64 { return float64(q.lossReports.Load()) }))
}
