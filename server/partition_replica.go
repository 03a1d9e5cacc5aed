package server

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/strata-db/strata/replica"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/metadata"
)

// The broker drives one replica.Partition per partition it hosts, leader or
// follower (docs/replication.md, "The broker"). The machine decides; this
// file carries its effects out on the shard that owns the partition:
//
//   - appends: a leader's produce parts and a follower's fetched frames
//     go to the log in the machine's order, through the partition's
//     queue of log operations (a truncation waits there for the log to be
//     idle, and the appends after it wait behind it);
//   - answers: a produce part is answered once the machine has answered it
//     (acks) and the log has reported every frame of it (AppendDone);
//   - fetch answers to followers are filled from the log's written frames
//     (api_replica_fetch.go); follower fetches go out on the shard's
//     outbound connections (replica_fetcher.go);
//   - ISR changes go to the controller off the shard's thread.
//
// The machine hears LogDurable each time the log's recovery point moves,
// and Tick on the shard's tick.

// replicaAlterTimeout bounds one AlterPartition call to the controller; the
// machine retries after its own timeout.
const replicaAlterTimeout = 5 * time.Second

// partitionReplica is the replication state of one hosted partition.
type partitionReplica struct {
	m       *replica.Partition
	topicID metadata.TopicID
	// hw is the machine's high watermark after the last Ready.
	hw int64
	// durableSent is the last durable end the machine was told.
	durableSent int64
	// writtenSeen is the log end when held fetch answers were last looked at.
	writtenSeen int64
	// truncates counts truncations queued and not yet carried out: while
	// one is, the machine's log is already cut and the log's not yet, so
	// the log's durable end says nothing the machine may use.
	truncates int
	// stamped is the leader epoch the log stamps on leader appends.
	stamped int32
	// logStartSent is the log start the machine was last told
	// (LogStartMoved, servableStart): a leader refuses fetches from below
	// it. logStartSeen is the log's start when it was computed.
	logStartSent, logStartSeen int64
	// serving holds follower fetches in progress here while this replica
	// leads: the machine's answer is matched to its request by key.
	serving map[replicaFetchKey]*replicaFetchCtx
	// held are answers whose window starts at or past the log's written
	// end: the machine counted appends the log has not written yet.
	held []replica.FetchResponse
	// alterInFlight is set while an AlterPartition call is out.
	alterInFlight bool
	// followerStart is each follower's log start as its latest fetch
	// reported it, for the low watermark (api_delete_records.go);
	// followersBuf is reused to read the machine's followers.
	followerStart map[int32]int64
	followersBuf  []replica.FollowerProgress
}

type replicaFetchKey struct {
	replica  int32
	gen, seq uint64
}

// newPartitionReplica builds the machine for a freshly opened log.
func (bs *brokerShard) newPartitionReplica(p *partition, t metadata.TopicInfo) error {
	starts := replicaEpochs(p.log.Epochs())
	cfg := replica.Config{ID: bs.b.cfg.NodeID, AckUnsynced: !p.everyAck,
		LagTimeMaxMs: bs.b.cfg.ReplicaLagTimeMax.Milliseconds()}
	end := p.log.End()
	// The checkpointed high watermark is a hint: never past this log.
	key := hwKey{t.ID, p.index}
	hw := min(max(bs.b.hwLoaded[key], bs.closedHW[key]), end)
	delete(bs.closedHW, key)
	servable := p.servableStart()
	m, err := replica.NewPartition(cfg, replica.LogState{LogStart: servable, LogEnd: end, DurableEnd: min(p.log.RecoveryPoint(), end),
		HighWatermark: hw, Epochs: starts})
	if err != nil {
		return fmt.Errorf("server: replica of %s-%d: %w", t.Name, p.index, err)
	}
	p.rep = &partitionReplica{m: m, topicID: t.ID, hw: hw, durableSent: min(p.log.RecoveryPoint(), end), writtenSeen: end,
		stamped: p.log.LatestEpoch(), logStartSent: servable, logStartSeen: p.log.LogStart(), serving: map[replicaFetchKey]*replicaFetchCtx{}}
	m.Tick(nowMs())
	return nil
}

