package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-db/strata/server/controller"
	"github.com/strata-db/strata/server/controller/transport"
	"github.com/strata-db/strata/server/metadata"
)

// The controller RPC forwards a metadata command (or a quorum status
// query) from a voter that does not lead to the one that does. It shares
// the Raft listener: a connection that opens with rpcMagic is an RPC
// connection, any other goes to the Raft transport (which refuses it
// unless it opens with transport.ServiceRaft). Either way the service
// word starts the handshake of transport/handshake.go, which proves both
// ends hold the cluster secret and fixes the caller's voter id; only then
// is a request read.
//
//	connection = magic:u32le ("STRC") handshake (request response)*
//	request    = length:u32le JSON(rpcRequest)     length <= rpcMaxBytes
//	response   = length:u32le JSON(rpcReply)       length <= rpcMaxBytes
//
// The bodies are JSON: the messages are few, small and internal, and a
// readable form is worth more than the bytes saved.
const (
	rpcMagic = 0x43525453 // "STRC"
	// rpcMaxBytes bounds one request or reply; the largest is a
	// CreateTopic with its configs.
	rpcMaxBytes = 1 << 20
	// rpcSniffTimeout bounds how long an accepted connection may take to
	// send its first four bytes.
	rpcSniffTimeout = 5 * time.Second
	// rpcIdleTimeout bounds the wait for a request, and its reading:
	// callers send theirs right after the handshake.
	rpcIdleTimeout = 10 * time.Second
	// rpcWriteTimeout bounds writing a reply to a caller that stopped
	// reading.
	rpcWriteTimeout = 5 * time.Second
	// rpcMaxConns bounds the connections the listener holds that have not
	// been handed to the Raft transport (which has its own bound): ones
	// still sending their first bytes and RPC connections. Forwarded
	// commands are few, so a stranger opening sockets fills it long
	// before voters would.
	rpcMaxConns = 64
	// rpcDialTimeout bounds connecting to the leader.
	rpcDialTimeout = time.Second
	// rpcCallTimeout bounds one forwarded call when the caller's context
	// has no earlier deadline.
	rpcCallTimeout = 30 * time.Second
)

// rpcRequest is a forwarded command: Kind names it and the fields it uses
// are set.
type rpcRequest struct {
	Kind string `json:"kind"`
	// RegisterBroker, BrokerHeartbeat, ControlledShutdown, FenceBroker,
	// ReportOfflineReplica (with TopicID and Partition).
	BrokerID      int32                  `json:"broker_id,omitempty"`
	Epoch         int64                  `json:"epoch,omitempty"`
	AppliedOffset uint64                 `json:"applied_offset,omitempty"`
	Incarnation   metadata.IncarnationID `json:"incarnation,omitzero"`
	Rack          string                 `json:"rack,omitempty"`
	Listeners     []metadata.Listener    `json:"listeners,omitempty"`
	// PreviousEpoch (RegisterBroker) is the epoch of this broker's
	// previous incarnation when it shut down cleanly, else 0.
	PreviousEpoch int64 `json:"previous_epoch,omitempty"`
	// CreateTopic, ValidateCreateTopic, DeleteTopic.
	Topic      string            `json:"topic,omitempty"`
	TopicID    metadata.TopicID  `json:"topic_id,omitzero"`
	Configs    map[string]string `json:"configs,omitempty"`
	StartIndex uint32            `json:"start_index,omitempty"`
	Partition  int32             `json:"partition,omitempty"`
	// AlterTopicConfigs (with Topic) and its validation: the keys to set
	// and to delete; CreatePartitions (with Topic and StartIndex) and its
	// validation: the partition count to grow to.
	Set    map[string]string `json:"set,omitempty"`
	Delete []string          `json:"delete,omitempty"`
	Count  int               `json:"count,omitempty"`
	// AlterPartition (with BrokerID, Epoch, TopicID and Partition): the
	// leader's view of the partition and the ISR it proposes.
	LeaderEpoch    int32   `json:"leader_epoch,omitempty"`
	PartitionEpoch int32   `json:"partition_epoch,omitempty"`
	ISR            []int32 `json:"isr,omitempty"`
	// Session (BrokerHeartbeat) says the caller keeps this connection
	// for its heartbeats, so that its end is evidence the broker is gone
	// (meta_session.go). A heartbeat without it, on a connection of its
	// own, closes it after the answer, which says nothing.
	Session bool `json:"session,omitempty"`
}

