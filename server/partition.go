package server

import (
	"errors"
	"fmt"
	"os"

	"github.com/strata-db/strata/replica"
	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/segment/ringlog"
)

// partition is one partition a shard owns: its log, driven through the
// shard's ring, the appends waiting to be acknowledged, and the fetches
// waiting for data.
type partition struct {
	topic    string
	index    int32
	slot     uint32 // in the shard's partition table; routes its CQEs
	log      *ringlog.Log
	everyAck bool // FlushEveryAck: only synced data is visible
	// configs are the topic configs the partition runs with (the image's
	// map, never modified), and limits what produce checks by them
	// (topic_config.go).
	configs map[string]string
	limits  partitionLimits
	shard   *Shard
	bs      *brokerShard
	// rep drives the partition's replica machine (partition_replica.go).
	rep     *partitionReplica
	metrics *partitionMetrics
	// inRate is the produce traffic appended while leading, over the hot
	// partition window (partition_rate.go); ratePublishMs is when its
	// rates were last published to metrics.
	inRate        rateWindow
	ratePublishMs int64

	// parts are log operations in flight, by token; backlog holds the
	// operations waiting for room in the log's in-flight window (or, for
	// a truncation, for the log to be idle), in order.
	parts     map[uint64]*appendPart
	backlog   []*appendPart
	nextToken uint64

	waiters []*fetchWait // long-polling fetches waiting for data
	// holds counts, per segment, the fetch answers (on any shard) that may
	// still splice from its data file (segment_holds.go); deleted are the
	// data files of segments retention removed, open until their holds
	// reach 0.
	holds   map[*segment.Segment]*segmentHold
	deleted []deletedFile
	// retentionDue: a retention check is owed (retention.go).
	retentionDue bool
	// trimTo is where a DeleteRecords (leader) or the leader's log start
	// (follower) asks this log's start to move; applyTrim moves it as far
	// as it may, now or on a later tick (api_delete_records.go).
	trimTo  int64
	closing bool // deleted: close and remove once idle
	dir     string
	// storageFailureNoticed: the log's storage failed and checkStorage has
	// logged, counted and reported it (partition_offline.go).
	storageFailureNoticed bool
	// offlineReport: what the controller was told of it.
	offlineReport offlineReport
	// heldForSpace: the log holds appends for lack of room, counted in
	// the broker's disk alarm (disk_space.go).
	heldForSpace bool
	// grownNoted: the log's GrownBytes counted in the broker's disk
	// space so far (disk_space.go).
	grownNoted int64
}

// appendPart is one operation in the partition's queue for its log: a
// produce request's frames for one partition (opLeader), one frame fetched
// from the leader (opFollower), or a truncation (opTruncate).
type appendPart struct {
	kind     logOpKind
	token    uint64
	rest     []byte // frames not yet handed to the log
	pending  int    // frames handed to the log and not yet reported
	base     int64
	records  uint32
	bytes    int
	err      error
	finished bool
	done     func(code fb.ErrorCode, base, logStart int64, msg string)

	// The replica machine's part: the leader epoch the frames are
	// stamped with (opLeader) or carry (opFollower), the offset the
	// machine gave the first frame, and, for opLeader, the machine's
	// answer (acks=0 gets none: the log's report finishes it).
	epoch      int32
	expectBase int64
	acks       fb.Acks
	answered   bool
	answerCode fb.ErrorCode
	answerBase int64
	// truncateTo is where an opTruncate cuts the log.
	truncateTo int64
}

type logOpKind uint8

const (
	opLeader logOpKind = iota
	opFollower
	opTruncate
	// opReset empties the log and starts it at truncateTo (a follower
	// below its leader's log start).
	opReset
)

// highWatermark is the end of what consumers may see: the replica
// machine's high watermark (under the sync flush policy it never passes
// what every ISR member has synced), and never past what this log has
// written.
func (p *partition) highWatermark() int64 {
	if p.rep == nil {
		return 0
	}
	return max(0, min(p.rep.hw, p.log.End()))
}

