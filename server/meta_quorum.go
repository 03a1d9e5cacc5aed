package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-db/strata/server/controller"
	"github.com/strata-db/strata/server/controller/transport"
	"github.com/strata-db/strata/server/metadata"
)

// metadataDir holds the controller voter's Raft log, snapshot and hard
// state (server/controller/raftlog).
const metadataDir = "__cluster_metadata"

// legacyMetadataDir is where brokers before the controller quorum kept
// their metadata; it is not read (see docs/controller.md).
const legacyMetadataDir = "__cluster_metadata-0"

// singleVoterID is the voter id of the 1-voter controller a broker runs
// when no quorum is configured. It is fixed, not the broker id, so that
// the Raft log stays valid if the node id changes.
const singleVoterID = 1

// proposeRetryInterval is how long a command waits before it is retried
// when no leader is known yet (an election is under way) or the leader
// is busy.
const proposeRetryInterval = 50 * time.Millisecond

// Voter is one member of the controller quorum: its node id and the
// address its Raft transport (and controller RPC) listens on.
type Voter struct {
	ID   int32
	Addr string
}

// quorumMember is this process's voter: the controller Node, its Raft
// transport and the RPC that lets other voters forward commands to it.
type quorumMember struct {
	log     *slog.Logger
	voterID uint64
	// addrs maps every voter id to its Raft address; nil for a lone voter.
	addrs map[uint64]string
	// auth proves this voter to the others on every connection.
	auth *transport.Auth
	node *controller.Node
	// nodeSet is closed once node is set: the RPC listener serves other
	// voters from before the node exists (the Raft transport needs it
	// to start the node), and their commands wait for it.
	nodeSet chan struct{}
	// session carries this broker's heartbeats to the leader
	// (meta_session.go); nil for a lone voter.
	session *rpcSession
	// fences counts the brokers this voter's controller fenced while it
	// led, by metadata.FenceCause; lossReports the session connections
	// its listener saw closed and reported.
	fences      [metadata.FenceNotReconnected + 1]atomic.Int64
	lossReports atomic.Int64
}

// ClusterAuth is how the voters of a quorum prove themselves to each
// other: Secret, the cluster secret every voter holds (at least
// transport.MinSecretBytes), or Insecure, chosen explicitly, to run the
// control plane with stated, unproven ids. A lone voter has no network
// and takes neither.
type ClusterAuth struct {
	Secret   []byte
	Insecure bool
}

// startQuorumMember opens the voter's Raft log under dataDir and starts
// it. With no voters it runs a lone voter with no network.
func startQuorumMember(dataDir string, nodeID int32, voters []Voter, ca ClusterAuth, mcfg metadata.Config, log *slog.Logger) (*quorumMember, error) {
	if len(voters) == 0 && (len(ca.Secret) > 0 || ca.Insecure) {
		return nil, errors.New("server: a cluster secret or insecure mode needs controller voters; a lone voter has no network")
	}
	if len(voters) > 0 {
		if err := transport.CheckSecret(ca.Secret, ca.Insecure); err != nil {
			return nil, fmt.Errorf("server: controller quorum: %w", err)
		}
		if ca.Insecure {
			log.Warn("the controller quorum runs insecure: its Raft and RPC peers state their ids unproven")
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, legacyMetadataDir)); err == nil {
		log.Warn("ignoring metadata written before the controller quorum; its topics are not served",
			"dir", filepath.Join(dataDir, legacyMetadataDir))
	}
	q := &quorumMember{log: log, nodeSet: make(chan struct{})}
	cfg := controller.Config{Dir: filepath.Join(dataDir, metadataDir), Metadata: mcfg, Logger: raftLogger{log},
		OnFence: func(f metadata.Fence) {
			if int(f.Cause) < len(q.fences) {
				q.fences[f.Cause].Add(1)
			}
			log.Warn("controller fences a broker", "broker", f.ID, "epoch", f.Epoch, "cause", f.Cause.String())
		}}
	if len(voters) == 0 {
		q.voterID = singleVoterID
		cfg.ID, cfg.Voters = singleVoterID, []uint64{singleVoterID}
	} else {
		if nodeID <= 0 {
			return nil, fmt.Errorf("server: node id %d cannot be a voter: voter ids start at 1", nodeID)
		}
		q.voterID = uint64(nodeID)
		q.addrs = map[uint64]string{}
		for _, v := range voters {
			if v.ID <= 0 {
				return nil, fmt.Errorf("server: voter id %d: voter ids start at 1", v.ID)
			}
			if _, dup := q.addrs[uint64(v.ID)]; dup {
				return nil, fmt.Errorf("server: voter %d listed twice", v.ID)
			}
			q.addrs[uint64(v.ID)] = v.Addr
			cfg.Voters = append(cfg.Voters, uint64(v.ID))
		}
		own, ok := q.addrs[q.voterID]
		if !ok {
			return nil, fmt.Errorf("server: node %d is not one of the controller voters; brokers that are not voters are not supported yet", nodeID)
		}
		slices.Sort(cfg.Voters)
		cfg.ID = q.voterID
		ln, err := net.Listen("tcp", own)
		if err != nil {
			return nil, fmt.Errorf("server: controller listener: %w", err)
		}
		q.auth = &transport.Auth{ID: q.voterID, Secret: ca.Secret, Accepts: func(id uint64) bool {
			_, ok := q.addrs[id]
			return ok
		}}
		q.session = &rpcSession{}
		mux := newRPCMux(ln, q.auth, rpcIdleTimeout, log, q.serveRPC, q.connectionLost)
		tr, err := transport.NewTCP(transport.TCPConfig{ID: q.voterID, Listener: mux, Peers: q.addrs,
			Secret: ca.Secret, Insecure: ca.Insecure, Logger: log})
		if err != nil {
			mux.Close()
			return nil, err
		}
		cfg.Transport = tr
	}
	node, err := controller.New(cfg)
	if err != nil {
		if cfg.Transport != nil {
			cfg.Transport.Close()
		}
		return nil, err
	}
	if err := node.Start(); err != nil {
		node.Stop()
		return nil, err
	}
	q.node = node
	close(q.nodeSet)
	return q, nil
}