// Request kinds.
const (
	rpcRegisterBroker      = "register_broker"
	rpcBrokerHeartbeat     = "broker_heartbeat"
	rpcControlledShutdown  = "controlled_shutdown"
	rpcFenceBroker         = "fence_broker"
	rpcCreateTopic         = "create_topic"
	rpcValidateCreateTopic = "validate_create_topic"
	rpcDeleteTopic         = "delete_topic"
	rpcReportOffline       = "report_offline_replica"
	rpcAlterPartition      = "alter_partition"
	rpcStatus              = "status"

	rpcAlterConfigs             = "alter_topic_configs"
	rpcValidateAlterConfigs     = "validate_alter_topic_configs"
	rpcCreatePartitions         = "create_partitions"
	rpcValidateCreatePartitions = "validate_create_partitions"
)

// command turns a request into the controller command it names.
func (r *rpcRequest) command() (controller.Command, error) {
	switch r.Kind {
	case rpcRegisterBroker:
		return controller.RegisterBroker(metadata.RegisterBrokerRequest{ID: r.BrokerID, Incarnation: r.Incarnation,
			Rack: r.Rack, Listeners: r.Listeners, PreviousBrokerEpoch: r.PreviousEpoch}), nil
	case rpcBrokerHeartbeat:
		return controller.BrokerHeartbeat(metadata.HeartbeatRequest{ID: r.BrokerID, Epoch: r.Epoch,
			AppliedOffset: r.AppliedOffset}), nil
	case rpcControlledShutdown:
		return controller.ControlledShutdown(r.BrokerID, r.Epoch), nil
	case rpcFenceBroker:
		return controller.FenceBroker(r.BrokerID), nil
	case rpcCreateTopic:
		return controller.CreateTopic(r.createTopicRequest()), nil
	case rpcValidateCreateTopic:
		return controller.ValidateCreateTopic(r.createTopicRequest()), nil
	case rpcDeleteTopic:
		return controller.DeleteTopic(r.Topic), nil
	case rpcReportOffline:
		return controller.ReportOfflineReplica(metadata.OfflineReplicaRequest{BrokerID: r.BrokerID, BrokerEpoch: r.Epoch,
			TopicID: r.TopicID, Partition: r.Partition}), nil
	case rpcAlterPartition:
		return controller.AlterPartition(r.alterPartitionRequest()), nil
	case rpcAlterConfigs:
		return controller.AlterTopicConfigs(r.alterConfigsRequest()), nil
	case rpcValidateAlterConfigs:
		return controller.Validate(controller.AlterTopicConfigs(r.alterConfigsRequest())), nil
	case rpcCreatePartitions:
		return controller.CreatePartitions(r.createPartitionsRequest()), nil
	case rpcValidateCreatePartitions:
		return controller.Validate(controller.CreatePartitions(r.createPartitionsRequest())), nil
	}
	return controller.Command{}, fmt.Errorf("server: unknown controller request %q", r.Kind)
}

// checkCaller refuses a command about a broker other than the voter
// that sent it: each broker registers, heartbeats, shuts down, fences
// only itself and alters only the ISRs of partitions it leads, so a voter
// can never speak for another.
func (r *rpcRequest) checkCaller(peer uint64) error {
	switch r.Kind {
	case rpcRegisterBroker, rpcBrokerHeartbeat, rpcControlledShutdown, rpcFenceBroker, rpcAlterPartition:
		if r.BrokerID <= 0 || uint64(r.BrokerID) != peer {
			return fmt.Errorf("server: voter %d sent %s for broker %d", peer, r.Kind, r.BrokerID)
		}
	}
	return nil
}

func (r *rpcRequest) createTopicRequest() metadata.CreateTopicRequest {
	return metadata.CreateTopicRequest{Name: r.Topic, ID: r.TopicID, Configs: r.Configs, StartIndex: r.StartIndex}
}

func (r *rpcRequest) alterConfigsRequest() metadata.AlterTopicConfigsRequest {
	return metadata.AlterTopicConfigsRequest{Topic: r.Topic, Set: r.Set, Delete: r.Delete}
}

func (r *rpcRequest) createPartitionsRequest() metadata.CreatePartitionsRequest {
	return metadata.CreatePartitionsRequest{Topic: r.Topic, Count: r.Count, StartIndex: r.StartIndex}
}

// rpcReply answers one request. Outcome says how it ended; the other
// fields carry what that outcome has.
type rpcReply struct {
	Outcome string `json:"outcome"`
	// EndOffset is the metadata offset just past the command's records on
	// the leader: a caller that waits until its own image reaches it sees
	// the command's effect.
	EndOffset uint64 `json:"end_offset,omitempty"`
	// Code and Detail are a rejection's.
	Code   metadata.ErrorCode `json:"code,omitempty"`
	Detail string             `json:"detail,omitempty"`
	// Leader is the leader the answering voter knows of (not_leader).
	Leader uint64             `json:"leader,omitempty"`
	Status *controller.Status `json:"status,omitempty"`
	// Partition is an AlterPartition's partition as the leader holds it
	// after the request, accepted or rejected; absent when the command
	// never ran there or the partition does not exist.
	Partition *metadata.PartitionInfo `json:"partition,omitempty"`
}

