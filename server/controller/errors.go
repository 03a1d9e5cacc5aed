package controller

import (
	"errors"
	"fmt"
)

// NotLeaderError answers a command sent to a voter that is not the leader.
// Leader is the leader's id, or 0 when this voter knows of none.
type NotLeaderError struct{ Leader uint64 }

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return "controller: not the leader, and no leader is known"
	}
	return fmt.Sprintf("controller: not the leader; voter %d leads", e.Leader)
}

var (
	// ErrOutcomeUnknown: the command was proposed, but leadership moved or
	// the caller stopped waiting before it committed; it may or may not
	// be applied. Read the metadata to find out.
	ErrOutcomeUnknown = errors.New("controller: outcome unknown")
	// ErrStopped: the node stopped (or failed; see Node.Err).
	ErrStopped = errors.New("controller: node stopped")
	// ErrBusy: too many commands or reads are waiting; retry later.
	ErrBusy = errors.New("controller: too many requests waiting")
	// ErrTooLarge: the command's records exceed maxProposalBytes.
	ErrTooLarge = errors.New("controller: command too large")
)
