package server

import (
	"fmt"
	"maps"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/group"
)

// The consumer-group coordinators (docs/consumer-groups.md, "The broker").
// The coordinator of the groups of one partition of __consumer_offsets is
// a group.Coordinator held by the shard that owns the partition, while this
// broker's replica of it leads:
//
//   - on becoming leader the shard waits until the partition's high
//     watermark reaches its log end (the log may end with records of the
//     previous leader not yet known committed), reads the log from its
//     start, decodes the records, and builds the coordinator by Replay of
//     group.LiveRecords (what compaction leaves, in an order Replay
//     accepts), then SetTopics with the shard's metadata image; meanwhile
//     requests get COORDINATOR_LOAD_IN_PROGRESS;
//   - a call's records go to the local log as one batch (acks=all under the
//     topic's min.insync.replicas) and every answer, one that wrote nothing
//     included, waits until each batch written before it was processed has
//     been acknowledged: no answer shows state that a failover could take
//     back;
//   - a failed append (not leader, not enough replicas, storage, timeout)
//     drops the coordinator, answers its waiting calls with a retriable
//     error, and the shard loads it again from the log, which is the truth;
//   - losing the leadership drops it (NOT_COORDINATOR).
//
// SetTopics runs on every image that changes the topics, Tick on the
// shard's tick.

// groupHost is one partition's coordinator.
type groupHost struct {
	index int32
	p     *partition
	// epoch is the leader epoch the coordinator was loaded under: a
	// leadership lost and won back between two looks is a new load.
	epoch int32
	// c is nil while loading.
	c *group.Coordinator
	// loadErr is set when the log did not load (a record that does not
	// decode or replay): the partition's groups are unavailable until the
	// leadership moves or the broker restarts.
	loadErr error
	// written counts the batches appended, acked the leading run of them
	// acknowledged; done holds acknowledgements that came out of order.
	written, acked uint64
	done           map[uint64]bool
	// waiting are answers held until acked reaches their batch, in order.
	waiting []groupWait
	// dropped is set once the host is gone; dropCode answers what comes
	// after.
	dropped  bool
	dropCode fb.ErrorCode
	// clients is the client id and address of each member's last
	// heartbeat here, for ConsumerGroupDescribe (memory only: empty after a
	// failover until the members heartbeat); members that left are pruned
	// on the tick.
	clients           map[groupMemberKey]groupClient
	nextClientPruneMs int64
}

type groupMemberKey struct{ group, member string }

type groupClient struct{ id, host string }

// groupClientPruneIntervalMs is how often the clients of members that are
// gone are forgotten.
const groupClientPruneIntervalMs = 10_000

// noteClient remembers the client a member heartbeats from.
func (h *groupHost) noteClient(groupID, memberID string, client groupClient) {
	k := groupMemberKey{groupID, memberID}
	if !h.c.IsMember(groupID, memberID) {
		delete(h.clients, k)
		return
	}
	h.clients[k] = client
}

// pruneClients forgets the client ids of members no longer in their group.
func (h *groupHost) pruneClients(now int64) {
	if now < h.nextClientPruneMs {
		return
	}
	h.nextClientPruneMs = now + groupClientPruneIntervalMs
	for k := range h.clients {
		if !h.c.IsMember(k.group, k.member) {
			delete(h.clients, k)
		}
	}
}

type groupWait struct {
	seq uint64
	fn  func(code fb.ErrorCode)
}

// Offsets-log settings.
const (
	// offsetsCommitTimeoutMs bounds the wait for a batch's acknowledgement
	// (Kafka's offsets.commit.timeout.ms).
	offsetsCommitTimeoutMs = 5000
	// offsetsLoadReadBytes is how much of the log one read of a load takes.
	offsetsLoadReadBytes = 1 << 20
)

// groupConfig is the coordinators' settings.
func (bs *brokerShard) groupConfig() group.Config { return bs.b.cfg.Group }

// syncGroupHosts drops the coordinators whose partition no longer leads
// here and starts (or finishes) the load of those that newly lead.
func (bs *brokerShard) syncGroupHosts(now int64) {
	for idx, h := range bs.groups {
		p := bs.partitionAt(schema.OffsetsTopic, idx)
		if p != h.p || !leadsHere(p) || p.rep.m.LeaderEpoch() != h.epoch {
			bs.dropGroupHost(h, fb.ErrorCodeNotCoordinator)
		}
	}
	tp := bs.topics[schema.OffsetsTopic]
	if tp == nil {
		return
	}
	for i, p := range tp.parts {
		if !leadsHere(p) {
			continue
		}
		idx := int32(i)
		h := bs.groups[idx]
		if h == nil {
			h = &groupHost{index: idx, p: p, epoch: p.rep.m.LeaderEpoch(), done: map[uint64]bool{},
				clients: map[groupMemberKey]groupClient{}}
			bs.groups[idx] = h
		}
		if h.c == nil && h.loadErr == nil {
			bs.loadGroupHost(h, now)
		}
	}
}