// replicaImage is what the metadata image says of partition pi to its
// replica machine.
func replicaImage(im *metadata.Image, t metadata.TopicInfo, pi metadata.PartitionInfo) replica.Image {
	ri := replica.Image{Leader: pi.Leader, LeaderEpoch: pi.LeaderEpoch, PartitionEpoch: pi.PartitionEpoch,
		Replicas: slices.Clone(pi.Replicas), ISR: slices.Clone(pi.ISR), MinInsync: 1}
	if v, ok := t.Configs[metadata.ConfigMinInsyncReplicas]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			ri.MinInsync = n
		}
	}
	for _, id := range pi.Replicas {
		if b, ok := im.Broker(id); !ok || b.Fenced || b.ShuttingDown {
			ri.Ineligible = append(ri.Ineligible, id)
		}
	}
	return ri
}

// stepReplica feeds one input to the partition's machine and carries out
// what it asks.
func (p *partition) stepReplica(m replica.Msg) {
	if p.rep == nil || p.offline() {
		return
	}
	p.rep.m.Step(m)
	p.runReady()
}

// noteLogStart tells the machine the log's start when it moved
// (retention, DeleteRecords, compaction, a follower following its
// leader), before the machine judges a follower's fetch against it.
func (p *partition) noteLogStart() {
	if p.rep == nil || p.offline() || p.rep.truncates > 0 {
		return
	}
	if s := p.log.LogStart(); s != p.rep.logStartSeen {
		p.rep.logStartSeen = s
		if b := p.servableStart(); b > p.rep.logStartSent {
			p.rep.logStartSent = b
			p.stepReplica(replica.LogStartMoved{Start: b})
		}
	}
}

// servableStart is where a follower's log can begin to take this log's
// frames whole: the base of the frame holding the log start, which
// DeleteRecords may have put inside a frame. The machine's log start is
// this one, so that a follower below it starts again at a frame boundary
// (the fetch path serves whole frames from a window's start).
func (p *partition) servableStart() int64 {
	s := p.log.LogStart()
	if spans, err := p.log.Read(s, 1, -1); err == nil && len(spans) > 0 {
		return min(s, spans[0].FirstOffset)
	}
	return s
}

// tickReplica runs the machine's timers.
func (p *partition) tickReplica(now int64) {
	if p.rep == nil || p.offline() {
		return
	}
	p.rep.m.Tick(now)
	p.runReady()
	p.releaseHeld(true)
	p.metrics.replication.afterTick(p.rep.m)
}

// leads reports whether this replica leads the partition: only then does it
// take produce requests and serve consumers.
func (p *partition) leads() bool {
	return p.rep != nil && p.rep.m.Role() == replica.RoleLeader
}

// checkLeaderEpoch fences a consumer's request by the leader epoch it
// carries (KIP-320): older than this leader's is FENCED_LEADER_EPOCH (the
// caller's metadata is stale), newer is UNKNOWN_LEADER_EPOCH (this broker
// has not seen that image yet); -1 is a caller that does not know.
func (p *partition) checkLeaderEpoch(epoch int32) fb.ErrorCode {
	if epoch < 0 || p.rep == nil {
		return fb.ErrorCodeNone
	}
	switch mine := p.rep.m.LeaderEpoch(); {
	case epoch < mine:
		return fb.ErrorCodeFencedLeaderEpoch
	case epoch > mine:
		return fb.ErrorCodeUnknownLeaderEpoch
	}
	return fb.ErrorCodeNone
}

