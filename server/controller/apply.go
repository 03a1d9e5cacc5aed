package controller

import (
	"fmt"

	"github.com/strata-db/strata/server/metadata"

	pb "go.etcd.io/raft/v3/raftpb"
)

// applyEntries applies committed entries to the state, answers the
// callers waiting for them and publishes the new Image. A record the state
// refuses stops the node: every voter would refuse it, so the log is
// corrupt or was written by an incompatible controller.
func (n *Node) applyEntries(ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	changed := false
	for _, e := range ents {
		if e.GetIndex() <= n.applied {
			continue // already in the snapshot we restored
		}
		if e.GetIndex() != n.applied+1 {
			return fmt.Errorf("controller: committed entry %d after applied %d", e.GetIndex(), n.applied)
		}
		if e.GetType() != pb.EntryNormal {
			return fmt.Errorf("controller: entry %d is a %s; membership changes are not supported", e.GetIndex(), e.GetType())
		}
		if len(e.GetData()) > 0 {
			if err := n.applyOne(e); err != nil {
				return err
			}
			changed = true
		}
		n.applied = e.GetIndex()
		if n.leading && n.ctl == nil && e.GetTerm() == n.term {
			// The first entry of this leadership is applied, so the
			// state holds everything committed before it.
			n.startController()
		}
	}
	if changed {
		n.storeImage(n.state.Image())
	}
	n.reads.answer(n.applied, n.image.Load())
	return nil
}

func (n *Node) applyOne(e *pb.Entry) error {
	inc, seq, records, err := decodeEntry(e.GetData())
	if err != nil {
		return fmt.Errorf("controller: entry %d: %w", e.GetIndex(), err)
	}
	offset := n.state.Offset()
	if err := n.state.ApplyAll(records); err != nil {
		return fmt.Errorf("controller: entry %d: %w", e.GetIndex(), err)
	}
	if inc == n.incarnation {
		n.ownEntryApplied(seq)
		if p, ok := n.waiters[seq]; ok {
			delete(n.waiters, seq)
			p.finish(Result{Index: e.GetIndex(), Offset: offset, Records: records}, nil)
		}
	}
	if len(records) > 0 {
		n.subs.publish(Change{Index: e.GetIndex(), Term: e.GetTerm(), Offset: offset, Records: records})
	}
	return nil
}

// ownEntryApplied pops the applied proposal off the in-flight list. Our
// entries commit in the order we proposed them within one leadership; if
// one does not match, the Controller is rebuilt rather than trusted.
func (n *Node) ownEntryApplied(seq uint64) {
	defer n.releaseHeld(seq)
	if len(n.inflight) == 0 {
		return
	}
	if n.inflight[0].seq == seq {
		n.inflight = n.inflight[1:]
		return
	}
	for len(n.inflight) > 0 && n.inflight[0].seq <= seq {
		n.inflight = n.inflight[1:]
	}
	if n.ctl != nil {
		n.rebuildController()
	}
}

// installSnapshot replaces the state with one received from the leader.
func (n *Node) installSnapshot(data []byte, index uint64) error {
	var st *metadata.State
	if r := n.restored; r != nil && r.index == index {
		st, n.restored = r.state, nil // admit decoded it
	} else {
		var err error
		if st, err = metadata.Restore(data); err != nil {
			return fmt.Errorf("controller: snapshot %d: %w", index, err)
		}
	}
	n.state = st
	n.applied = index
	n.snapIdx = index
	n.storeImage(st.Image())
	n.subs.publish(Change{Index: index, Offset: st.Offset(), Snapshot: true})
	return nil
}

// maybeSnapshot snapshots the state every SnapshotEntries applied entries
// and compacts the log, keeping CompactKeepEntries behind the snapshot.
func (n *Node) maybeSnapshot() error {
	if n.applied-n.snapIdx < n.cfg.SnapshotEntries {
		return nil
	}
	if _, err := n.store.CreateSnapshot(n.applied, n.state.AppendSnapshot(nil)); err != nil {
		return err
	}
	n.snapIdx = n.applied
	if n.applied <= n.cfg.CompactKeepEntries {
		return nil
	}
	first, _ := n.store.FirstIndex()
	if to := n.applied - n.cfg.CompactKeepEntries; to >= first {
		return n.store.Compact(to)
	}
	return nil
}

// startController builds the leader's Controller from the applied state
// and runs the commands that waited for it.
func (n *Node) startController() {
	n.inflight = nil
	n.rebuildController()
	if n.ctl != nil {
		n.ctl.ExpectReconnects(n.cfg.NowMs())
	}
	deferred := n.deferred
	n.deferred = nil
	for _, p := range deferred {
		n.runCommand(p.cmd, p)
	}
}

// rebuildController makes a Controller whose state is the applied state
// plus the records of every proposal still in flight, which is what the
// log will hold once they commit.
func (n *Node) rebuildController() {
	st, err := metadata.Restore(n.state.AppendSnapshot(nil))
	if err == nil {
		for _, f := range n.inflight {
			if err = st.ApplyAll(f.records); err != nil {
				break
			}
		}
	}
	if err != nil {
		// Cannot happen: these states were built by the same records.
		// Step down rather than lead on a state we cannot trust.
		n.fail(fmt.Errorf("controller: rebuilding the controller: %w", err))
		n.ctl = nil
		return
	}
	prev := n.ctl
	n.ctl = metadata.NewController(st, n.cfg.Metadata, n.cfg.NowMs())
	// Within one leadership the sessions carry over: a rebuild must not
	// give a dead broker a fresh session or forget a reported loss.
	n.ctl.CarrySessions(prev)
}
