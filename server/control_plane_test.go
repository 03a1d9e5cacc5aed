package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-db/strata/server/controller/transport"
	"github.com/strata-db/strata/server/metadata"

	pb "go.etcd.io/raft/v3/raftpb"
)

var testClusterSecret = []byte("the secret of the control plane test")

// capturedLog is a slog handler keeping every line, shared by the voters
// of a test.
type capturedLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *capturedLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *capturedLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}
func (l *capturedLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *capturedLog) WithGroup(string) slog.Handler      { return l }

func (l *capturedLog) has(subs ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		all := true
		for _, sub := range subs {
			all = all && strings.Contains(s, sub)
		}
		if all {
			return true
		}
	}
	return false
}

// waitUntil polls cond until it holds, failing after clusterWait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(clusterPoll) // polling a condition
	}
}

// startQuorum runs voters 1..3 in this process on reserved loopback ports.
func startQuorum(t *testing.T, log *capturedLog) (map[uint64]*quorumMember, map[uint64]string) {
	t.Helper()
	ports := freePorts(t, 3)
	var voters []Voter
	addrs := map[uint64]string{}
	for i, p := range ports {
		voters = append(voters, Voter{ID: int32(i + 1), Addr: p})
		addrs[uint64(i+1)] = p
	}
	members := map[uint64]*quorumMember{}
	for _, v := range voters {
		q, err := startQuorumMember(t.TempDir(), v.ID, voters, ClusterAuth{Secret: testClusterSecret},
			metadata.Config{SessionTimeoutMs: DefaultSessionTimeout.Milliseconds()}, slog.New(log).With("voter", v.ID))
		if err != nil {
			t.Fatal(err)
		}
		members[uint64(v.ID)] = q
		t.Cleanup(func() { q.stop() })
	}
	return members, addrs
}

// register registers broker id (its own voter) with a fresh incarnation
// and returns the metadata offset past the registration.
func register(t *testing.T, q *quorumMember, id int32) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	var inc metadata.IncarnationID
	rand.Read(inc[:])
	end, err := q.propose(ctx, &rpcRequest{Kind: rpcRegisterBroker, BrokerID: id, Incarnation: inc,
		Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: uint16(9000 + id)}}})
	if err != nil {
		t.Fatalf("register broker %d: %v", id, err)
	}
	return end
}

// refusedNow reports whether the other end closes c (EOF or reset, not
// a read timeout).
func refusedNow(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(clusterWait))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