// Reply outcomes.
const (
	rpcOK        = "ok"
	rpcRejected  = "rejected"
	rpcNotLeader = "not_leader"
	rpcUnknown   = "outcome_unknown"
	rpcBusy      = "busy"
	rpcStopped   = "stopped"
	rpcFailed    = "failed"
)

// replyOf encodes the answer of a local Propose.
func replyOf(res controller.Result, err error) rpcReply {
	var rej *metadata.Rejection
	var nl *controller.NotLeaderError
	switch {
	case err == nil:
		return rpcReply{Outcome: rpcOK, EndOffset: res.Offset + uint64(len(res.Records))}
	case errors.As(err, &rej):
		return rpcReply{Outcome: rpcRejected, Code: rej.Code, Detail: rej.Detail}
	case errors.As(err, &nl):
		return rpcReply{Outcome: rpcNotLeader, Leader: nl.Leader}
	case errors.Is(err, controller.ErrOutcomeUnknown):
		return rpcReply{Outcome: rpcUnknown, Detail: err.Error()}
	case errors.Is(err, controller.ErrBusy):
		return rpcReply{Outcome: rpcBusy}
	case errors.Is(err, controller.ErrStopped):
		return rpcReply{Outcome: rpcStopped}
	}
	return rpcReply{Outcome: rpcFailed, Detail: err.Error()}
}

// err turns a reply back into the error the leader's Propose returned.
func (r *rpcReply) err() error {
	switch r.Outcome {
	case rpcOK:
		return nil
	case rpcRejected:
		return &metadata.Rejection{Code: r.Code, Detail: r.Detail}
	case rpcNotLeader:
		return &controller.NotLeaderError{Leader: r.Leader}
	case rpcUnknown:
		return fmt.Errorf("%w: %s", controller.ErrOutcomeUnknown, r.Detail)
	case rpcBusy:
		return controller.ErrBusy
	case rpcStopped:
		return controller.ErrStopped
	}
	return fmt.Errorf("server: controller RPC failed: %s", r.Detail)
}

// writeRPC writes one length-prefixed JSON message.
func writeRPC(w *bufio.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(body) > rpcMaxBytes {
		return fmt.Errorf("server: controller RPC message of %d bytes exceeds %d", len(body), rpcMaxBytes)
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(body)))
	w.Write(hdr[:])
	w.Write(body)
	return w.Flush()
}

// readRPC reads one message, refusing a length over rpcMaxBytes before
// allocating for it.
func readRPC(r *bufio.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > rpcMaxBytes {
		return fmt.Errorf("server: controller RPC message of %d bytes exceeds %d", n, rpcMaxBytes)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// rpcMux splits the Raft listener: it hands Raft connections to the
// transport through Accept and serves RPC connections itself, each after
// the handshake.
type rpcMux struct {
	ln    net.Listener
	auth  *transport.Auth
	log   *slog.Logger
	serve func(ctx context.Context, req *rpcRequest, conn uint64) rpcReply
	// lost hears of every RPC connection that carried a broker's
	// heartbeats and ended while the listener runs (meta_session.go).
	lost    func(ctx context.Context, sc sessionConn, remote string)
	raft    chan net.Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	refused transport.LogLimit
	// idle is the read deadline of a request (rpcIdleTimeout, which
	// tests shorten).
	idle  time.Duration
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	// lastConn is the id of the latest RPC connection accepted: ids grow,
	// so the controller tells an old session connection from a new one.
	lastConn atomic.Uint64
}

func newRPCMux(ln net.Listener, auth *transport.Auth, idle time.Duration, log *slog.Logger,
	serve func(ctx context.Context, req *rpcRequest, conn uint64) rpcReply,
	lost func(ctx context.Context, sc sessionConn, remote string)) *rpcMux {
	m := &rpcMux{ln: ln, auth: auth, log: log, serve: serve, lost: lost, raft: make(chan net.Conn), done: make(chan struct{}),
		idle: idle, conns: map[net.Conn]struct{}{}}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *rpcMux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		if err := m.track(c); err != nil {
			c.Close()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.refuse(c, err)
			continue
		}
		m.wg.Add(1)
		go m.sniff(c)
	}
}

// refuse logs a refused connection or request, rate-limited.
func (m *rpcMux) refuse(c net.Conn, err error) {
	if ok, suppressed := m.refused.Allow(time.Now()); ok {
		m.log.Warn("controller RPC refused a peer", "node", m.auth.ID, "remote", c.RemoteAddr().String(),
			"err", err, "refusals_not_logged", suppressed)
	}
}

// sniff reads a connection's first four bytes and routes it.
func (m *rpcMux) sniff(c net.Conn) {
	defer m.wg.Done()
	var first [4]byte
	c.SetReadDeadline(time.Now().Add(rpcSniffTimeout))
	if _, err := io.ReadFull(c, first[:]); err != nil {
		m.untrack(c)
		return
	}
	c.SetReadDeadline(time.Time{})
	if binary.LittleEndian.Uint32(first[:]) == rpcMagic {
		m.serveConn(c)
		return
	}
	// The transport owns it from here (and closes it); forget it here.
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
	select {
	case m.raft <- &prefixConn{Conn: c, prefix: first[:]}:
	case <-m.done:
		c.Close()
	}
}

// serveConn authenticates one RPC connection, then answers its requests
// in turn, each read and each reply under a deadline.
func (m *rpcMux) serveConn(c net.Conn) {
	defer m.untrack(c)
	peer, err := m.auth.Accept(c, rpcMagic)
	if err != nil {
		m.refuse(c, err)
		return
	}
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc := sessionConn{id: m.lastConn.Add(1)}
	// closedByPeer is set when the peer's side ended the connection (end
	// of stream, reset): of a session connection, that is evidence the
	// broker may be gone. Silence past the read deadline is not (the
	// session timeout judges silence), nor is the listener stopping.
	closedByPeer := false
	defer func() {
		if closedByPeer && sc.broker > 0 && ctx.Err() == nil && m.lost != nil {
			m.lost(ctx, sc, c.RemoteAddr().String())
		}
	}()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		if err := c.SetReadDeadline(time.Now().Add(m.idle)); err != nil {
			return
		}
		var req rpcRequest
		if err := readRPC(r, &req); err != nil {
			// A caller done with its connection, or silent past the
			// deadline, is closed quietly; a bad request is a refusal.
			var ne net.Error
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &ne) {
				m.refuse(c, fmt.Errorf("voter %d: %w", peer, err))
			}
			closedByPeer = peerClosed(err)
			return
		}
		if err := req.checkCaller(peer); err != nil {
			m.refuse(c, err)
			return
		}
		callCtx, stop := context.WithTimeout(ctx, rpcCallTimeout)
		reply := m.serve(callCtx, &req, sc.id)
		stop()
		sc.heartbeatServed(&req, &reply)
		if err := c.SetWriteDeadline(time.Now().Add(rpcWriteTimeout)); err != nil {
			return
		}
		if err := writeRPC(w, &reply); err != nil {
			closedByPeer = peerClosed(err)
			return
		}
	}
}