// serveRPC answers a command forwarded by another voter. It runs the
// command here only: a voter that does not lead answers not_leader rather
// than forwarding again, so a request never travels in a circle.
//
// conn is the id the listener gave the connection: a heartbeat carries
// it to the controller, which learns so which session connection the
// broker uses (meta_session.go).
func (q *quorumMember) serveRPC(ctx context.Context, req *rpcRequest, conn uint64) rpcReply {
	select {
	case <-q.nodeSet:
	case <-ctx.Done():
		// Still starting: busy, which the caller retries.
		return rpcReply{Outcome: rpcBusy}
	}
	if req.Kind == rpcStatus {
		st, err := q.node.Status(ctx)
		if err != nil {
			return replyOf(controller.Result{}, err)
		}
		if st.Leader != q.voterID {
			return rpcReply{Outcome: rpcNotLeader, Leader: st.Leader}
		}
		return rpcReply{Outcome: rpcOK, Status: &st}
	}
	if req.Kind == rpcAlterPartition {
		return q.proposeAlterPartition(ctx, req)
	}
	cmd, err := req.command()
	if err != nil {
		return rpcReply{Outcome: rpcFailed, Detail: err.Error()}
	}
	if req.Kind == rpcBrokerHeartbeat {
		cmd = controller.BrokerHeartbeat(metadata.HeartbeatRequest{ID: req.BrokerID, Epoch: req.Epoch,
			AppliedOffset: req.AppliedOffset, Conn: conn})
	}
	return replyOf(q.node.Propose(ctx, cmd))
}

// propose runs req on the controller leader: here when this voter leads,
// else forwarded to the leader. It retries while no leader is known, the
// leader is busy, or the request could not be sent, until ctx ends; it
// never retries a command whose outcome is unknown. It returns the
// metadata offset just past the command's records.
//
// Heartbeats travel on the broker's session connection (heartbeat).
func (q *quorumMember) propose(ctx context.Context, req *rpcRequest) (uint64, error) {
	if req.Kind == rpcBrokerHeartbeat {
		return q.heartbeat(ctx, req)
	}
	return q.proposeVia(ctx, req, func(ctx context.Context, peer uint64, req *rpcRequest) (rpcReply, error) {
		return callRPC(ctx, q.auth, peer, q.addrs[peer], req)
	})
}

// proposeVia is propose forwarding with call; a call that lost its
// session connection (errSessionLost, only heartbeats use one) is
// retried like one never sent.
func (q *quorumMember) proposeVia(ctx context.Context, req *rpcRequest,
	call func(ctx context.Context, peer uint64, req *rpcRequest) (rpcReply, error)) (uint64, error) {
	cmd, err := req.command()
	if err != nil {
		return 0, err
	}
	for {
		var reply rpcReply
		res, err := q.node.Propose(ctx, cmd)
		var nl *controller.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != 0 && nl.Leader != q.voterID {
			reply, err = call(ctx, nl.Leader, req)
			if err == nil {
				err = reply.err()
			}
		} else if err == nil {
			reply.EndOffset = res.Offset + uint64(len(res.Records))
		}
		if err == nil {
			return reply.EndOffset, nil
		}
		if !retryable(err) && !errors.Is(err, errSessionLost) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(proposeRetryInterval):
		}
	}
}

// read returns an image that reflects every command committed before the
// call (a linearizable read), retrying while no leader is known.
func (q *quorumMember) read(ctx context.Context) (*metadata.Image, error) {
	for {
		im, err := q.node.Read(ctx)
		if err == nil || !retryable(err) {
			return im, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(proposeRetryInterval):
		}
	}
}