// leadsHere reports whether p is open here and leads.
func leadsHere(p *partition) bool {
	return p != nil && !p.closing && !p.offline() && p.leads()
}

// dropGroupHost forgets a coordinator and answers its waiting calls.
func (bs *brokerShard) dropGroupHost(h *groupHost, code fb.ErrorCode) {
	if h.dropped {
		return
	}
	h.dropped, h.dropCode = true, code
	if bs.groups[h.index] == h {
		delete(bs.groups, h.index)
	}
	waiting := h.waiting
	h.waiting = nil
	for _, w := range waiting {
		w.fn(code)
	}
}

// loadGroupHost builds the coordinator from the log once every record in
// it is known committed and nothing is in flight.
func (bs *brokerShard) loadGroupHost(h *groupHost, now int64) {
	p := h.p
	if len(p.parts) > 0 || len(p.backlog) > 0 || p.highWatermark() < p.log.End() {
		return
	}
	records, err := readGroupLog(p)
	if err == nil {
		var c *group.Coordinator
		if c, err = group.Replay(bs.groupConfig(), group.LiveRecords(records), now); err == nil {
			h.c = c
			bs.b.log.Info("group coordinator loaded", "partition", h.index, "leader_epoch", h.epoch, "records", len(records))
			bs.writeGroupRecords(h, c.SetTopics(bs.groupTopics(), now), now)
			return
		}
	}
	h.loadErr = err
	bs.b.log.Error("group coordinator did not load; its groups are unavailable here", "partition", h.index, "err", err)
}

// readGroupLog decodes every record of the partition's log below its
// high watermark.
func readGroupLog(p *partition) ([]group.Record, error) {
	var records []group.Record
	var buf []byte
	var r schema.BatchReader
	var v schema.RecordView
	off, end := p.log.LogStart(), p.highWatermark()
	for off < end {
		spans, err := p.log.Read(off, offsetsLoadReadBytes, end)
		if err != nil {
			return nil, err
		}
		if len(spans) == 0 {
			break
		}
		if buf, err = p.log.ReadSpans(buf[:0], spans); err != nil {
			return nil, err
		}
		for rest := buf; len(rest) > 0; {
			n, err := schema.PeekFrameLength(rest, schema.MaxFrameBytes)
			if err != nil || n > len(rest) {
				return nil, fmt.Errorf("frame at %d: %v", off, err)
			}
			if err := r.Reset(rest[:n]); err != nil {
				return nil, err
			}
			for r.Next(&v) {
				rec, err := group.DecodeRecord(v.Key, v.Value)
				if err != nil {
					return nil, fmt.Errorf("record at %d: %w", v.Offset, err)
				}
				records = append(records, rec)
			}
			rest = rest[n:]
		}
		off = spans[len(spans)-1].NextOffset
	}
	return records, nil
}

// writeGroupRecords appends a call's records as one batch. A batch that
// cannot be built or appended drops the coordinator (its state already
// holds the records).
func (bs *brokerShard) writeGroupRecords(h *groupHost, recs []group.Record, now int64) {
	if len(recs) == 0 || h.dropped {
		return
	}
	frame, count, err := bs.groupBatch(group.LogRecords(recs), now)
	if err == nil && len(frame) > h.p.limits.maxMessageBytes {
		err = fmt.Errorf("batch of %d bytes over the partition's %d", len(frame), h.p.limits.maxMessageBytes)
	}
	if err != nil {
		bs.b.log.Error("group records not written; reloading the coordinator", "partition", h.index, "err", err)
		bs.dropGroupHost(h, fb.ErrorCodeCoordinatorNotAvailable)
		return
	}
	h.written++
	seq := h.written
	h.p.startAppend(frame, count, fb.AcksAll, offsetsCommitTimeoutMs, func(code fb.ErrorCode, _, _ int64, _ string) {
		bs.groupBatchDone(h, seq, code)
	})
}

// groupBatch encodes records into one frame of their own.
func (bs *brokerShard) groupBatch(recs []group.Record, now int64) ([]byte, uint32, error) {
	if bs.groupBuilder == nil {
		bb, err := schema.NewBatchBuilder(schema.BatchOptions{ProducerID: -1})
		if err != nil {
			return nil, 0, err
		}
		bs.groupBuilder = bb
	}
	bb := bs.groupBuilder
	if err := bb.Reset(schema.BatchOptions{ProducerID: -1}); err != nil {
		return nil, 0, err
	}
	var key, value []byte
	for _, r := range recs {
		key = group.AppendKey(key[:0], r)
		rec := schema.Record{Key: key, TimestampMs: now}
		if !r.Tombstone {
			value = group.AppendValue(value[:0], r)
			rec.Value = value
		}
		if err := bb.Append(&rec); err != nil {
			return nil, 0, err
		}
	}
	frame, err := bb.AppendTo(nil)
	return frame, uint32(len(recs)), err
}

