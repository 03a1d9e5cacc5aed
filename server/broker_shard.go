package server

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/segment/ringlog"
	"github.com/strata-db/strata/server/metadata"
)

// brokerShard is the broker's state on one shard: the partitions the shard
// owns and the buffers its handlers reuse. Only the shard's thread touches
// it.
type brokerShard struct {
	b   *Broker
	id  int
	sh  *Shard
	enc *schema.Encoder
	env schema.Envelope

	// topics maps a topic name to the partitions of it this shard owns
	// (nil entries for partitions other shards own).
	topics map[string]*topicPartitions
	// slots holds every open partition by its slot, which its log's CQEs
	// carry; deleted partitions stay until their log is idle and closed.
	slots     []*partition
	freeSlots []uint32
	// parked are fetches received here waiting for data or their deadline.
	parked []*fetchJob
	// image is the last metadata image this shard applied.
	image *metadata.Image
	// keepLog marks closing partitions whose logs stay on disk: this
	// broker stopped leading them, but their topic lives on.
	keepLog map[*partition]bool
	// failedOpens are partitions whose logs could not be opened: offline
	// until the broker restarts (partition_offline.go).
	failedOpens map[failedOpenKey]*failedOpen
	// nextHWCheckpointMs is when the high watermarks are next written;
	// lastHW are the ones last handed to the writer (hw_checkpoint.go).
	nextHWCheckpointMs int64
	lastHW             map[hwKey]int64
	// closedHW are the high watermarks of partitions this shard closed
	// while their topic lives on (a broker stopping, a reassignment): the
	// checkpoint keeps them, and a reopen starts from them.
	closedHW map[hwKey]int64
	// fetcher holds this shard's follower fetches (replica_fetcher.go).
	fetcher *replicaFetcher
	// reqStart is when the request being served arrived.
	reqStart time.Time
	// nextRetentionMs is when the next retention check is due (wall
	// clock ms; 0 before the first tick), retention.go.
	nextRetentionMs int64
	// compaction is the shard's cleaner (compaction.go).
	compaction *shardCompaction
	// groups are the consumer-group coordinators of the offsets
	// partitions this shard owns and leads, by partition (group_host.go);
	// groupBuilder encodes their batches; groupTopicsMap is the topic
	// metadata they assign from, as of image groupTopicsOf.
	groups         map[int32]*groupHost
	groupBuilder   *schema.BatchBuilder
	groupTopicsOf  *metadata.Image
	groupTopicsMap map[string]int32
	// nextGroupTickMs is when the coordinators' timers next run.
	nextGroupTickMs int64
	// deleteWaits are DeleteRecords partitions waiting for their low
	// watermark (api_delete_records.go).
	deleteWaits []*deleteRecordsWait
}

type topicPartitions struct {
	id    metadata.TopicID
	parts []*partition
}

func newBrokerShard(b *Broker, id int) *brokerShard {
	bs := &brokerShard{b: b, id: id, enc: schema.NewEncoder(), topics: map[string]*topicPartitions{},
		keepLog: map[*partition]bool{}, closedHW: map[hwKey]int64{}, groups: map[int32]*groupHost{}}
	bs.fetcher = newReplicaFetcher(bs)
	return bs
}

// leaderAt returns the partition if this shard owns it and this broker's
// replica of it leads: produce, fetch and offset lookups are served there
// only.
func (bs *brokerShard) leaderAt(topic string, index int32) *partition {
	if p := bs.partitionAt(topic, index); p != nil && (p.leads() || p.offline()) {
		return p
	}
	return nil
}

// partitionAt returns the partition if this shard owns it (leader or
// follower).
func (bs *brokerShard) partitionAt(topic string, index int32) *partition {
	tp := bs.topics[topic]
	if tp == nil || index < 0 || int(index) >= len(tp.parts) {
		return nil
	}
	return tp.parts[index]
}