// status returns the leader's view of the quorum, asked of the leader when
// this voter does not lead.
func (q *quorumMember) status(ctx context.Context) (controller.Status, error) {
	for {
		st, err := q.node.Status(ctx)
		if err != nil {
			return st, err
		}
		if st.Leader == q.voterID {
			return st, nil
		}
		if st.Leader != 0 {
			reply, err := callRPC(ctx, q.auth, st.Leader, q.addrs[st.Leader], &rpcRequest{Kind: rpcStatus})
			if err == nil && reply.Status != nil {
				return *reply.Status, nil
			}
			if err == nil {
				err = reply.err()
			}
			if !retryable(err) && !errors.Is(err, controller.ErrOutcomeUnknown) {
				return st, err
			}
		}
		select {
		case <-ctx.Done():
			return st, &controller.NotLeaderError{Leader: st.Leader}
		case <-time.After(proposeRetryInterval):
		}
	}
}

// retryable reports whether a command may be sent again: nothing of it
// was proposed.
func retryable(err error) bool {
	var nl *controller.NotLeaderError
	return errors.As(err, &nl) || errors.Is(err, controller.ErrBusy) || errors.Is(err, errNotSent)
}

// leaderID is the node id of the controller leader, -1 when none is known.
func (q *quorumMember) leaderID(self int32) int32 {
	l := q.node.Leader()
	switch {
	case l == 0:
		return -1
	case q.addrs == nil:
		return self // the lone voter is this broker
	}
	return int32(l)
}

func (q *quorumMember) stop() error {
	if q.session != nil {
		q.session.close()
	}
	return q.node.Stop()
}

// raftLogger sends raft's log lines to the broker's logger: warnings and
// errors as they are, the rest at debug level.
type raftLogger struct{ log *slog.Logger }

func (l raftLogger) Debug(v ...any)            { l.log.Debug(fmt.Sprint(v...)) }
func (l raftLogger) Debugf(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l raftLogger) Info(v ...any)             { l.log.Debug(fmt.Sprint(v...)) }
func (l raftLogger) Infof(f string, v ...any)  { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l raftLogger) Warning(v ...any)          { l.log.Warn(fmt.Sprint(v...)) }
func (l raftLogger) Warningf(f string, v ...any) {
	l.log.Warn(fmt.Sprintf(f, v...))
}
func (l raftLogger) Error(v ...any)            { l.log.Error(fmt.Sprint(v...)) }
func (l raftLogger) Errorf(f string, v ...any) { l.log.Error(fmt.Sprintf(f, v...)) }
func (l raftLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (l raftLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (l raftLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (l raftLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }

// ParseVoters reads a voter list as `strata serve --controller-voters`
// takes it: "id@host:port,id@host:port,...".
func ParseVoters(s string) ([]Voter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var voters []Voter
	seen := map[int32]bool{}
	for _, item := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(item), "@")
		if !ok {
			return nil, fmt.Errorf("voter %q: want id@host:port", item)
		}
		n, err := strconv.ParseInt(id, 10, 32)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("voter %q: the id must be a positive integer", item)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("voter %q: %w", item, err)
		}
		if seen[int32(n)] {
			return nil, fmt.Errorf("voter %d listed twice", n)
		}
		seen[int32(n)] = true
		voters = append(voters, Voter{ID: int32(n), Addr: addr})
	}
	return voters, nil
}

// ControllerConfig configures a controller-only node: a voter of the
// quorum that serves no clients.
type ControllerConfig struct {
	DataDir string
	NodeID  int32
	Voters  []Voter
	// ClusterAuth is how the voters prove themselves to each other.
	ClusterAuth ClusterAuth
	// SessionTimeout is how long the controller waits for a broker's
	// heartbeat before fencing it (DefaultSessionTimeout).
	SessionTimeout time.Duration
	// ConnectionLossGrace: as BrokerConfig's.
	ConnectionLossGrace time.Duration
	// HeartbeatInterval is the brokers' (DefaultHeartbeatInterval): a new
	// leader's wait for their first heartbeats is sized by it.
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
}

// ControllerNode is a running controller-only node.
type ControllerNode struct {
	q *quorumMember
}

// StartController starts a controller-only voter.
func StartController(cfg ControllerConfig) (*ControllerNode, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("server: no data folder")
	}
	if len(cfg.Voters) == 0 {
		return nil, errors.New("server: a controller-only node needs the quorum's voters")
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.ConnectionLossGrace == 0 {
		cfg.ConnectionLossGrace = DefaultConnectionLossGrace
	}
	if cfg.ConnectionLossGrace >= cfg.SessionTimeout {
		return nil, fmt.Errorf("server: connection-loss grace %v is not below the session timeout %v", cfg.ConnectionLossGrace, cfg.SessionTimeout)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	q, err := startQuorumMember(cfg.DataDir, cfg.NodeID, cfg.Voters, cfg.ClusterAuth,
		sessionConfig(cfg.SessionTimeout, cfg.HeartbeatInterval, cfg.ConnectionLossGrace), cfg.Logger)
	if err != nil {
		return nil, err
	}
	return &ControllerNode{q: q}, nil
}

// Status is the quorum as its leader sees it.
func (c *ControllerNode) Status(ctx context.Context) (controller.Status, error) {
	return c.q.status(ctx)
}

// Stop stops the voter.
func (c *ControllerNode) Stop() error { return c.q.stop() }
