package controller

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/strata-db/strata/server/metadata"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Every message from the network is checked here before it reaches raft's
// Step. etcd raft trusts its peers: it panics on inputs a correct peer
// never sends (a heartbeat committing past the end of the log, a vote
// with term 0, a heartbeat response whose context is not 8 bytes, a
// MsgProp with no entries, a forwarded message carrying a term, ...), and
// a panic stops the whole broker. The checks below refuse every such
// input for go.etcd.io/raft/v3 v3.7.0, whose Step was read for them; a
// recover() around Step (loop.go) is the last guard, never the check.

// errRefusedMessage marks a message refused before Step.
var errRefusedMessage = errors.New("controller: refused message")

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRefusedMessage, fmt.Sprintf(format, args...))
}

// fromNetwork lists the message types a voter sends another. Everything
// else is local to a node (MsgHup, MsgBeat, MsgUnreachable, MsgSnapStatus,
// MsgCheckQuorum, the storage messages, MsgForgetLeader), or travels only
// for features this controller does not use: proposal forwarding
// (MsgProp; DisableProposalForwarding is set) and leadership transfer
// (MsgTransferLeader, MsgTimeoutNow).
var fromNetwork = map[pb.MessageType]bool{
	pb.MsgApp: true, pb.MsgAppResp: true,
	pb.MsgVote: true, pb.MsgVoteResp: true,
	pb.MsgPreVote: true, pb.MsgPreVoteResp: true,
	pb.MsgSnap:      true,
	pb.MsgHeartbeat: true, pb.MsgHeartbeatResp: true,
	pb.MsgReadIndex: true, pb.MsgReadIndexResp: true,
}

// heartbeatContextBytes is the length of a ReadOnlySafe heartbeat's
// context (a little-endian counter the leader reads back with no check).
const heartbeatContextBytes = 8

// checkMessage refuses what no correct voter sends, knowing only who we
// are and who the voters are.
func checkMessage(m *pb.Message, self uint64, voters []uint64) error {
	if m == nil {
		return refused("no message")
	}
	t := m.GetType()
	if !fromNetwork[t] {
		return refused("%s never comes from another voter", t)
	}
	from := m.GetFrom()
	if from == self || !slices.Contains(voters, from) {
		return refused("%s from %d, who is not another voter", t, from)
	}
	if m.GetTo() != self {
		return refused("%s for %d reached voter %d", t, m.GetTo(), self)
	}
	// A forwarded read carries no term (raft's send panics when it must
	// forward one that does); every other message has one, and raft takes
	// term 0 as a local message.
	if (t == pb.MsgReadIndex) != (m.GetTerm() == 0) {
		return refused("%s with term %d", t, m.GetTerm())
	}
	if len(m.GetResponses()) > 0 {
		return refused("%s carries local storage responses", t)
	}
	switch t {
	case pb.MsgApp:
		return checkAppend(m)
	case pb.MsgAppResp:
		if m.GetReject() && m.GetRejectHint() > m.GetIndex() {
			return refused("append rejection hint %d past the rejected index %d", m.GetRejectHint(), m.GetIndex())
		}
	case pb.MsgHeartbeat, pb.MsgHeartbeatResp:
		if n := len(m.GetContext()); n != 0 && n != heartbeatContextBytes {
			return refused("%s context of %d bytes", t, n)
		}
	case pb.MsgVote, pb.MsgPreVote:
		// A context forces a vote during a leader's lease: only a
		// leadership transfer sends one.
		if len(m.GetContext()) > 0 {
			return refused("%s with a context", t)
		}
	case pb.MsgReadIndex, pb.MsgReadIndexResp:
		if len(m.GetEntries()) != 1 || m.GetEntries()[0] == nil {
			return refused("%s with %d entries, want 1", t, len(m.GetEntries()))
		}
	case pb.MsgSnap:
		return checkSnapshot(m, voters)
	}
	return nil
}