// runReady carries out the machine's effects, in the order Ready gives.
func (p *partition) runReady() {
	r := p.rep
	for {
		rd := r.m.Ready()
		if rd.Empty() && rd.HighWatermark == r.hw {
			r.m.Advance()
			p.metrics.replication.afterReady(r.m)
			return
		}
		hwMoved := rd.HighWatermark != r.hw
		r.hw = rd.HighWatermark
		if rd.HasTruncate {
			r.truncates++
			p.queueOp(&appendPart{kind: opTruncate, truncateTo: rd.Truncate, base: -1})
			r.durableSent = min(r.durableSent, rd.Truncate)
		}
		if rd.HasReset {
			// Counted with the truncations: until it is carried out the
			// log's durable end is the old log's.
			r.truncates++
			p.queueOp(&appendPart{kind: opReset, truncateTo: rd.Reset, base: -1})
			r.durableSent = rd.Reset
			r.logStartSent, r.logStartSeen = rd.Reset, rd.Reset
		}
		for _, b := range rd.Appends {
			switch pl := b.Payload.(type) {
			case *appendPart: // a leader's produce part
				pl.epoch = b.Epoch
				pl.expectBase = b.Base
				p.queueOp(pl)
			case []byte: // a frame fetched from the leader
				p.nextToken++
				ap := &appendPart{kind: opFollower, token: p.nextToken, rest: pl, base: -1, expectBase: b.Base, epoch: b.Epoch,
					bytes: len(pl), records: uint32(b.Count)}
				p.parts[ap.token] = ap
				p.queueOp(ap)
			default:
				panic(fmt.Sprintf("server: invariant: replica append of a %T", b.Payload))
			}
		}
		for _, f := range rd.Fetches {
			p.bs.fetcher.send(p, f)
		}
		for _, resp := range rd.Responses {
			p.answerReplicaFetch(resp)
		}
		if a := rd.AlterPartition; a != nil {
			p.sendAlterPartition(*a)
		}
		for _, a := range rd.Answers {
			ap := p.parts[a.ID]
			if ap == nil || ap.kind != opLeader {
				continue // failed and finished already
			}
			ap.answered = true
			ap.answerCode = produceCode(a.Err)
			if a.Err == replica.ErrNone {
				ap.answerBase = a.Base
			}
			p.maybeFinish(ap)
		}
		r.m.Advance()
		if hwMoved {
			p.wakeWaiters()
		}
	}
}

// abandonWaiting answers NOT_LEADER to every produce part still waiting
// for its acks and to every follower fetch parked on a partition that is
// closing: no machine will answer them now. A part whose frames are still
// being written answers once they are.
func (p *partition) abandonWaiting() {
	for _, ap := range p.parts {
		if ap.kind == opLeader && !ap.answered {
			ap.answered, ap.answerCode = true, fb.ErrorCodeNotLeader
			p.maybeFinish(ap)
		}
	}
	p.abandonReplicaFetches()
}

// abandonReplicaFetches answers NOT_LEADER to every follower fetch waiting
// here: the partition is closing, or the shard is stopping and its
// connections must be answered before they close. The machine's own
// answers to them later find no request and are dropped.
func (p *partition) abandonReplicaFetches() {
	if p.rep == nil {
		return
	}
	for key, ctx := range p.rep.serving {
		delete(p.rep.serving, key)
		ctx.respondError(p.bs, fb.ErrorCodeNotLeader, key.gen, key.seq)
	}
	p.rep.held = p.rep.held[:0]
}

// replicaProgress tells the machine what the log made durable, and sends
// the held fetch answers whose frames are now written. It runs after each
// completion of the log.
func (p *partition) replicaProgress() {
	r := p.rep
	if r == nil || p.offline() {
		return
	}
	if r.truncates == 0 {
		if d := min(p.log.RecoveryPoint(), p.log.End()); d > r.durableSent {
			r.durableSent = d
			p.stepReplica(replica.LogDurable{End: d})
		}
	}
	p.releaseHeld(false)
}

// produceCode maps a machine's refusal onto the wire.
func produceCode(e replica.ErrorCode) fb.ErrorCode {
	switch e {
	case replica.ErrNone:
		return fb.ErrorCodeNone
	case replica.ErrNotLeaderOrFollower:
		return fb.ErrorCodeNotLeader
	case replica.ErrFencedLeaderEpoch:
		return fb.ErrorCodeFencedLeaderEpoch
	case replica.ErrUnknownLeaderEpoch:
		return fb.ErrorCodeUnknownLeaderEpoch
	case replica.ErrNotEnoughReplicas:
		return fb.ErrorCodeNotEnoughReplicas
	case replica.ErrNotEnoughReplicasAfterAppend:
		return fb.ErrorCodeNotEnoughReplicasAfterAppend
	case replica.ErrRequestTimedOut:
		return fb.ErrorCodeRequestTimedOut
	case replica.ErrInvalidRequest:
		return fb.ErrorCodeInvalidRequest
	case replica.ErrOffsetOutOfRange:
		return fb.ErrorCodeOffsetOutOfRange
	}
	return fb.ErrorCodeUnknown
}

