package replica

import (
	"fmt"
	"slices"
)

// alterPartitionBackoffMs is how long a leader waits after the controller
// refused an ISR change before proposing another: the refusal means its
// view is stale, and the image that fixes it is on its way.
const alterPartitionBackoffMs = 500

// leaderState is what a leader keeps for its term (one leader epoch).
type leaderState struct {
	// epochStart is the log end when the term began: a follower rejoins
	// the ISR only once it has everything up to here, so that it holds
	// every record an earlier leader may have committed (KIP-101).
	epochStart int64
	followers  map[int32]*follower
	parked     []parkedFetch
	produces   []pendingProduce // by base offset
	alter      *pendingAlter
	alterRetry int64 // no new proposal before this time
	// uncertain holds every replica that a request sent on partition
	// epoch uncertainEpoch would add. A copy of such a request may still
	// reach the controller (a retry, a slow network) and apply while the
	// partition is at that epoch, so until the epoch moves on the high
	// watermark waits for them as for members.
	uncertain      []int32
	uncertainEpoch int32
}

// follower is the leader's view of one other replica, learned from its
// fetches in this term only.
type follower struct {
	// durable is the largest durable end it reported (-1 until a fetch):
	// durability survives a crash, so an old report stays true. logEnd is
	// the log end of its latest fetch; an old one may overstate it (a
	// crash loses the unsynced suffix).
	durable int64
	logEnd  int64
	// lastCaughtUpMs is the last time it was known to hold the leader's
	// whole log; lastFetchMs and lastFetchLeaderEnd implement Kafka's
	// rule that a fetch reaching the leader's end at the previous fetch
	// proves it caught up then.
	lastCaughtUpMs     int64
	lastFetchMs        int64
	lastFetchLeaderEnd int64
}

type parkedFetch struct {
	req        FetchRequest
	deadlineMs int64
}

type pendingProduce struct {
	id         uint64
	acks       int8
	base, end  int64
	deadlineMs int64 // 0: none
}

type pendingAlter struct {
	req    AlterPartition
	sentMs int64
}

func (p *Partition) becomeLeader() {
	p.role = RoleLeader
	p.epochs.Assign(p.leaderEpoch, p.logEnd)
	p.lead = leaderState{epochStart: p.logEnd, followers: map[int32]*follower{}}
	for _, id := range p.replicas {
		if id != p.cfg.ID {
			// Every ISR member counts as caught up when the term starts,
			// as in Kafka, so none is dropped before it could fetch.
			p.lead.followers[id] = &follower{durable: -1, logEnd: -1,
				lastCaughtUpMs: p.nowMs, lastFetchMs: p.nowMs, lastFetchLeaderEnd: p.logEnd}
		}
	}
	p.maybeAdvanceHW()
}

// replicasChanged follows a reassignment within the term: a new replica
// gets a follower state (unknown until it fetches), a removed one loses
// its own.
func (p *Partition) replicasChanged() {
	for _, id := range p.replicas {
		if id != p.cfg.ID && p.lead.followers[id] == nil {
			p.lead.followers[id] = &follower{durable: -1, logEnd: -1,
				lastCaughtUpMs: p.nowMs, lastFetchMs: p.nowMs, lastFetchLeaderEnd: p.logEnd}
		}
	}
	for id := range p.lead.followers {
		if !slices.Contains(p.replicas, id) {
			delete(p.lead.followers, id)
		}
	}
}

// leaveRole ends the current term: produce requests still waiting are
// answered NOT_LEADER_OR_FOLLOWER (their records may yet be truncated),
// parked fetches are answered the same, and a follower's pipeline stops.
func (p *Partition) leaveRole() {
	switch p.role {
	case RoleLeader:
		for _, pp := range p.lead.produces {
			p.answer(pp.id, ErrNotLeaderOrFollower, -1)
		}
		for _, pf := range p.lead.parked {
			p.rd.Responses = append(p.rd.Responses, p.errResponse(pf.req, ErrNotLeaderOrFollower))
		}
		p.lead = leaderState{}
	case RoleFollower:
		p.fol.reset()
		p.fol.leaderEnd = -1
	}
	p.role = RoleNone
}

func (p *Partition) answer(id uint64, err ErrorCode, base int64) {
	p.rd.Answers = append(p.rd.Answers, ProduceAnswer{ID: id, Err: err, Base: base})
}