// checkAppend refuses entries that do not extend the message's anchor
// one index at a time with terms that never fall nor pass the sender's,
// and entries this controller never writes.
func checkAppend(m *pb.Message) error {
	ents := m.GetEntries()
	if m.GetIndex() > math.MaxUint64-uint64(len(ents)) {
		return refused("append of %d entries after index %d overflows", len(ents), m.GetIndex())
	}
	if m.GetLogTerm() > m.GetTerm() {
		return refused("append anchored at term %d from term %d", m.GetLogTerm(), m.GetTerm())
	}
	term := m.GetLogTerm()
	for i, e := range ents {
		if e == nil {
			return refused("append entry %d missing", i)
		}
		if want := m.GetIndex() + 1 + uint64(i); e.GetIndex() != want {
			return refused("append entry %d has index %d, want %d", i, e.GetIndex(), want)
		}
		if e.GetTerm() == 0 || e.GetTerm() < term || e.GetTerm() > m.GetTerm() {
			return refused("append entry %d of term %d after term %d from term %d", e.GetIndex(), e.GetTerm(), term, m.GetTerm())
		}
		term = e.GetTerm()
		if e.GetType() != pb.EntryNormal {
			return refused("append entry %d is a %s; membership is static", e.GetIndex(), e.GetType())
		}
		if len(e.GetData()) > 0 {
			if _, _, _, err := decodeEntry(e.GetData()); err != nil {
				return refused("append entry %d: %v", e.GetIndex(), err)
			}
		}
	}
	return nil
}

// checkSnapshot refuses a snapshot with no position, or one whose
// configuration is not exactly the static voters (raft panics restoring
// some configurations).
func checkSnapshot(m *pb.Message, voters []uint64) error {
	s := m.GetSnapshot()
	md := s.GetMetadata()
	if s == nil || md == nil {
		return refused("snapshot message without a snapshot")
	}
	if md.GetIndex() == 0 || md.GetTerm() == 0 || md.GetTerm() > m.GetTerm() {
		return refused("snapshot at index %d, term %d, from term %d", md.GetIndex(), md.GetTerm(), m.GetTerm())
	}
	cs := md.GetConfState()
	got := slices.Sorted(slices.Values(cs.GetVoters()))
	if !slices.Equal(got, voters) || len(cs.GetLearners()) > 0 || len(cs.GetVotersOutgoing()) > 0 ||
		len(cs.GetLearnersNext()) > 0 || cs.GetAutoLeave() {
		return refused("snapshot configuration %v is not the voters %v", cs, voters)
	}
	// raft compares the configuration it restored with this one by
	// proto.Equal, unknown fields included, and panics if they differ.
	if len(cs.ProtoReflect().GetUnknown()) > 0 {
		return refused("snapshot configuration with unknown fields")
	}
	return nil
}

// restoredSnapshot is the state of the snapshot admit last checked, kept
// so that installing it does not decode it twice.
type restoredSnapshot struct {
	index uint64
	state *metadata.State
}

// admit runs checkMessage, then the checks that need the node's state; it
// runs on the loop, between Steps, when every entry raft holds is in the
// storage (handleReady drains each Ready before the next input), so the
// storage's last index is raft's.
func (n *Node) admit(m *pb.Message) error {
	if err := checkMessage(m, n.cfg.ID, n.cfg.Voters); err != nil {
		return err
	}
	last, err := n.store.LastIndex()
	if err != nil {
		return err
	}
	switch m.GetType() {
	case pb.MsgHeartbeat:
		// raft commits a heartbeat's index as it is and panics past the
		// end of the log; a leader sends at most what we acknowledged.
		if m.GetCommit() > last {
			return refused("heartbeat from %d commits %d past the log end %d", m.GetFrom(), m.GetCommit(), last)
		}
	case pb.MsgAppResp:
		// No voter can hold more of our log than we wrote.
		if m.GetIndex() > last {
			return refused("append response from %d acknowledges %d past the log end %d", m.GetFrom(), m.GetIndex(), last)
		}
	case pb.MsgSnap:
		md := m.GetSnapshot().GetMetadata()
		st, err := metadata.Restore(m.GetSnapshot().GetData())
		if err != nil {
			return refused("snapshot %d from %d: %v", md.GetIndex(), m.GetFrom(), err)
		}
		n.restored = &restoredSnapshot{index: md.GetIndex(), state: st}
	}
	return nil
}