// wireReplicaCode is the inverse of produceCode for fetch answers, which
// travel between brokers.
func wireReplicaCode(e fb.ErrorCode) replica.ErrorCode {
	switch e {
	case fb.ErrorCodeNone:
		return replica.ErrNone
	case fb.ErrorCodeFencedLeaderEpoch:
		return replica.ErrFencedLeaderEpoch
	case fb.ErrorCodeUnknownLeaderEpoch:
		return replica.ErrUnknownLeaderEpoch
	case fb.ErrorCodeUnknownTopicOrPartition:
		// The leader's image lacks a partition this follower's image
		// names it leader of: it has not taken that image yet (a topic
		// just created), as with an unknown leader epoch, and will in a
		// moment; the machine retries after the short backoff of that
		// case rather than the whole fetch backoff, which delayed the
		// first acks=all produce to a new topic by a second.
		return replica.ErrUnknownLeaderEpoch
	case fb.ErrorCodeInvalidRequest:
		return replica.ErrInvalidRequest
	case fb.ErrorCodeOffsetOutOfRange:
		// Its answer's log start says whether this replica starts again
		// there (its log ends below it) or only retries.
		return replica.ErrOffsetOutOfRange
	}
	return replica.ErrNotLeaderOrFollower
}

// sendAlterPartition proposes the machine's ISR change to the controller,
// off the shard's thread, and steps the answer on the partition's shard.
func (p *partition) sendAlterPartition(a replica.AlterPartition) {
	r := p.rep
	if r.alterInFlight {
		return // the machine resends after its timeout if this one is lost
	}
	bs := p.bs
	b := bs.b
	self := b.cfg.NodeID
	im := bs.image
	var epoch int64
	if im != nil {
		if bi, ok := im.Broker(self); ok {
			epoch = bi.Epoch
		}
	}
	req := metadata.AlterPartitionRequest{BrokerID: self, BrokerEpoch: epoch, TopicID: r.topicID, Partition: p.index,
		LeaderEpoch: a.LeaderEpoch, PartitionEpoch: a.PartitionEpoch, ISR: slices.Clone(a.ISR)}
	r.alterInFlight = true
	b.log.Info("proposing an ISR change", "topic", p.topic, "partition", p.index, "isr", req.ISR,
		"leader_epoch", req.LeaderEpoch, "partition_epoch", req.PartitionEpoch)
	sh := p.shard
	topic, index, id := p.topic, p.index, r.topicID
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), replicaAlterTimeout)
		res, err := b.session.alterPartition(ctx, req)
		cancel()
		switch {
		case err != nil:
			b.log.Info("isr change not settled", "topic", topic, "partition", index, "isr", req.ISR, "err", err)
		case res.Accepted():
			b.log.Info("isr changed", "topic", topic, "partition", index, "isr", res.Partition.ISR,
				"partition_epoch", res.Partition.PartitionEpoch)
		default:
			b.log.Info("isr change refused", "topic", topic, "partition", index, "isr", req.ISR, "code", res.Code, "detail", res.Detail)
		}
		postErr := sh.Post(func(sh *Shard) {
			obs := b.shards[sh.ID()]
			obs.sh = sh
			p := obs.partitionAt(topic, index)
			if p == nil || p.rep == nil || p.rep.topicID != id {
				return
			}
			p.rep.alterInFlight = false
			if err == nil && res.Found {
				p.stepReplica(res.Result())
			}
		})
		if postErr != nil {
			b.log.Warn("isr change result not delivered to its shard", "err", postErr)
		}
	}()
}

// replicaEpochs converts the log's epoch list for the machine.
func replicaEpochs(es []segment.EpochEntry) []replica.EpochStart {
	out := make([]replica.EpochStart, len(es))
	for i, e := range es {
		out[i] = replica.EpochStart{Epoch: e.Epoch, Start: e.StartOffset}
	}
	return out
}