func dialControl(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func raftFrame(t *testing.T, m *pb.Message) []byte {
	t.Helper()
	body, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// TestControlPlaneRefusesForgedPeers forges Raft messages and metadata
// RPC connections against a 3-voter quorum: strangers without the secret,
// a peer sending as another voter, a heartbeat committing past the log
// end (on which raft itself panics), garbage, a voter registering
// another broker. Every one is refused and logged, no voter stops, and
// the quorum keeps committing.
func TestControlPlaneRefusesForgedPeers(t *testing.T) {
	log := &capturedLog{}
	members, addrs := startQuorum(t, log)
	for id := int32(1); id <= 3; id++ {
		register(t, members[uint64(id)], id) // forwarded by the followers
	}
	var leader uint64
	waitUntil(t, "a leader", func() bool { leader = members[1].node.Leader(); return leader != 0 })
	follower := uint64(1)
	if leader == 1 {
		follower = 2
	}
	target := addrs[follower]
	wrongSecret := []byte("a secret that is not the cluster's")

	// Metadata RPC: a request with no handshake, a wrong secret, and an
	// authenticated voter registering a broker other than itself.
	rpc := dialControl(t, target)
	rpc.Write(binary.LittleEndian.AppendUint32(nil, rpcMagic))
	w := bufio.NewWriter(rpc)
	// (long enough to be read whole as a handshake answer, and fail)
	writeRPC(w, &rpcRequest{Kind: rpcFenceBroker, BrokerID: 3, Topic: strings.Repeat("x", 100)})
	if !refusedNow(rpc) {
		t.Fatal("an RPC connection with no handshake stayed open")
	}
	bad := dialControl(t, target)
	if err := (&transport.Auth{ID: 3, Secret: wrongSecret}).Dial(bad, rpcMagic, follower); !errors.Is(err, transport.ErrRefused) {
		t.Fatalf("an RPC caller with the wrong secret: %v", err)
	}
	forger := dialControl(t, target)
	if err := (&transport.Auth{ID: 3, Secret: testClusterSecret}).Dial(forger, rpcMagic, follower); err != nil {
		t.Fatal(err)
	}
	writeRPC(bufio.NewWriter(forger), &rpcRequest{Kind: rpcFenceBroker, BrokerID: 2})
	if !refusedNow(forger) {
		t.Fatal("voter 3 fenced broker 2 over RPC")
	}

	// Raft: garbage with no handshake, a wrong secret, then a voter
	// holding the secret that sends as another voter, commits past the
	// log end, and sends garbage.
	junk := dialControl(t, target)
	junk.Write([]byte("\x00\x00\x00\x10 garbage garbage garbage"))
	if !refusedNow(junk) {
		t.Fatal("a Raft connection with no handshake stayed open")
	}
	if err := (&transport.Auth{ID: 3, Secret: wrongSecret}).Dial(dialControl(t, target), transport.ServiceRaft, follower); !errors.Is(err, transport.ErrRefused) {
		t.Fatalf("a Raft peer with the wrong secret: %v", err)
	}
	st, err := members[follower].node.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The impostor holds the secret and takes the id of the third voter,
	// whose link to this follower is idle (it does not lead).
	other := 6 - leader - follower
	impostor := func() net.Conn {
		c := dialControl(t, target)
		if err := (&transport.Auth{ID: other, Secret: testClusterSecret}).Dial(c, transport.ServiceRaft, follower); err != nil {
			t.Fatal(err)
		}
		return c
	}
	asLeader := impostor()
	asLeader.Write(raftFrame(t, &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(leader), To: new(follower), Term: new(st.Term)}))
	if !refusedNow(asLeader) {
		t.Fatal("a peer sending as another voter stayed connected")
	}
	pastEnd := impostor()
	pastEnd.Write(raftFrame(t, &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(other), To: new(follower),
		Term: new(st.Term), Commit: new(st.LastIndex + 1000)}))
	waitUntil(t, "the heartbeat past the log end to be dropped", func() bool {
		if err := members[follower].node.Err(); err != nil {
			t.Fatalf("voter %d stopped: %v", follower, err)
		}
		return log.has("dropped a message", fmt.Sprintf("commits %d past the log end", st.LastIndex+1000))
	})
	pastEnd.Write([]byte{4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	if !refusedNow(pastEnd) {
		t.Fatal("a peer sending garbage stayed connected")
	}

	for _, want := range [][]string{
		{"controller RPC refused a peer", "wrong cluster secret"},
		{"controller RPC refused a peer", "voter 3 sent fence_broker for broker 2"},
		{"controller transport refused a peer", "is not Raft"},
		{"controller transport refused a peer", "wrong cluster secret"},
		{"controller transport refused a peer", fmt.Sprintf("node %d sent a MsgHeartbeat from %d to %d", other, leader, follower)},
		{"controller transport refused a peer", "decode message"},
	} {
		if !log.has(want...) {
			t.Errorf("no log line with %q", want)
		}
	}

	// No voter stopped, and the quorum commits through every voter.
	for id := int32(1); id <= 3; id++ {
		end := register(t, members[uint64(id)], id)
		for _, q := range members {
			waitUntil(t, fmt.Sprintf("voter %d to apply offset %d", q.voterID, end), func() bool { return q.node.Image().Offset() >= end })
		}
	}
	for id, q := range members {
		if err := q.node.Err(); err != nil {
			t.Fatalf("voter %d stopped: %v", id, err)
		}
	}
}

// FuzzRPCRequest reads a metadata RPC request from arbitrary bytes as an
// authenticated connection does, checks its caller and turns it into a
// command: nothing panics, and a broker command passes the caller check
// only for the caller's own broker id.
func FuzzRPCRequest(f *testing.F) {
	var buf strings.Builder
	w := bufio.NewWriter(&buf)
	writeRPC(w, &rpcRequest{Kind: rpcRegisterBroker, BrokerID: 2, Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "h", Port: 1}}})
	writeRPC(w, &rpcRequest{Kind: rpcCreateTopic, Topic: "t", Configs: map[string]string{"partitions": "3"}})
	writeRPC(w, &rpcRequest{Kind: rpcFenceBroker, BrokerID: 3})
	writeRPC(w, &rpcRequest{Kind: rpcAlterPartition, BrokerID: 2, LeaderEpoch: 1, PartitionEpoch: 3, ISR: []int32{2, 3}})
	f.Add(uint64(2), []byte(buf.String()))
	f.Add(uint64(3), []byte{5, 0, 0, 0, '{', '"', 'k', '"', ':'})
	f.Add(uint64(1), binary.LittleEndian.AppendUint32(nil, rpcMaxBytes+1))
	f.Fuzz(func(t *testing.T, peer uint64, b []byte) {
		r := bufio.NewReader(strings.NewReader(string(b)))
		for {
			var req rpcRequest
			if readRPC(r, &req) != nil {
				return
			}
			err := req.checkCaller(peer)
			switch req.Kind {
			case rpcRegisterBroker, rpcBrokerHeartbeat, rpcControlledShutdown, rpcFenceBroker, rpcAlterPartition:
				if (err == nil) != (req.BrokerID > 0 && uint64(req.BrokerID) == peer) {
					t.Fatalf("caller %d, %s for broker %d: %v", peer, req.Kind, req.BrokerID, err)
				}
			default:
				if err != nil {
					t.Fatalf("caller %d, %s: %v", peer, req.Kind, err)
				}
			}
			req.command()
		}
	})
}

