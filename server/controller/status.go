package controller

import (
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// Status is one voter's view of the quorum, for `strata cluster describe`.
type Status struct {
	ID      uint64
	Leader  uint64 // 0 when none is known
	Term    uint64
	Commit  uint64 // Raft commit index
	Applied uint64 // Raft index applied to the metadata state
	// LastIndex is this voter's log end (the index of its last entry).
	LastIndex uint64
	// MetadataOffset is the number of metadata records applied.
	MetadataOffset uint64
	// StateHash is metadata.State.Hash of the applied state: voters at
	// the same Applied index must report the same hash.
	StateHash [32]byte
	// Voters is filled on the leader only: what it knows of each voter's
	// log.
	Voters []VoterStatus
}

// VoterStatus is the leader's view of one voter.
type VoterStatus struct {
	ID uint64
	// LogEnd is the index up to which the voter's log is known to match
	// the leader's.
	LogEnd uint64
	// Lag is how many entries the voter is behind the leader's log end.
	Lag uint64
	// Active says whether the leader heard from the voter within the
	// last election timeout.
	Active bool
}

func (n *Node) status() Status {
	bs := n.rn.BasicStatus()
	last, _ := n.store.LastIndex()
	st := Status{
		ID: n.cfg.ID, Leader: bs.Lead, Term: bs.HardState.GetTerm(), Commit: bs.HardState.GetCommit(),
		Applied: n.applied, LastIndex: last, MetadataOffset: n.state.Offset(), StateHash: n.state.Hash(),
	}
	if bs.RaftState != raft.StateLeader {
		return st
	}
	n.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		v := VoterStatus{ID: id, LogEnd: pr.Match, Active: pr.RecentActive || id == n.cfg.ID}
		if id == n.cfg.ID {
			v.LogEnd = last
		}
		if last > v.LogEnd {
			v.Lag = last - v.LogEnd
		}
		st.Voters = append(st.Voters, v)
	})
	slices.SortFunc(st.Voters, func(a, b VoterStatus) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return st
}