func (p *Partition) stepProduce(m Produce) {
	switch {
	case p.role != RoleLeader:
		p.answer(m.ID, ErrNotLeaderOrFollower, -1)
		return
	case m.Count < 1 || (m.Acks != AcksAll && m.Acks != AcksOne && m.Acks != AcksNone) || m.TimeoutMs < 0:
		p.answer(m.ID, ErrInvalidRequest, -1)
		return
	case m.Acks == AcksAll && len(p.isr) < p.minInsync:
		p.answer(m.ID, ErrNotEnoughReplicas, -1)
		return
	}
	b := Batch{Base: p.logEnd, Count: m.Count, Epoch: p.leaderEpoch, Payload: m.Payload}
	p.appendLocal(b)
	if m.Acks != AcksNone {
		pp := pendingProduce{id: m.ID, acks: m.Acks, base: b.Base, end: b.End()}
		if m.TimeoutMs > 0 {
			pp.deadlineMs = p.nowMs + m.TimeoutMs
		}
		p.lead.produces = append(p.lead.produces, pp)
	}
	p.maybeAdvanceHW()
	p.completeProduces()
	p.wakeParked(false)
}

// stableEnd is where this replica's log counts for acks=1 and for the high
// watermark: its durable end under the sync flush policy, else its end.
func (p *Partition) stableEnd() int64 {
	if p.cfg.AckUnsynced {
		return p.logEnd
	}
	return p.durable
}

func (p *Partition) followerStable(f *follower) int64 {
	if p.cfg.AckUnsynced {
		return f.logEnd
	}
	return f.durable
}

// The maximal ISR is the committed ISR together with every replica that
// a change sent on the current partition epoch would add (uncertainNow):
// the high watermark waits for a member being added at once, and for a
// member being removed until the controller has removed it. It is
// walked in place: maybeAdvanceHW runs on every fetch.
func (p *Partition) uncertainNow() []int32 {
	if p.lead.uncertainEpoch == p.partitionEpoch {
		return p.lead.uncertain
	}
	return nil
}

func (p *Partition) inMaximalISR(id int32) bool {
	return slices.Contains(p.isr, id) || slices.Contains(p.uncertainNow(), id)
}

// maybeAdvanceHW moves the high watermark to the smallest stable end of
// the maximal ISR, unless the committed ISR is below min.insync.replicas
// (then it stays, which is what lets the replicas that left the ISR stay
// eligible leaders: KIP-966).
func (p *Partition) maybeAdvanceHW() {
	if len(p.isr) < p.minInsync {
		return
	}
	hw := p.stableEnd()
	for _, ids := range [2][]int32{p.isr, p.uncertainNow()} {
		for _, id := range ids {
			if id == p.cfg.ID {
				continue
			}
			f := p.lead.followers[id]
			if f == nil {
				return // an ISR member that is not a replica: wait for a sane image
			}
			hw = min(hw, p.followerStable(f))
		}
	}
	if p.setHW(hw) {
		p.completeProduces()
		p.wakeParked(true)
	}
}

// completeProduces answers every waiting produce whose acks are met.
func (p *Partition) completeProduces() {
	kept := p.lead.produces[:0]
	for _, pp := range p.lead.produces {
		switch {
		case pp.acks == AcksAll && p.hw >= pp.end, pp.acks == AcksOne && p.stableEnd() >= pp.end:
			p.answer(pp.id, ErrNone, pp.base)
		default:
			kept = append(kept, pp)
		}
	}
	p.lead.produces = kept
}

// isrChanged follows a new committed ISR: acks=all requests still waiting
// can no longer be met once it is below min.insync.replicas.
func (p *Partition) isrChanged() {
	if a := p.lead.alter; a != nil && a.req.PartitionEpoch < p.partitionEpoch {
		p.lead.alter = nil // answered one way or the other: its CAS base is gone
	}
	if len(p.isr) < p.minInsync {
		kept := p.lead.produces[:0]
		for _, pp := range p.lead.produces {
			if pp.acks == AcksAll {
				p.answer(pp.id, ErrNotEnoughReplicasAfterAppend, -1)
			} else {
				kept = append(kept, pp)
			}
		}
		p.lead.produces = kept
	}
	p.maybeAdvanceHW()
}

func (p *Partition) errResponse(m FetchRequest, err ErrorCode) FetchResponse {
	return FetchResponse{To: m.ReplicaID, From: p.cfg.ID, LeaderEpoch: m.CurrentLeaderEpoch,
		Gen: m.Gen, Seq: m.Seq, Err: err, HighWatermark: -1, LogEnd: -1, LogStart: p.logStart,
		WindowStart: m.WindowStart, WindowEnd: m.WindowEnd, Limit: m.WindowStart}
}