// startAppend hands a checked part's frames to the replica machine, which
// gives them their offsets and queues them for the log; done runs on this
// shard once the acks are met (the machine says) and the log has reported
// every frame, or one failed.
func (p *partition) startAppend(frames []byte, records uint32, acks fb.Acks, timeoutMs int64, done func(code fb.ErrorCode, base, logStart int64, msg string)) {
	p.nextToken++
	ap := &appendPart{kind: opLeader, token: p.nextToken, rest: frames, base: -1, records: records, bytes: len(frames),
		done: done, acks: acks, expectBase: -1}
	p.parts[ap.token] = ap
	p.stepReplica(replica.Produce{ID: ap.token, Acks: int8(acks), Count: int64(records), Payload: ap, TimeoutMs: max(timeoutMs, 0)})
	if ap.expectBase < 0 && !ap.finished {
		// The machine refused it before any append (its answer came in
		// the same Ready), or the partition is offline.
		if !ap.answered {
			ap.answered, ap.answerCode = true, fb.ErrorCodeStorageError
		}
		ap.rest = nil
		p.maybeFinish(ap)
	}
}

// queueOp puts a log operation behind the ones waiting, or starts it.
func (p *partition) queueOp(ap *appendPart) {
	if len(p.backlog) > 0 || !p.submit(ap) {
		p.backlog = append(p.backlog, ap)
	}
}

// submit starts a log operation, handing frames to the log until it
// refuses for lack of room; it reports whether the operation went in
// whole (a truncation goes in only once the log is idle).
func (p *partition) submit(ap *appendPart) bool {
	if ap.kind == opTruncate || ap.kind == opReset {
		return p.submitTruncate(ap)
	}
	if ap.kind == opLeader && ap.epoch != p.rep.stamped {
		if err := p.log.SetLeaderEpoch(ap.epoch); err != nil {
			ap.err = err
		} else {
			p.rep.stamped = ap.epoch
		}
	}
	for len(ap.rest) > 0 && ap.err == nil {
		// appendFrames (or the follower's fetch) checked every frame, CRC
		// included, before handing it over; only the header is read again.
		h, err := schema.ParseFrameHeader(ap.rest)
		if err != nil {
			ap.err = err
			break
		}
		n := int(h.Length)
		if n > len(ap.rest) {
			panic("server: invariant: a checked frame runs past its log operation")
		}
		var off int64
		if ap.kind == opFollower {
			off, err = p.log.AppendReplicated(ap.rest[:n], h, ap.token)
		} else {
			off, err = p.log.AppendChecked(ap.rest[:n], h, ap.token)
		}
		if errors.Is(err, ringlog.ErrTooManyInFlight) {
			return false
		}
		if err != nil {
			ap.err = err
			if !p.offline() {
				// Not a storage failure: the log refused what the
				// machine placed (an offset or an epoch), so the two
				// no longer agree on the log.
				p.replicaDiverged(fmt.Errorf("append at %d refused: %w", ap.expectBase, err))
			}
			break
		}
		if ap.base < 0 {
			ap.base = off
			if off != ap.expectBase {
				// The machine and the log disagree on the log's end: the
				// log is no longer what the machine reasons about.
				p.replicaDiverged(fmt.Errorf("append at %d, machine placed it at %d", off, ap.expectBase))
			}
		}
		ap.pending++
		ap.rest = ap.rest[n:]
	}
	p.maybeFinish(ap)
	return true
}

// submitTruncate cuts the log where the machine cut its own, once every
// write before it has completed.
func (p *partition) submitTruncate(ap *appendPart) bool {
	if !p.log.Idle() {
		return false
	}
	p.rep.truncates--
	if ap.kind == opTruncate && ap.truncateTo < p.log.LogStart() {
		// The machine's divergence point lies below this log's start:
		// nothing of it stays, and the log starts again there.
		ap.kind = opReset
	}
	if ap.kind == opReset {
		if err := p.log.ResetTo(ap.truncateTo); err != nil {
			p.bs.b.log.Error("replica reset", "topic", p.topic, "partition", p.index, "to", ap.truncateTo, "err", err)
			return true // the log is offline now (fail-stop); checkStorage reports it
		}
		p.bs.b.log.Info("replica log reset to its leader's log start", "topic", p.topic, "partition", p.index, "start", ap.truncateTo)
		p.rep.writtenSeen = p.log.End()
		p.rep.durableSent = p.log.RecoveryPoint()
		p.trimTo = max(p.trimTo, ap.truncateTo)
		p.replicaProgress()
		return true
	}
	if err := p.log.Truncate(ap.truncateTo); err != nil {
		p.bs.b.log.Error("replica truncation", "topic", p.topic, "partition", p.index, "to", ap.truncateTo, "err", err)
		return true // the log is offline now (fail-stop); checkStorage reports it
	}
	if end := p.log.End(); end != ap.truncateTo {
		p.replicaDiverged(fmt.Errorf("truncated to %d, machine to %d", end, ap.truncateTo))
	}
	p.rep.writtenSeen = min(p.rep.writtenSeen, p.log.End())
	p.rep.durableSent = min(p.rep.durableSent, p.log.RecoveryPoint())
	p.replicaProgress()
	return true
}

