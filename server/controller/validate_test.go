package controller

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/controller/transport"
	"github.com/strata-db/strata/server/metadata"

	pb "go.etcd.io/raft/v3/raftpb"
)

// sinkTransport takes a voter's outgoing messages and drops them: the
// tests below drive one voter's loop functions by hand.
type sinkTransport struct{}

func (sinkTransport) Start(transport.Handler) error { return nil }
func (sinkTransport) Send([]*pb.Message)            {}
func (sinkTransport) Close() error                  { return nil }

// handNode is voter 1 of {1, 2, 3} on an in-memory filesystem, not
// started: the test calls step and handleReady as the loop would.
func handNode(tb testing.TB) *Node {
	tb.Helper()
	n, err := New(Config{ID: 1, Voters: []uint64{1, 2, 3}, Dir: "raft", FS: segment.NewMemFS(), Transport: sinkTransport{}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.store.Close() })
	return n
}

// stepAndDrain is one turn of the loop for message m.
func stepAndDrain(n *Node, m *pb.Message) error {
	if err := n.step(m); err != nil {
		return err
	}
	for n.rn.HasReady() {
		if err := n.handleReady(); err != nil {
			return err
		}
	}
	n.restored = nil
	return nil
}

// follow makes voter 1 a follower of voter 2 in term 1 holding entries
// 1..2 (an empty leader entry and one with records), committed.
func follow(tb testing.TB, n *Node) {
	tb.Helper()
	batch := appendEntry(nil, 7, 1, nil)
	m := &pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1)),
		Index: new(uint64(0)), LogTerm: new(uint64(0)), Commit: new(uint64(2)),
		Entries: []*pb.Entry{{Index: new(uint64(1)), Term: new(uint64(1))}, {Index: new(uint64(2)), Term: new(uint64(1)), Data: batch}}}
	if err := stepAndDrain(n, m); err != nil {
		tb.Fatal(err)
	}
	if last, _ := n.store.LastIndex(); last != 2 || n.rn.BasicStatus().Lead != 2 {
		tb.Fatalf("after the first append: last index %d, leader %d", last, n.rn.BasicStatus().Lead)
	}
}

// lead makes voter 1 the leader of term 1 with the votes of voter 2,
// its log holding the empty entry of its leadership.
func lead(tb testing.TB, n *Node) {
	tb.Helper()
	if err := n.rn.Campaign(); err != nil {
		tb.Fatal(err)
	}
	for n.rn.HasReady() {
		if err := n.handleReady(); err != nil {
			tb.Fatal(err)
		}
	}
	for _, t := range []pb.MessageType{pb.MsgPreVoteResp, pb.MsgVoteResp} {
		if err := stepAndDrain(n, msg(t, 2, 1)); err != nil {
			tb.Fatal(err)
		}
	}
	if n.rn.BasicStatus().Lead != 1 {
		tb.Fatalf("voter 1 does not lead: %+v", n.rn.BasicStatus())
	}
}

func msg(t pb.MessageType, from, term uint64) *pb.Message {
	return &pb.Message{Type: t.Enum(), From: new(from), To: new(uint64(1)), Term: new(term)}
}