// groupBatchDone is a batch's acknowledgement (or failure): answers wait
// for every batch before theirs.
func (bs *brokerShard) groupBatchDone(h *groupHost, seq uint64, code fb.ErrorCode) {
	if h.dropped {
		return
	}
	if code != fb.ErrorCodeNone {
		bs.b.log.Warn("group records not acknowledged; reloading the coordinator", "partition", h.index,
			"code", schema.ErrorName(code))
		if code == fb.ErrorCodeNotLeader || code == fb.ErrorCodeFencedLeaderEpoch {
			bs.dropGroupHost(h, fb.ErrorCodeNotCoordinator)
		} else {
			bs.dropGroupHost(h, fb.ErrorCodeCoordinatorNotAvailable)
		}
		return
	}
	h.done[seq] = true
	for h.done[h.acked+1] {
		delete(h.done, h.acked+1)
		h.acked++
	}
	n := 0
	for n < len(h.waiting) && h.waiting[n].seq <= h.acked {
		n++
	}
	ready := h.waiting[:n]
	h.waiting = h.waiting[n:]
	for _, w := range ready {
		w.fn(fb.ErrorCodeNone)
	}
}

// answerAfter runs fn once every batch the coordinator has written so far
// is acknowledged: NONE then, or the error that dropped the coordinator.
func (h *groupHost) answerAfter(fn func(code fb.ErrorCode)) {
	switch {
	case h.dropped:
		fn(h.dropCode)
	case h.written <= h.acked:
		fn(fb.ErrorCodeNone)
	default:
		h.waiting = append(h.waiting, groupWait{seq: h.written, fn: fn})
	}
}

// groupHostFor is the coordinator of offsets partition idx on this shard,
// or why there is none: COORDINATOR_LOAD_IN_PROGRESS while this broker
// leads the partition and the coordinator is not ready,
// COORDINATOR_NOT_AVAILABLE when its log did not load, NOT_COORDINATOR
// when this broker does not lead it.
func (bs *brokerShard) groupHostFor(idx int32) (*groupHost, fb.ErrorCode) {
	h := bs.groups[idx]
	if h == nil || h.c == nil {
		bs.syncGroupHosts(nowMs())
		h = bs.groups[idx]
	}
	switch {
	case h != nil && h.loadErr != nil:
		return nil, fb.ErrorCodeCoordinatorNotAvailable
	case h != nil && h.c != nil:
		return h, fb.ErrorCodeNone
	case h != nil || leadsHere(bs.partitionAt(schema.OffsetsTopic, idx)):
		return nil, fb.ErrorCodeCoordinatorLoadInProgress
	}
	return nil, fb.ErrorCodeNotCoordinator
}

// groupTopics is the topic metadata the coordinators assign from: every
// topic of the shard's image but the offsets topic itself.
func (bs *brokerShard) groupTopics() map[string]int32 {
	if bs.groupTopicsOf != bs.image || bs.groupTopicsMap == nil {
		m := map[string]int32{}
		if bs.image != nil {
			for _, t := range bs.image.Topics() {
				if t.Name != schema.OffsetsTopic {
					m[t.Name] = int32(len(t.Partitions))
				}
			}
		}
		bs.groupTopicsOf, bs.groupTopicsMap = bs.image, m
	}
	return bs.groupTopicsMap
}

// groupsAfterImage follows a new image: coordinators start, stop, and hear
// of changed topics.
func (bs *brokerShard) groupsAfterImage() {
	old := bs.groupTopicsMap
	topics := bs.groupTopics()
	now := nowMs()
	bs.syncGroupHosts(now)
	if old != nil && maps.Equal(old, topics) {
		return
	}
	for _, h := range bs.groups {
		if h.c != nil {
			bs.writeGroupRecords(h, h.c.SetTopics(topics, now), now)
		}
	}
}

// groupTickIntervalMs is how often the coordinators' timers run: sessions
// and rebalance timeouts are seconds long, and a tick walks every group.
const groupTickIntervalMs = 250

// tickGroups runs the coordinators' timers.
func (bs *brokerShard) tickGroups(now int64) {
	bs.syncGroupHosts(now)
	if now < bs.nextGroupTickMs {
		return
	}
	bs.nextGroupTickMs = now + groupTickIntervalMs
	for _, h := range bs.groups {
		if h.c != nil {
			bs.writeGroupRecords(h, h.c.Tick(now), now)
			h.pruneClients(now)
		}
	}
}

// dropAllGroupHosts answers every coordinator's waiting calls when the
// shard stops.
func (bs *brokerShard) dropAllGroupHosts() {
	for _, h := range bs.groups {
		bs.dropGroupHost(h, fb.ErrorCodeNotCoordinator)
	}
}