// TestControllerRPCBoundsConnections: the RPC listener holds at most
// rpcMaxConns connections (one more is closed at once and logged), closes
// an authenticated caller that sends no request within the idle
// deadline, and still answers a caller once room is free.
func TestControllerRPCBoundsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := &capturedLog{}
	auth := &transport.Auth{ID: 1, Secret: testClusterSecret, Accepts: func(id uint64) bool { return id == 2 }}
	mux := newRPCMux(ln, auth, 100*time.Millisecond, slog.New(log), func(context.Context, *rpcRequest, uint64) rpcReply {
		return rpcReply{Outcome: rpcOK, EndOffset: 42}
	}, nil)
	defer mux.Close()
	addr := ln.Addr().String()
	var held []net.Conn
	for range rpcMaxConns {
		held = append(held, dialControl(t, addr))
	}
	waitUntil(t, "a connection over the bound to be refused", func() bool {
		c := dialControl(t, addr)
		return refusedNow(c) && log.has("controller RPC refused a peer", fmt.Sprintf("%d connections open", rpcMaxConns))
	})
	for _, c := range held {
		c.Close()
	}
	caller := &transport.Auth{ID: 2, Secret: testClusterSecret}
	var idle net.Conn
	waitUntil(t, "room for a caller", func() bool {
		idle = dialControl(t, addr)
		return caller.Dial(idle, rpcMagic, 1) == nil
	})
	if !refusedNow(idle) {
		t.Fatal("a caller silent past the idle deadline stayed connected")
	}
	reply, err := callRPC(context.Background(), caller, 1, addr, &rpcRequest{Kind: rpcStatus})
	if err != nil || reply.EndOffset != 42 {
		t.Fatalf("call after the refusals: %+v, %v", reply, err)
	}
}