// forged lists messages no correct voter sends voter 1 in the state
// follow leaves it in. panics says whether raft v3.7.0 panics on the
// message when nothing checks it first.
var forged = []struct {
	name   string
	m      func() *pb.Message
	panics bool
}{
	{"heartbeat committing past the log end", func() *pb.Message {
		m := msg(pb.MsgHeartbeat, 2, 1)
		m.Commit = new(uint64(1000))
		return m
	}, true},
	// (raft panics on this one when it has no leader and may vote.)
	{"vote with term 0", func() *pb.Message { return msg(pb.MsgVote, 3, 0) }, false},
	{"heartbeat response with a 3-byte context", func() *pb.Message {
		m := msg(pb.MsgHeartbeatResp, 2, 1)
		m.Context = []byte{1, 2, 3}
		return m
	}, false},
	{"forwarded read with a term", func() *pb.Message {
		m := msg(pb.MsgReadIndex, 3, 1)
		m.Entries = []*pb.Entry{{Data: []byte("ctx")}}
		return m
	}, true},
	{"leadership transfer with a term", func() *pb.Message { return msg(pb.MsgTransferLeader, 3, 1) }, true},
	{"empty proposal", func() *pb.Message { return msg(pb.MsgProp, 3, 0) }, false},
	{"local campaign", func() *pb.Message { return msg(pb.MsgHup, 3, 0) }, false},
	{"wrong sender: itself", func() *pb.Message { return msg(pb.MsgHeartbeat, 1, 1) }, true},
	{"wrong sender: not a voter", func() *pb.Message { return msg(pb.MsgHeartbeat, 9, 1) }, false},
	{"wrong recipient", func() *pb.Message {
		m := msg(pb.MsgHeartbeat, 2, 1)
		m.To = new(uint64(3))
		return m
	}, false},
	{"append with a gap", func() *pb.Message {
		m := msg(pb.MsgApp, 2, 1)
		m.Index, m.LogTerm = new(uint64(2)), new(uint64(1))
		m.Entries = []*pb.Entry{{Index: new(uint64(5)), Term: new(uint64(1))}}
		return m
	}, false},
	{"append rewriting a committed entry", func() *pb.Message {
		m := msg(pb.MsgApp, 2, 2)
		m.Index, m.LogTerm = new(uint64(2)), new(uint64(1))
		m.Entries = []*pb.Entry{{Index: new(uint64(2)), Term: new(uint64(2))}}
		return m
	}, true},
	{"append of a membership change", func() *pb.Message {
		m := msg(pb.MsgApp, 2, 1)
		m.Index, m.LogTerm = new(uint64(2)), new(uint64(1))
		m.Entries = []*pb.Entry{{Index: new(uint64(3)), Term: new(uint64(1)), Type: pb.EntryConfChange.Enum(), Data: []byte{0xff}}}
		return m
	}, false},
	{"append of an undecodable entry", func() *pb.Message {
		m := msg(pb.MsgApp, 2, 1)
		m.Index, m.LogTerm = new(uint64(2)), new(uint64(1))
		m.Entries = []*pb.Entry{{Index: new(uint64(3)), Term: new(uint64(1)), Data: []byte{9, 9}}}
		return m
	}, false},
	{"append anchored at the last index", func() *pb.Message {
		m := msg(pb.MsgApp, 2, 1)
		m.Index = new(uint64(math.MaxUint64))
		m.Entries = []*pb.Entry{{Index: new(uint64(0)), Term: new(uint64(1))}}
		return m
	}, false},
	{"snapshot without metadata", func() *pb.Message {
		m := msg(pb.MsgSnap, 2, 1)
		m.Snapshot = &pb.Snapshot{}
		return m
	}, false},
	{"snapshot naming a learner", func() *pb.Message {
		m := msg(pb.MsgSnap, 2, 1)
		m.Snapshot = &pb.Snapshot{Data: metadata.NewState().AppendSnapshot(nil), Metadata: &pb.SnapshotMetadata{
			Index: new(uint64(10)), Term: new(uint64(1)),
			ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{1}}}}
		return m
	}, true},
	{"snapshot configuration with an unknown field", func() *pb.Message {
		m := msg(pb.MsgSnap, 2, 1)
		cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
		cs.ProtoReflect().SetUnknown([]byte{0x30, 0x30}) // field 6, varint 48
		m.Snapshot = &pb.Snapshot{Data: metadata.NewState().AppendSnapshot(nil), Metadata: &pb.SnapshotMetadata{
			Index: new(uint64(10)), Term: new(uint64(1)), ConfState: cs}}
		return m
	}, true},
	{"snapshot of garbage", func() *pb.Message {
		m := msg(pb.MsgSnap, 2, 1)
		m.Snapshot = &pb.Snapshot{Data: []byte("garbage"), Metadata: &pb.SnapshotMetadata{
			Index: new(uint64(10)), Term: new(uint64(1)), ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}}
		return m
	}, false},
	{"append acknowledgment past the log end", func() *pb.Message {
		m := msg(pb.MsgAppResp, 2, 1)
		m.Index = new(uint64(1 << 40))
		return m
	}, false},
}

// TestForgedRaftMessagesNeverReachStep forges each message against a
// follower. Where raft itself panics on it, the test shows that first,
// on a node left unchecked; then a checked node drops it, keeps its term,
// log and leader, and still accepts the next real heartbeat.
func TestForgedRaftMessagesNeverReachStep(t *testing.T) {
	for _, tc := range forged {
		t.Run(tc.name, func(t *testing.T) {
			if tc.panics {
				raw := handNode(t)
				follow(t, raw)
				if !panicsInStep(raw, tc.m()) {
					t.Fatal("raft took the message without panicking: the case proves nothing")
				}
			}
			n := handNode(t)
			follow(t, n)
			before := n.rn.BasicStatus()
			if err := n.admit(tc.m()); !errors.Is(err, errRefusedMessage) {
				t.Fatalf("admitted: %v", err)
			}
			if err := stepAndDrain(n, tc.m()); err != nil {
				t.Fatal(err)
			}
			after := n.rn.BasicStatus()
			if last, _ := n.store.LastIndex(); last != 2 || after.HardState.GetTerm() != before.HardState.GetTerm() ||
				after.Lead != 2 || after.HardState.GetCommit() != 2 {
				t.Fatalf("the refused message changed the voter: last %d, status %+v", last, after)
			}
			hb := msg(pb.MsgHeartbeat, 2, 1)
			hb.Commit = new(uint64(2))
			if err := n.admit(hb); err != nil {
				t.Fatalf("a real heartbeat is refused: %v", err)
			}
		})
	}
}