// applyImage opens the partitions of which this broker is a replica on
// this shard, leader or follower, and steps each one's replica machine
// with what the image says of it; it closes those it no longer hosts
// (keeping their logs), and closes and deletes those of topics that are
// gone. Opening a log recovers it from disk synchronously: it happens at
// start-up, on topic creation and on a reassignment, not per request.
func (bs *brokerShard) applyImage(im *metadata.Image) {
	bs.image = im
	n := len(bs.b.shards)
	self := bs.b.cfg.NodeID
	serving := bs.b.session.serving(im)
	live := map[string]bool{}
	for _, t := range im.Topics() {
		live[t.Name] = true
		tp := bs.topics[t.Name]
		if tp != nil && tp.id != t.ID {
			bs.dropTopic(t.Name, true) // deleted and created again meanwhile
			tp = nil
		}
		if tp == nil {
			tp = &topicPartitions{id: t.ID, parts: make([]*partition, len(t.Partitions))}
			bs.topics[t.Name] = tp
		}
		if grown := len(t.Partitions) - len(tp.parts); grown > 0 {
			// CreatePartitions: the topic has more partitions now.
			tp.parts = append(tp.parts, make([]*partition, grown)...)
		}
		for _, p := range t.Partitions {
			if ownerShard(t.Name, p.Partition, n) != bs.id {
				continue
			}
			hosts := serving && slices.Contains(p.Replicas, self)
			if cur := tp.parts[p.Partition]; cur != nil {
				if cur.offline() {
					// Fail-stop: a partition whose storage failed
					// stays as it is until the broker restarts; an
					// image that has it lead here again hears so.
					if hosts && p.Leader == self {
						bs.reportOffline(cur)
					}
					continue
				}
				if !hosts {
					tp.parts[p.Partition] = nil
					bs.closePartition(cur, false)
					continue
				}
				bs.reconfigure(cur, t)
				cur.stepReplica(replicaImage(im, t, p))
				continue
			}
			if !hosts || bs.closingAt(t.Name, p.Partition) || bs.openFailedAt(t.Name, t.ID, p.Partition) {
				// A partition still closing is opened again once its
				// log is closed (finishClose applies the image anew);
				// one whose log failed to open is not, until restart.
				continue
			}
			part, err := bs.openPartition(t, p.Partition)
			if err != nil {
				bs.openFailed(t, p.Partition, err)
				continue
			}
			tp.parts[p.Partition] = part
			part.stepReplica(replicaImage(im, t, p))
		}
	}
	for name := range bs.topics {
		if !live[name] {
			bs.dropTopic(name, true)
		}
	}
	for k := range bs.closedHW {
		if _, ok := im.TopicByID(k.topic); !ok {
			delete(bs.closedHW, k)
		}
	}
	bs.groupsAfterImage()
}

// closingAt reports whether a partition's log is still closing after this
// broker stopped leading it.
func (bs *brokerShard) closingAt(topic string, index int32) bool {
	for _, p := range bs.slots {
		if p != nil && p.closing && p.topic == topic && p.index == index {
			return true
		}
	}
	return false
}

// missingPartitionCode is the error for a partition this shard does not
// hold: NOT_LEADER when the topic has it (another broker leads it, or
// none does yet), else UNKNOWN_TOPIC_OR_PARTITION.
func (bs *brokerShard) missingPartitionCode(topic string, index int32) fb.ErrorCode {
	if bs.image == nil {
		return fb.ErrorCodeUnknownTopicOrPartition
	}
	if tp := bs.topics[topic]; tp != nil && bs.failedOpens[failedOpenKey{tp.id, index}] != nil {
		return fb.ErrorCodeStorageError
	}
	if _, ok := bs.image.Partition(topic, index); ok {
		return fb.ErrorCodeNotLeader
	}
	return fb.ErrorCodeUnknownTopicOrPartition
}