// AppendDone is the log's report for one frame.
func (p *partition) AppendDone(token uint64, _ int64, err error) {
	ap := p.parts[token]
	if ap == nil {
		// A part that failed finishes early; its later frames report here.
		return
	}
	ap.pending--
	if err != nil && ap.err == nil {
		ap.err = err
	}
	p.maybeFinish(ap)
}

// FlushDone is the log's report for a Flush; the broker issues none.
func (p *partition) FlushDone(uint64, error) {}

// maybeFinish answers a part once the log has reported all of it and, for
// a leader's part with acks, the machine has answered it.
func (p *partition) maybeFinish(ap *appendPart) {
	if ap.finished || ap.pending > 0 || (len(ap.rest) > 0 && ap.err == nil) {
		return
	}
	if ap.err == nil && ap.kind == opLeader && ap.acks != fb.AcksNone && !ap.answered {
		return
	}
	ap.finished = true
	delete(p.parts, ap.token)
	switch {
	case ap.kind != opLeader:
	case ap.err != nil:
		ap.done(fb.ErrorCodeStorageError, -1, -1, "")
	case ap.answered && ap.answerCode != fb.ErrorCodeNone:
		ap.done(ap.answerCode, -1, -1, "")
	default:
		p.metrics.appended(uint64(ap.bytes), uint64(ap.records), p.log.End())
		p.countIn(uint64(ap.bytes), uint64(ap.records))
		ap.done(fb.ErrorCodeNone, ap.base, p.log.LogStart(), "")
	}
	if ap.kind == opFollower && ap.err == nil {
		p.metrics.appended(uint64(ap.bytes), uint64(ap.records), p.log.End())
	}
	p.wakeWaiters()
}

// drainBacklog resubmits operations that waited for room, in order.
func (p *partition) drainBacklog() {
	for len(p.backlog) > 0 {
		if !p.submit(p.backlog[0]) {
			return
		}
		p.backlog[0] = nil
		p.backlog = p.backlog[1:]
	}
}

// replicaDiverged takes the partition offline when its log and its
// machine disagree: that is a bug, and serving on would serve the wrong
// records under the right offsets.
func (p *partition) replicaDiverged(err error) {
	p.log.Fail(fmt.Errorf("server: replica state of %s-%d: %w", p.topic, p.index, err))
}

// complete routes one of the log's CQEs, then moves queued work along.
func (p *partition) complete(cqe ring.CQE) {
	p.log.Complete(cqe)
	p.drainBacklog()
	p.replicaProgress()
}

// idle reports whether nothing of the partition is in the kernel or queued.
func (p *partition) idle() bool {
	return p.log.Idle() && len(p.backlog) == 0 && len(p.parts) == 0
}

// closable reports whether a closing partition may close its log: idle,
// and no fetch answer holds its files. (A stopping shard waits for idle
// only: the logs close after every ring is gone, when no SQE is left to
// name a descriptor, and a hold whose release message was lost must not
// keep a stop waiting.)
func (p *partition) closable() bool { return p.idle() && p.fileHolds() == 0 }

// close closes the log (it must be idle) and, for a deleted topic, removes
// its folder.
func (p *partition) close(remove bool) error {
	p.failWaiters()
	err := p.log.Close()
	// A stop closes the deleted segments' files held or not: every ring
	// is gone by then, so no SQE names them.
	p.closeDeleted(true)
	if errors.Is(err, segment.ErrClosed) || p.storageFailureNoticed && errors.Is(err, ringlog.ErrFailed) {
		// A storage failure was logged and reported when it was noticed;
		// closing the failed log only closes its files.
		err = nil
	}
	if remove {
		err = errors.Join(err, os.RemoveAll(p.dir))
	}
	return err
}