// peerClosed reports whether an RPC connection's read or write error
// says the other end closed or reset it, rather than a deadline passing
// or a malformed message.
func peerClosed(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// Accept hands the transport its next connection.
func (m *rpcMux) Accept() (net.Conn, error) {
	select {
	case c := <-m.raft:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes the RPC connections and waits for their
// goroutines.
func (m *rpcMux) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		err = m.ln.Close()
		m.mu.Lock()
		for c := range m.conns {
			c.Close()
		}
		m.mu.Unlock()
		m.wg.Wait()
	})
	return err
}

func (m *rpcMux) Addr() net.Addr { return m.ln.Addr() }

func (m *rpcMux) track(c net.Conn) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.done:
		return net.ErrClosed
	default:
	}
	if len(m.conns) >= rpcMaxConns {
		return fmt.Errorf("%d connections open, the most accepted", rpcMaxConns)
	}
	m.conns[c] = struct{}{}
	return nil
}

func (m *rpcMux) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
	c.Close()
}

// prefixConn replays the bytes read to route the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// errNotSent marks a call that failed before its request left: retrying
// it cannot apply a command twice.
var errNotSent = errors.New("server: controller RPC not sent")

// callRPC sends req to voter peer at addr and waits for its reply. Each
// call has its own connection: forwarded commands are rare (a heartbeat
// every few seconds per broker, topic changes), and a fresh connection
// never carries a request into a socket the peer already closed, which
// would turn a safe retry into an outcome unknown.
func callRPC(ctx context.Context, auth *transport.Auth, peer uint64, addr string, req *rpcRequest) (rpcReply, error) {
	d := net.Dialer{Timeout: rpcDialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return rpcReply{}, fmt.Errorf("%w: %w", errNotSent, err)
	}
	defer c.Close()
	if err := auth.Dial(c, rpcMagic, peer); err != nil {
		return rpcReply{}, fmt.Errorf("%w: %w", errNotSent, err)
	}
	deadline := time.Now().Add(rpcCallTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	w := bufio.NewWriter(c)
	if err := writeRPC(w, req); err != nil {
		return rpcReply{}, fmt.Errorf("%w: %w", errNotSent, err)
	}
	var reply rpcReply
	if err := readRPC(bufio.NewReader(c), &reply); err != nil {
		return rpcReply{}, fmt.Errorf("%w: controller RPC to %s: %w", controller.ErrOutcomeUnknown, addr, err)
	}
	return reply, nil
}