func (bs *brokerShard) openPartition(t metadata.TopicInfo, index int32) (*partition, error) {
	cfg, err := logConfig(t.Configs, bs.b.cfg.SegmentAllocateStepBytes)
	if err != nil {
		return nil, err
	}
	dir := partitionDir(bs.b.cfg.DataDir, t.Name, index)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var slot uint32
	if n := len(bs.freeSlots); n > 0 {
		slot = bs.freeSlots[n-1]
		bs.freeSlots = bs.freeSlots[:n-1]
	} else {
		if len(bs.slots) >= partitionsPerShardMax {
			return nil, errors.New("server: shard holds its maximum of partitions")
		}
		slot = uint32(len(bs.slots))
		bs.slots = append(bs.slots, nil)
	}
	p := &partition{topic: t.Name, index: index, slot: slot, configs: t.Configs, limits: limitsOf(t.Configs, cfg), shard: bs.sh, bs: bs, dir: dir,
		everyAck: cfg.Flush == segment.FlushEveryAck, parts: map[uint64]*appendPart{},
		holds:   map[*segment.Segment]*segmentHold{},
		metrics: bs.b.metrics.partitions.forPartition(t.Name, index), inRate: newRateWindow(bs.b.cfg.HotPartitionWindow)}
	p.log, err = ringlog.Open(bs.sh.Ring(), dir, cfg, diskPrefix(slot), p)
	if err != nil {
		bs.b.metrics.partitions.drop(t.Name, index)
		bs.freeSlots = append(bs.freeSlots, slot)
		return nil, err
	}
	p.log.KeepDeletedDataFiles(p.segmentDeleted)
	if err := bs.newPartitionReplica(p, t); err != nil {
		p.log.Close()
		bs.b.metrics.partitions.drop(t.Name, index)
		bs.freeSlots = append(bs.freeSlots, slot)
		return nil, err
	}
	bs.slots[slot] = p
	p.metrics.logEnd.Store(p.log.End())
	return p, nil
}

// partitionsPerShardMax bounds a shard's partition table (the slot field of
// a disk completion's tag).
const partitionsPerShardMax = 1 << 24

// diskPrefix is the high half of the user data of a partition log's SQEs:
// the opDisk kind and the partition's slot.
func diskPrefix(slot uint32) uint32 { return uint32(opDisk)<<24 | slot }

// completeDisk routes a partition log's completion.
func (bs *brokerShard) completeDisk(cqe ring.CQE) {
	slot := uint32(cqe.UserData>>32) & (partitionsPerShardMax - 1)
	if int(slot) >= len(bs.slots) || bs.slots[slot] == nil {
		panic("server: invariant: disk completion for a partition slot that is not open")
	}
	p := bs.slots[slot]
	p.complete(cqe)
	bs.checkStorage(p)
	bs.noteSpace(p)
	if p.closing && p.closable() {
		bs.finishClose(p)
	}
}

// finishClose closes a partition whose log has gone idle, deleting its
// folder if its topic was deleted.
func (bs *brokerShard) finishClose(p *partition) {
	remove := !bs.keepLog[p]
	delete(bs.keepLog, p)
	if p.heldForSpace {
		p.heldForSpace = false
		bs.b.disk.holding.Add(-1)
	}
	if p.rep != nil {
		if k := (hwKey{p.rep.topicID, p.index}); remove {
			delete(bs.closedHW, k)
		} else {
			bs.closedHW[k] = p.rep.hw
		}
	}
	if err := p.close(remove); err != nil {
		bs.b.log.Warn("close partition", "topic", p.topic, "partition", p.index, "removed", remove, "err", err)
	}
	bs.b.metrics.partitions.drop(p.topic, p.index)
	bs.slots[p.slot] = nil
	bs.freeSlots = append(bs.freeSlots, p.slot)
	// The leadership may have come back while the log was closing, or
	// the topic may have been created again after its deletion: apply
	// the image again, at the end of the turn, since this may run inside
	// applyImage (or a walk of the slots) and must not reenter it.
	topic, index := p.topic, p.index
	bs.sh.Defer(func(sh *Shard) {
		bs.sh = sh
		im := bs.image
		if pi, ok := im.Partition(topic, index); ok && slices.Contains(pi.Replicas, bs.b.cfg.NodeID) && bs.b.session.serving(im) &&
			bs.partitionAt(topic, index) == nil && !bs.closingAt(topic, index) {
			bs.applyImage(im)
		}
	})
}