// stepFetch serves a follower's fetch: refuse it (epoch, role, shape),
// answer its divergence, or learn its log and serve or park its window.
func (p *Partition) stepFetch(m FetchRequest) {
	var err ErrorCode
	switch {
	case m.CurrentLeaderEpoch < p.leaderEpoch:
		err = ErrFencedLeaderEpoch
	case m.CurrentLeaderEpoch > p.leaderEpoch:
		err = ErrUnknownLeaderEpoch
	case p.role != RoleLeader || p.lead.followers[m.ReplicaID] == nil:
		err = ErrNotLeaderOrFollower
	case m.LogEnd < 0 || m.DurableEnd < 0 || m.DurableEnd > m.LogEnd || m.WindowStart < m.LogEnd ||
		m.WindowEnd <= m.WindowStart || m.MaxWaitMs < 0 || (m.LogEnd == 0 && m.LastFetchedEpoch != NoEpoch):
		err = ErrInvalidRequest
	case m.LogEnd < p.logStart || (m.LastFetchedEpoch == NoEpoch && m.LogEnd > p.logEnd):
		// Below our log start there is nothing to serve: the follower
		// starts again at it. A log that names no epoch holds nothing
		// (reset, truncated to its start, or never written); it starts at
		// its end, which was some leader's log start or high watermark,
		// so everything below it is committed history that a leader
		// trimmed, and every leader holds at least that much.
		err = ErrOffsetOutOfRange
	}
	if err != ErrNone {
		p.rd.Responses = append(p.rd.Responses, p.errResponse(m, err))
		return
	}
	if m.LastFetchedEpoch != NoEpoch {
		e, end := p.epochs.EndOffsetFor(m.LastFetchedEpoch, p.logEnd)
		if e == NoEpoch {
			p.rd.Responses = append(p.rd.Responses, p.errResponse(m, ErrInvalidRequest))
			return
		}
		if e < m.LastFetchedEpoch || end < m.LogEnd {
			r := p.response(m)
			r.Diverging = &DivergingEpoch{Epoch: e, EndOffset: end}
			r.Limit = m.WindowStart
			p.rd.Responses = append(p.rd.Responses, r)
			return
		}
	}
	// The follower's log matches ours up to m.LogEnd: its last record has
	// epoch m.LastFetchedEpoch, which ends at or after m.LogEnd here.
	f := p.lead.followers[m.ReplicaID]
	if m.LogEnd > p.logEnd {
		panic(fmt.Sprintf("replica: invariant: follower %d matches up to %d past our end %d", m.ReplicaID, m.LogEnd, p.logEnd))
	}
	f.durable = max(f.durable, m.DurableEnd)
	f.logEnd = m.LogEnd
	if m.LogEnd >= p.logEnd {
		f.lastCaughtUpMs = max(f.lastCaughtUpMs, p.nowMs)
	} else if m.LogEnd >= f.lastFetchLeaderEnd {
		f.lastCaughtUpMs = max(f.lastCaughtUpMs, f.lastFetchMs)
	}
	f.lastFetchMs, f.lastFetchLeaderEnd = p.nowMs, p.logEnd
	p.maybeExpandISR(m.ReplicaID, f)
	p.maybeAdvanceHW()

	kept := p.lead.parked[:0]
	for _, pf := range p.lead.parked {
		// A follower that started a new pipeline gave up on its old one.
		if pf.req.ReplicaID != m.ReplicaID || pf.req.Gen >= m.Gen {
			kept = append(kept, pf)
		}
	}
	p.lead.parked = kept
	if p.logEnd > m.WindowStart || m.MaxWaitMs == 0 {
		p.rd.Responses = append(p.rd.Responses, p.response(m))
		return
	}
	mine := 0
	for i := len(p.lead.parked) - 1; i >= 0; i-- {
		if p.lead.parked[i].req.ReplicaID == m.ReplicaID {
			if mine++; mine >= p.cfg.FetchesInFlightMax {
				p.lead.parked = slices.Delete(p.lead.parked, i, i+1)
			}
		}
	}
	p.lead.parked = append(p.lead.parked, parkedFetch{req: m, deadlineMs: p.nowMs + m.MaxWaitMs})
}

// response answers m from the log as it stands: the window up to our end.
func (p *Partition) response(m FetchRequest) FetchResponse {
	return FetchResponse{To: m.ReplicaID, From: p.cfg.ID, LeaderEpoch: p.leaderEpoch,
		Gen: m.Gen, Seq: m.Seq, HighWatermark: p.hw, LogEnd: p.logEnd, LogStart: p.logStart,
		WindowStart: m.WindowStart, WindowEnd: m.WindowEnd,
		Limit: max(m.WindowStart, min(m.WindowEnd, p.logEnd))}
}

// wakeParked answers parked fetches that now have data, or all of them
// when the high watermark moved (so that followers learn it).
func (p *Partition) wakeParked(hwMoved bool) {
	kept := p.lead.parked[:0]
	for _, pf := range p.lead.parked {
		if hwMoved || p.logEnd > pf.req.WindowStart || pf.deadlineMs <= p.nowMs {
			p.rd.Responses = append(p.rd.Responses, p.response(pf.req))
		} else {
			kept = append(kept, pf)
		}
	}
	p.lead.parked = kept
}

