package controller

import (
	"errors"
	"fmt"

	"github.com/strata-db/strata/server/metadata"
)

// Result is a committed command: the Raft index of its entry, the metadata
// offset of its first record and the records (none for a command that
// changed nothing, such as a repeated registration).
type Result struct {
	Index   uint64
	Offset  uint64
	Records []metadata.Record
}

type outcome struct {
	res Result
	err error
}

type proposal struct {
	cmd  Command
	done chan outcome // buffered: the loop never blocks on it
}

func (p *proposal) finish(res Result, err error) {
	if p == nil {
		return
	}
	p.done <- outcome{res, err}
}

func (n *Node) handleProposal(p *proposal) {
	switch {
	case !n.leading:
		p.finish(Result{}, &NotLeaderError{Leader: n.lead})
	case n.ctl == nil:
		// A new leader still applying the entries of earlier terms.
		if len(n.deferred) >= maxDeferred {
			p.finish(Result{}, ErrBusy)
			return
		}
		n.deferred = append(n.deferred, p)
	default:
		n.runCommand(p.cmd, p)
	}
}

// runCommand validates cmd against the Controller and proposes its
// records as one entry. p is nil for the leader's own commands (Tick),
// which propose nothing when they produce no records. A caller's command
// with no records is still proposed, so that its answer waits for every
// earlier proposal to commit.
func (n *Node) runCommand(cmd Command, p *proposal) {
	records, err := cmd.run(n.ctl, n.cfg.NowMs())
	if err != nil {
		var rej *metadata.Rejection
		if !errors.As(err, &rej) {
			// The Controller's state refused its own records: it may be
			// half-applied, so rebuild it.
			n.rebuildController()
		} else if p != nil && len(n.inflight) > 0 {
			// The rejection may rest on records not yet committed; hold
			// it until they are, or a caller could see a rejection that
			// no committed state explains.
			n.held = append(n.held, heldRejection{afterSeq: n.inflight[len(n.inflight)-1].seq, p: p, err: err})
			return
		}
		p.finish(Result{}, err)
		return
	}
	if p == nil && len(records) == 0 {
		return
	}
	seq := n.nextSeq
	n.nextSeq++
	data := appendEntry(nil, n.incarnation, seq, records)
	if len(data) > maxProposalBytes {
		n.rebuildController()
		p.finish(Result{}, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data)))
		return
	}
	if err := n.rn.Propose(data); err != nil {
		// Dropped (leadership transfer, or too much uncommitted): the
		// Controller already applied the records, so rebuild it.
		n.rebuildController()
		p.finish(Result{}, &NotLeaderError{Leader: n.lead})
		return
	}
	n.inflight = append(n.inflight, inflight{seq: seq, records: records})
	if p != nil {
		n.waiters[seq] = p
	}
}

// heldRejection is a rejection waiting for the proposals it saw.
type heldRejection struct {
	afterSeq uint64
	p        *proposal
	err      error
}

// releaseHeld answers the held rejections whose proposals are applied.
func (n *Node) releaseHeld(appliedSeq uint64) {
	k := 0
	for k < len(n.held) && n.held[k].afterSeq <= appliedSeq {
		n.held[k].p.finish(Result{}, n.held[k].err)
		k++
	}
	n.held = n.held[k:]
}

// dropHeld answers every held rejection with err: the proposals it rested
// on may never commit, and nothing of its own was proposed.
func (n *Node) dropHeld(err error) {
	for _, h := range n.held {
		h.p.finish(Result{}, err)
	}
	n.held = nil
}