func panicsInStep(n *Node, m *pb.Message) (panicked bool) {
	defer func() { panicked = recover() != nil }()
	_ = n.rn.Step(m)
	for n.rn.HasReady() {
		_ = n.handleReady()
	}
	return false
}

// FuzzStepChecked decodes a Raft message from the fuzzer's bytes as the
// transport does and runs it through the loop's step and Ready handling
// on a follower (leader false) or a leader: whatever the bytes, nothing
// panics and raft never panics on a message the checks let through.
func FuzzStepChecked(f *testing.F) {
	for _, tc := range forged {
		b, err := proto.Marshal(tc.m())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(false, b)
		f.Add(true, b)
	}
	for _, m := range []*pb.Message{
		{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1)), Commit: new(uint64(2))},
		{Type: pb.MsgVote.Enum(), From: new(uint64(3)), To: new(uint64(1)), Term: new(uint64(5)), Index: new(uint64(9)), LogTerm: new(uint64(4))},
		{Type: pb.MsgApp.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1)), Index: new(uint64(2)), LogTerm: new(uint64(1)),
			Commit: new(uint64(3)), Entries: []*pb.Entry{{Index: new(uint64(3)), Term: new(uint64(1))}}},
		{Type: pb.MsgReadIndexResp.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1)), Index: new(uint64(2)),
			Entries: []*pb.Entry{{Data: []byte("12345678")}}},
		{Type: pb.MsgAppResp.Enum(), From: new(uint64(3)), To: new(uint64(1)), Term: new(uint64(1)), Index: new(uint64(1))},
		{Type: pb.MsgAppResp.Enum(), From: new(uint64(3)), To: new(uint64(1)), Term: new(uint64(1)), Index: new(uint64(1)),
			Reject: new(true), RejectHint: new(uint64(0)), LogTerm: new(uint64(0))},
		{Type: pb.MsgHeartbeatResp.Enum(), From: new(uint64(3)), To: new(uint64(1)), Term: new(uint64(1)), Context: []byte("12345678")},
		{Type: pb.MsgReadIndex.Enum(), From: new(uint64(3)), To: new(uint64(1)), Entries: []*pb.Entry{{Data: []byte("12345678")}}},
	} {
		b, _ := proto.Marshal(m)
		f.Add(false, b)
		f.Add(true, b)
	}
	f.Fuzz(func(t *testing.T, leader bool, b []byte) {
		m := &pb.Message{}
		if proto.Unmarshal(b, m) != nil {
			return
		}
		n := handNode(t)
		if leader {
			lead(t, n)
		} else {
			follow(t, n)
		}
		if err := stepAndDrain(n, m); err != nil {
			t.Fatalf("%v: %v", m, err)
		}
	})
}

// armedLogger panics on raft's next Info line once armed: a stand-in for a
// raft panic on a message that passed the checks.
type armedLogger struct {
	discardLogger
	armed bool
}

func (l *armedLogger) Infof(f string, v ...any) {
	if l.armed {
		panic(fmt.Sprintf(f, v...))
	}
}

// TestStepRecoversAsLastGuard: should raft panic inside Step on a message
// the checks let through, step returns an error naming it (and the loop
// stops the node with it) instead of the process going down.
func TestStepRecoversAsLastGuard(t *testing.T) {
	log := &armedLogger{}
	n, err := New(Config{ID: 1, Voters: []uint64{1, 2, 3}, Dir: "raft", FS: segment.NewMemFS(), Transport: sinkTransport{}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer n.store.Close()
	follow(t, n)
	log.armed = true
	// A real heartbeat of a later term: raft logs the new term at Info.
	hb := msg(pb.MsgHeartbeat, 3, 2)
	hb.Commit = new(uint64(2))
	if err := n.admit(hb); err != nil {
		t.Fatalf("the heartbeat is refused: %v", err)
	}
	err = n.step(hb)
	if err == nil || !strings.Contains(err.Error(), "raft panicked on a MsgHeartbeat from 3") {
		t.Fatalf("step after a panic in raft: %v", err)
	}
}