// maybeExpandISR proposes adding a follower that holds, stably, both the
// high watermark and everything up to the start of this term.
func (p *Partition) maybeExpandISR(id int32, f *follower) {
	if p.inMaximalISR(id) || slices.Contains(p.ineligible, id) ||
		p.followerStable(f) < max(p.hw, p.lead.epochStart) {
		return
	}
	isr := append(slices.Clone(p.isr), id)
	p.proposeISR(inReplicaOrder(p.replicas, isr))
}

func (p *Partition) proposeISR(isr []int32) {
	if p.lead.alter != nil || p.nowMs < p.lead.alterRetry {
		return
	}
	req := AlterPartition{LeaderEpoch: p.leaderEpoch, PartitionEpoch: p.partitionEpoch, ISR: isr}
	p.lead.alter = &pendingAlter{req: req, sentMs: p.nowMs}
	if p.lead.uncertainEpoch != p.partitionEpoch {
		p.lead.uncertain, p.lead.uncertainEpoch = nil, p.partitionEpoch
	}
	for _, id := range isr {
		if !slices.Contains(p.isr, id) && !slices.Contains(p.lead.uncertain, id) {
			p.lead.uncertain = append(p.lead.uncertain, id)
		}
	}
	p.rd.AlterPartition = &AlterPartition{LeaderEpoch: req.LeaderEpoch, PartitionEpoch: req.PartitionEpoch, ISR: slices.Clone(isr)}
}

// stepAlterResult takes the controller's answer. Whatever the answer, a
// newer partition state it carries is the controller's and is taken (it
// may be the effect of an earlier copy of our request). A refusal that
// finds the controller still at our request's partition epoch ends the
// change, but another copy of it may still apply, so its members stay
// uncertain (uncertainNow) until the partition epoch moves; tickLeader
// moves it, if nothing else does, by proposing the committed ISR again,
// which the controller accepts with a new partition epoch.
func (p *Partition) stepAlterResult(r AlterPartitionResult) {
	if p.role != RoleLeader {
		return
	}
	if r.LeaderEpoch == p.leaderEpoch && r.PartitionEpoch > p.partitionEpoch {
		p.partitionEpoch = r.PartitionEpoch
		p.isr = slices.Clone(r.ISR)
		p.isrChanged()
		return
	}
	if a := p.lead.alter; a != nil && r.Err != ErrNone && r.PartitionEpoch == a.req.PartitionEpoch {
		p.lead.alter = nil
		p.lead.alterRetry = p.nowMs + alterPartitionBackoffMs
	}
}

func (p *Partition) tickLeader() {
	now := p.nowMs
	kept := p.lead.produces[:0]
	for _, pp := range p.lead.produces {
		if pp.deadlineMs != 0 && pp.deadlineMs <= now {
			p.answer(pp.id, ErrRequestTimedOut, -1)
		} else {
			kept = append(kept, pp)
		}
	}
	p.lead.produces = kept
	p.wakeParked(false)
	if a := p.lead.alter; a != nil && now-a.sentMs >= p.cfg.AlterPartitionTimeoutMs {
		// The request or its answer is lost, or the controller is slow:
		// send it again; the compare-and-set applies it at most once.
		a.sentMs = now
		p.rd.AlterPartition = &AlterPartition{LeaderEpoch: a.req.LeaderEpoch, PartitionEpoch: a.req.PartitionEpoch, ISR: slices.Clone(a.req.ISR)}
	}
	// Kafka's shrink rule: out of sync when not at our end and not caught
	// up for longer than the lag bound.
	var out []int32
	for _, id := range p.isr {
		f := p.lead.followers[id]
		if id != p.cfg.ID && f != nil && f.logEnd != p.logEnd && now-f.lastCaughtUpMs > p.cfg.LagTimeMaxMs {
			out = append(out, id)
		}
	}
	switch {
	case len(out) > 0:
		p.proposeISR(slices.DeleteFunc(slices.Clone(p.isr), func(id int32) bool { return slices.Contains(out, id) }))
	case p.lead.uncertainEpoch == p.partitionEpoch && len(p.lead.uncertain) > 0:
		p.proposeISR(slices.Clone(p.isr))
	}
}

// inReplicaOrder returns the members of isr ordered as in replicas.
func inReplicaOrder(replicas, isr []int32) []int32 {
	out := make([]int32, 0, len(isr))
	for _, id := range replicas {
		if slices.Contains(isr, id) {
			out = append(out, id)
		}
	}
	return out
}