// closePartition closes a partition now, or once its log goes idle; remove
// deletes its folder too (its topic was deleted).
func (bs *brokerShard) closePartition(p *partition, remove bool) {
	p.closing = true
	if !remove {
		bs.keepLog[p] = true
	}
	p.failWaiters()
	p.abandonWaiting()
	bs.giveUpSpace(p, "it is closing")
	if p.closable() {
		bs.finishClose(p)
	}
}

// tickPartitions runs the logs' timers (interval flushes), the retention
// check when it is due, closes the data files of deleted segments that no
// answer holds any more, and closes the closing partitions that went idle
// without a completion of their own to notice it: the last fetch holding
// their files let go on another shard.
func (bs *brokerShard) tickPartitions(now int64) {
	bs.retentionCheckDue(now)
	defer bs.checkpointHW(now, false)
	for _, p := range bs.slots {
		switch {
		case p == nil:
		case !p.closing:
			p.log.Tick(now)
			p.tickReplica(now)
			p.publishRates(now)
			bs.checkStorage(p)
			bs.noteSpace(p)
			bs.applyRetention(p)
			bs.applyTrim(p)
			bs.closeDeletedFiles(p)
		case p.closable():
			bs.finishClose(p)
		}
	}
	bs.compactPartitions(now)
	bs.tickDeleteWaits(now, bs.sh.Draining())
}

// idle reports whether no partition of the shard has work in the kernel.
func (bs *brokerShard) idle() bool {
	for _, p := range bs.slots {
		if p != nil && !p.idle() {
			return false
		}
	}
	return true
}

// defaultMaxMessageBytes is Kafka's default message.max.bytes.
const defaultMaxMessageBytes = 1048588

