package controller

import (
	"fmt"
	"time"

	"go.etcd.io/raft/v3"

	pb "go.etcd.io/raft/v3/raftpb"
)

// run is the node's goroutine: it feeds the RawNode ticks, messages and
// proposals and handles each Ready.
func (n *Node) run() {
	defer close(n.doneC)
	defer n.shutdown()
	ticks := n.cfg.Ticks
	if ticks == nil {
		t := time.NewTicker(time.Duration(n.cfg.TickMs) * time.Millisecond)
		defer t.Stop()
		c := make(chan struct{}, 1)
		stopFwd := make(chan struct{})
		defer close(stopFwd)
		go func() {
			for {
				select {
				case <-t.C:
					select {
					case c <- struct{}{}:
					default:
					}
				case <-stopFwd:
					return
				}
			}
		}()
		ticks = c
	}
	if len(n.cfg.Voters) == 1 {
		// A lone voter needs nobody's vote: campaign at once rather than
		// wait out an election timeout, so that a single-node broker is
		// ready as soon as it has replayed its log.
		if err := n.rn.Campaign(); err != nil {
			n.fail(fmt.Errorf("controller: campaign: %w", err))
			return
		}
		for n.rn.HasReady() {
			if err := n.handleReady(); err != nil {
				n.fail(err)
				return
			}
		}
	}
	for {
		select {
		case <-n.stopC:
			return
		case <-ticks:
			n.rn.Tick()
			n.tickDuties()
		case m := <-n.inbox:
			if err := n.step(m); err != nil {
				n.fail(err)
				return
			}
		case r := <-n.reports:
			if r.snapshot {
				status := raft.SnapshotFinish
				if !r.snapshotOK {
					status = raft.SnapshotFailure
				}
				n.rn.ReportSnapshot(r.peer, status)
			} else {
				n.rn.ReportUnreachable(r.peer)
			}
		case p := <-n.props:
			n.handleProposal(p)
		case r := <-n.readC:
			n.handleRead(r)
		case c := <-n.statusC:
			c <- n.status()
		}
		for n.rn.HasReady() {
			if err := n.handleReady(); err != nil {
				n.fail(err)
				return
			}
		}
		n.restored = nil
	}
}

// step hands a message from the network to raft if admit lets it
// through; a refused message is logged (rate-limited) and dropped, as if
// lost. It returns an error only when raft panicked anyway: its state may
// be half-changed, so the node stops rather than go on with it.
func (n *Node) step(m *pb.Message) (err error) {
	if err := n.admit(m); err != nil {
		if ok, suppressed := n.refusals.Allow(time.Now()); ok {
			n.cfg.Logger.Warningf("controller: voter %d dropped a message (%d more not logged): %v", n.cfg.ID, suppressed, err)
		}
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("controller: raft panicked on a %s from %d that passed the checks: %v", m.GetType(), m.GetFrom(), r)
		}
	}()
	_ = n.rn.Step(m) // a stale message is refused by raft; nothing to do
	return nil
}

// handleReady persists, sends, then applies, in the order raft requires:
// nothing is sent before the state it reflects is durable, and nothing is
// applied before it is committed.
func (n *Node) handleReady() error {
	rd := n.rn.Ready()
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.store.ApplySnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if err := n.store.Append(rd.Entries); err != nil {
		return err
	}
	if err := n.store.SetHardState(rd.HardState); err != nil {
		return err
	}
	if n.cfg.Transport != nil && len(rd.Messages) > 0 {
		n.cfg.Transport.Send(rd.Messages)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.installSnapshot(rd.Snapshot.GetData(), rd.Snapshot.GetMetadata().GetIndex()); err != nil {
			return err
		}
	}
	n.observeRole()
	if err := n.applyEntries(rd.CommittedEntries); err != nil {
		return err
	}
	n.readStates(rd.ReadStates)
	n.rn.Advance(rd)
	if err := n.maybeSnapshot(); err != nil {
		return fmt.Errorf("controller: snapshot at %d: %w", n.applied, err)
	}
	return nil
}

// observeRole notices leadership changes: a new leadership starts with no
// Controller (it is built once the leader has applied an entry of its own
// term, so that it sees every earlier committed entry); a lost one answers
// its waiters ErrOutcomeUnknown.
func (n *Node) observeRole() {
	st := n.rn.BasicStatus()
	leading := st.RaftState == raft.StateLeader
	term := st.HardState.GetTerm()
	if n.leading && (!leading || term != n.term) {
		n.endLeadership(st.Lead)
	}
	if leading && !n.leading {
		n.leading = true
	}
	n.term = term
	if st.Lead != n.lead {
		n.lead = st.Lead
		n.leader.Store(st.Lead)
		n.reads.failUnindexed(&NotLeaderError{Leader: st.Lead})
	}
}

func (n *Node) endLeadership(newLead uint64) {
	n.leading = false
	n.ctl = nil
	n.inflight = nil
	for seq, p := range n.waiters {
		p.finish(Result{}, fmt.Errorf("%w: leadership moved to %d", ErrOutcomeUnknown, newLead))
		delete(n.waiters, seq)
	}
	for _, p := range n.deferred {
		p.finish(Result{}, &NotLeaderError{Leader: newLead})
	}
	n.deferred = nil
	n.dropHeld(&NotLeaderError{Leader: newLead})
}

// shutdown answers everyone still waiting when the loop ends.
func (n *Node) shutdown() {
	for seq, p := range n.waiters {
		p.finish(Result{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ErrStopped))
		delete(n.waiters, seq)
	}
	for _, p := range n.deferred {
		p.finish(Result{}, ErrStopped)
	}
	n.deferred = nil
	n.dropHeld(ErrStopped)
	n.reads.failAll(ErrStopped)
	n.subs.closeAll()
	for {
		select {
		case p := <-n.props:
			p.finish(Result{}, ErrStopped)
		case r := <-n.readC:
			r.finish(nil, ErrStopped)
		default:
			return
		}
	}
}

// tickDuties runs the leader's session check on every tick.
func (n *Node) tickDuties() {
	if n.ctl == nil {
		return
	}
	n.runCommand(tickCommand(n.cfg.OnFence), nil)
}
