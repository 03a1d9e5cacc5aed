package replica

import "slices"

// followerState is a follower's fetch pipeline to its leader. Windows are
// sent in offset order and applied in that order whatever order their
// answers arrive in; an answer that ends its window early (the leader had
// no more, or stopped at a byte limit), an error, a divergence or a
// timeout ends the pipeline, and a new one (the next Gen) starts from the
// log end. Answers of an old pipeline are recognised by Gen and dropped.
type followerState struct {
	gen       uint64
	nextSeq   uint64
	inflight  []window
	leaderEnd int64 // the leader's log end in its latest answer; -1 unknown
	retryAtMs int64 // no fetch before this time (after an error answer)
}

type window struct {
	seq        uint64
	start, end int64
	sentMs     int64
	resp       *FetchResponse // arrived, waiting for the windows before it
}

func (f *followerState) reset() {
	f.gen++
	f.inflight = nil
}

func (p *Partition) becomeFollower() {
	p.role = RoleFollower
	p.fol.reset()
	p.fol.leaderEnd = -1
	p.fol.retryAtMs = 0
	p.sendFetches()
}

// sendFetches fills the pipeline. With nothing in flight it sends the
// window at the log end; when caught up under the sync policy it first
// waits for its log to be durable, so that the fetch that parks at the
// leader reports a durable end the high watermark can use. Further windows
// go out only while the leader is known to hold data past them.
func (p *Partition) sendFetches() {
	f := &p.fol
	if p.role != RoleFollower || p.nowMs < f.retryAtMs {
		return
	}
	if len(f.inflight) == 0 {
		caughtUp := f.leaderEnd >= 0 && f.leaderEnd <= p.logEnd
		if caughtUp && !p.cfg.AckUnsynced && p.durable < p.logEnd {
			return
		}
		p.sendWindow(p.logEnd)
	}
	for len(f.inflight) < p.cfg.FetchesInFlightMax {
		next := f.inflight[len(f.inflight)-1].end
		if f.leaderEnd <= next {
			break
		}
		p.sendWindow(next)
	}
}

func (p *Partition) sendWindow(start int64) {
	f := &p.fol
	w := window{seq: f.nextSeq, start: start, end: start + p.cfg.FetchWindowOffsets, sentMs: p.nowMs}
	f.nextSeq++
	f.inflight = append(f.inflight, w)
	last := NoEpoch
	if p.logEnd > 0 {
		last = p.epochs.EpochOf(p.logEnd - 1)
	}
	p.rd.Fetches = append(p.rd.Fetches, FetchRequest{To: p.leader, ReplicaID: p.cfg.ID,
		CurrentLeaderEpoch: p.leaderEpoch, Gen: f.gen, Seq: w.seq,
		LogEnd: p.logEnd, LastFetchedEpoch: last, DurableEnd: p.durable,
		WindowStart: w.start, WindowEnd: w.end, MaxWaitMs: p.cfg.FetchMaxWaitMs})
}

func (p *Partition) stepFetchResponse(r FetchResponse) {
	f := &p.fol
	if p.role != RoleFollower || r.From != p.leader || r.LeaderEpoch != p.leaderEpoch || r.Gen != f.gen {
		return
	}
	i := slices.IndexFunc(f.inflight, func(w window) bool { return w.seq == r.Seq })
	if i < 0 || f.inflight[i].resp != nil || f.inflight[i].start != r.WindowStart || f.inflight[i].end != r.WindowEnd {
		return // a duplicate, or not an answer to what we sent
	}
	f.inflight[i].resp = &r
	for len(f.inflight) > 0 && f.inflight[0].resp != nil {
		w := f.inflight[0]
		f.inflight = f.inflight[1:]
		if !p.applyWindow(w) {
			break
		}
	}
	p.sendFetches()
}

// applyWindow applies the answer of the oldest window in flight and
// reports whether the pipeline goes on. Answers come from another broker,
// so one that does not fit the log ends the pipeline instead of the
// process.
func (p *Partition) applyWindow(w window) bool {
	f := &p.fol
	r := w.resp
	switch {
	case r.Err == ErrOffsetOutOfRange && r.LogStart > p.logEnd && len(p.rd.Appends) == 0:
		// The leader's log starts past ours (Kafka's
		// truncateFullyAndStartAt): what we hold is below anything it
		// will serve again, so we start again at its start. (After an
		// earlier window's appends in this Ready, the next fetch's
		// answer does it.)
		p.resetLog(r.LogStart)
		f.reset()
		return false
	case r.Err != ErrNone:
		f.reset()
		backoff := p.cfg.FetchBackoffMs
		if r.Err == ErrUnknownLeaderEpoch {
			backoff = min(backoff, fetchBackoffUnknownEpochMs)
		}
		f.retryAtMs = p.nowMs + backoff
		return false
	case r.Diverging != nil:
		p.truncateToDivergence(*r.Diverging)
		f.reset()
		return false
	case !p.fits(w, r):
		f.reset()
		return false
	}
	for _, b := range r.Batches {
		p.appendLocal(b)
	}
	f.leaderEnd = max(f.leaderEnd, r.LogEnd)
	p.setHW(min(r.HighWatermark, p.logEnd))
	if r.Limit < r.WindowEnd {
		f.reset()
		return false
	}
	return true
}

// fits checks an answer against the log: its batches continue the log
// without a gap, lie in the window, and carry epochs that neither go back
// nor pass the leader's.
func (p *Partition) fits(w window, r *FetchResponse) bool {
	if p.logEnd < w.start || r.Limit < r.WindowStart || r.Limit > r.WindowEnd || r.LogEnd < r.Limit || r.HighWatermark < 0 {
		return false
	}
	next := p.logEnd
	epoch := NoEpoch
	if next > 0 {
		epoch = p.epochs.EpochOf(next - 1)
	}
	for _, b := range r.Batches {
		if b.Base != next || b.Count < 1 || b.Base >= r.Limit || b.Epoch < epoch || b.Epoch > p.leaderEpoch {
			return false
		}
		next, epoch = b.End(), b.Epoch
	}
	return true
}

// truncateToDivergence cuts the log where the leader says it diverges,
// as Kafka's follower does on a Fetch v12 diverging epoch: where both logs
// hold the leader's epoch, at the smaller of their ends for it; where this
// log lacks that epoch, at its own end for the largest epoch below it, and
// the next fetch checks again (KIP-279's double failover needs that second
// round). It never falls back to the high watermark.
func (p *Partition) truncateToDivergence(d DivergingEpoch) {
	if d.Epoch == NoEpoch || d.EndOffset < 0 {
		p.fol.retryAtMs = p.nowMs + p.cfg.FetchBackoffMs
		return
	}
	fe, fo := p.epochs.EndOffsetFor(d.Epoch, p.logEnd)
	to := min(fo, p.logEnd)
	if fe == d.Epoch {
		to = min(to, d.EndOffset)
	}
	if fe == NoEpoch || to < p.hw {
		// A leader never places a divergence below what it committed;
		// an answer that does is refused (another broker's bug must not
		// take committed records, nor this process, down with it).
		p.fol.retryAtMs = p.nowMs + p.cfg.FetchBackoffMs
		return
	}
	p.truncate(to)
}

func (p *Partition) tickFollower() {
	f := &p.fol
	if len(f.inflight) > 0 && p.nowMs-f.inflight[0].sentMs >= p.cfg.FetchTimeoutMs {
		f.reset()
	}
	p.sendFetches()
}