// logConfig turns topic configs into the partition log's config, with the
// broker's segment allocation step (segmentAllocateStep).
func logConfig(configs map[string]string, allocateStep int64) (segment.Config, error) {
	var cfg segment.Config
	num := func(key string) (int64, bool, error) {
		v, ok := configs[key]
		if !ok {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, true, err
	}
	for key, dst := range map[string]*int64{
		metadata.ConfigSegmentBytes:   &cfg.SegmentBytes,
		metadata.ConfigSegmentMs:      &cfg.SegmentMs,
		metadata.ConfigRetentionMs:    &cfg.RetentionMs,
		metadata.ConfigRetentionBytes: &cfg.RetentionBytes,
	} {
		n, ok, err := num(key)
		if err != nil {
			return cfg, err
		}
		if ok {
			*dst = n
		}
	}
	if v, ok := configs[metadata.ConfigFlushPolicy]; ok {
		p, err := parseFlushPolicy(v)
		if err != nil {
			return cfg, err
		}
		cfg.Flush = p
	}
	applyCleanupPolicy(configs, &cfg)
	cfg.AllocateStepBytes = allocateStep
	if cfg.SegmentBytes > 0 {
		// A step past the topic's segments allocates each one whole at
		// its first append. (Without segment.bytes the segments are
		// 1 GiB, SegmentAllocateStepBytesMax.)
		cfg.AllocateStepBytes = min(allocateStep, cfg.SegmentBytes)
	}
	return cfg, nil
}

// parseFlushPolicy reads the flush.policy config: sync, never or
// interval:<ms>.
func parseFlushPolicy(v string) (segment.FlushPolicy, error) {
	switch {
	case v == "sync":
		return segment.FlushEveryAck, nil
	case v == "never":
		return segment.FlushNever, nil
	case len(v) > len("interval:") && v[:len("interval:")] == "interval:":
		ms, err := strconv.ParseInt(v[len("interval:"):], 10, 64)
		if err != nil || ms <= 0 {
			return segment.FlushEveryAck, errors.New("flush.policy interval must be a positive number of ms")
		}
		return segment.FlushIntervalMs(ms), nil
	}
	return segment.FlushEveryAck, errors.New("flush.policy must be sync, never or interval:<ms>")
}

// dropTopic closes this shard's partitions of a topic and, when the topic
// was deleted, removes their folders; a partition with work in flight is
// closed once its log goes idle.
func (bs *brokerShard) dropTopic(name string, remove bool) {
	tp := bs.topics[name]
	delete(bs.topics, name)
	if tp == nil {
		return
	}
	bs.forgetFailedOpens(tp.id)
	if remove {
		for _, p := range bs.slots {
			if p != nil && p.closing && p.topic == name {
				delete(bs.keepLog, p) // still closing after a leadership move: delete it too
			}
		}
	}
	for i, p := range tp.parts {
		switch {
		case p != nil:
			bs.closePartition(p, remove)
		case remove && ownerShard(name, int32(i), len(bs.b.shards)) == bs.id && !bs.closingAt(name, int32(i)):
			// A log this broker kept after it stopped leading the
			// partition goes with its topic.
			if err := os.RemoveAll(partitionDir(bs.b.cfg.DataDir, name, int32(i))); err != nil {
				bs.b.log.Warn("remove partition folder", "topic", name, "partition", i, "err", err)
			}
		}
	}
}

// closeAll closes every partition; the shard has stopped, so every log is
// idle (the shard drains its partitions before it stops).
func (bs *brokerShard) closeAll() error {
	var err error
	for _, p := range bs.slots {
		if p != nil {
			err = errors.Join(err, p.close(false))
		}
	}
	bs.slots, bs.freeSlots = nil, nil
	clear(bs.topics)
	return err
}

// header is the envelope header of the answer to the request in bs.env.
func (bs *brokerShard) header() schema.EnvelopeHeader {
	return schema.EnvelopeHeader{ApiKey: bs.env.ApiKey(), ApiVersion: bs.env.ApiVersion(), CorrelationID: bs.env.CorrelationId()}
}

// respond encodes m as the answer to req.
func (bs *brokerShard) respond(req *Request, h schema.EnvelopeHeader, m *fb.MessageT) {
	bs.sh.Respond(req.Conn, req.Seq, bs.enc.Encode(&h, m))
	bs.observeAnswer(h.ApiKey, bs.reqStart)
}

// observeAnswer records the time to the answer of a request of api that
// arrived at start on this shard.
func (bs *brokerShard) observeAnswer(api fb.ApiKey, start time.Time) {
	bs.b.metrics.forShard(bs.id).answered(api, start)
}

// respondError answers with an error and no message.
func (bs *brokerShard) respondError(req *Request, code fb.ErrorCode) {
	h := bs.header()
	h.ErrorCode = code
	bs.respond(req, h, nil)
}

// rejectAndClose answers a request that failed verification with
// INVALID_REQUEST and closes its connection once the answer is out. The
// correlation id of an unverifiable envelope cannot be trusted, so it is 0.
func (bs *brokerShard) rejectAndClose(req *Request, err error) {
	h := schema.EnvelopeHeader{ErrorCode: fb.ErrorCodeInvalidRequest}
	bs.sh.Respond(req.Conn, req.Seq, bs.enc.Encode(&h, nil))
	bs.b.metrics.forShard(bs.id).answeredUnknown(bs.reqStart)
	bs.sh.CloseAfterAnswers(req.Conn)
	bs.b.log.Debug("closing a connection that sent an invalid request", "err", err)
}
