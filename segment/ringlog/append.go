package ringlog

import (
	"errors"
	"fmt"
	"io"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

// Append checks one whole frame (schema.CheckFrame), assigns its offsets and
// patches its base offset in place, and submits a WRITE SQE at the position
// the core chose (with the shard's next io_uring_enter). It returns the base
// offset at once; durability is reported through Sink.AppendDone, under the
// flush policy. The frame's bytes must stay valid and unchanged until then.
//
// An error means the frame was not accepted and AppendDone will not be
// called for it. Once accepted, AppendDone comes exactly once: from Complete
// or Tick, or from within this call if the log fails during it.
//
// When the frame needs a new segment while earlier writes are in flight, it
// waits (with every append after it) until they complete: the roll then
// creates the next segment synchronously and submits the old segment's syncs.
func (l *Log) Append(frame []byte, token uint64) (int64, error) {
	if err := l.usable(); err != nil {
		return 0, err
	}
	h, err := schema.CheckFrame(frame)
	if err != nil {
		return 0, err
	}
	return l.AppendChecked(frame, h, token)
}

// AppendChecked is Append for a frame the caller has already checked with
// schema.CheckFrame, passing the header it returned: the broker checks
// every frame of a request before appending any, and the CRC is the most
// expensive part of the check, so it is not computed twice.
//
// The frame is stamped with the epoch SetLeaderEpoch set (0 until then),
// and refused with segment.ErrEpochRegress while that is below the latest
// epoch in the log (replicated frames of a newer epoch came after it).
func (l *Log) AppendChecked(frame []byte, h schema.FrameHeader, token uint64) (int64, error) {
	if err := l.usable(); err != nil {
		return 0, err
	}
	l.enter()
	if err := l.checkAppend(frame, &h, false); err != nil {
		return 0, err
	}
	base := l.nextOffset
	h.BaseOffset, h.LeaderEpoch = base, l.leaderEpoch
	if err := l.noteEpoch(&h); err != nil {
		return 0, err
	}
	schema.PatchBaseOffset(frame, base)
	schema.PatchLeaderEpoch(frame, h.LeaderEpoch)
	l.accept(frame, &h, token)
	return base, nil
}

// AppendReplicated appends a frame from the leader as it is, its base
// offset and leader epoch already set (h is what schema.CheckFrame
// returned for it): a follower's append. It is refused, with nothing
// changed and no AppendDone, with segment.ErrOffsetMismatch unless the
// frame's base offset is the log end (accepted appends in flight
// included), and with segment.ErrEpochRegress if its epoch is below the
// latest in the log. Once accepted it is reported, windowed and failed
// exactly as an AppendChecked is.
func (l *Log) AppendReplicated(frame []byte, h schema.FrameHeader, token uint64) (int64, error) {
	if err := l.usable(); err != nil {
		return 0, err
	}
	l.enter()
	if err := l.checkAppend(frame, &h, true); err != nil {
		return 0, err
	}
	if h.BaseOffset != l.nextOffset {
		return 0, fmt.Errorf("%w: frame at %d, log end %d", segment.ErrOffsetMismatch, h.BaseOffset, l.nextOffset)
	}
	if err := l.noteEpoch(&h); err != nil {
		return 0, err
	}
	l.accept(frame, &h, token)
	return h.BaseOffset, nil
}

// checkAppend is what every append checks before taking a slot. A new
// frame must fit a segment; a replicated one may be larger than today's
// segment size (the topic lowered it after the leader wrote the frame),
// and the core gives it a segment of its own.
func (l *Log) checkAppend(frame []byte, h *schema.FrameHeader, replicated bool) error {
	if int(h.Length) != len(frame) {
		return fmt.Errorf("%w: %d bytes hold a frame of %d", schema.ErrFrameLength, len(frame), h.Length)
	}
	if !replicated && int64(h.Length) > l.cfg.SegmentBytes {
		return fmt.Errorf("%w: %d bytes, segment %d", segment.ErrFrameTooLarge, h.Length, l.cfg.SegmentBytes)
	}
	if l.tail-l.head >= appendsMax {
		return ErrTooManyInFlight
	}
	return nil
}

// noteEpoch checks the epoch of an append about to be accepted at
// h.BaseOffset and, for the first frame of a newer epoch, has the epoch
// file replaced before the frame is accepted, and so before its WRITE is
// submitted: a crash must never leave a durable frame whose epoch the file
// lacks. That is a synchronous write, two fdatasyncs and a rename on the
// shard's thread; it happens once per leader change, so it is kept off the
// ring. A failure writing the file takes the log offline like a failed
// ring write.
func (l *Log) noteEpoch(h *schema.FrameHeader) error {
	latest := l.latestEpoch
	if h.LeaderEpoch < max(latest, 0) {
		return fmt.Errorf("%w: frame of epoch %d, latest %d", segment.ErrEpochRegress, h.LeaderEpoch, latest)
	}
	if h.LeaderEpoch == latest {
		return nil
	}
	if err := l.sync.AssignEpoch(h.LeaderEpoch, h.BaseOffset); err != nil {
		return l.storageFailed(err)
	}
	l.latestEpoch = h.LeaderEpoch
	return nil
}

// accept takes a checked append into the window and starts what can start.
func (l *Log) accept(frame []byte, h *schema.FrameHeader, token uint64) {
	rec := &l.recs[l.tail%appendsMax]
	*rec = record{seq: l.tail, token: token, frame: frame, hdr: *h, base: h.BaseOffset, state: stQueued}
	l.tail++
	l.nextOffset = h.BaseOffset + int64(h.RecordCount)
	l.stats.Appends++
	l.pump()
}

// enter starts every public method that may call the sink, so that a sink
// calling back into the Log is caught rather than corrupting its state.
func (l *Log) enter() {
	if l.inSink {
		panic("ringlog: invariant: a Sink method called back into the Log")
	}
}

// pump moves everything that can move: waiting appends start (rolling first
// when the core says so), and a sync is issued when one is owed.
func (l *Log) pump() {
	l.startQueued()
	l.maybeSync()
	if l.syncHead != l.syncTail && l.syncs[l.syncHead%syncOpsMax].remaining == 0 {
		// Only after a failure to issue a sync's SQEs.
		l.applySyncs()
	}
}

// startQueued prepares and submits waiting appends in order. It stops at an
// append that needs a roll while earlier writes are still in flight (the
// old segment is closed only after all its writes completed), and while a
// growth of the active segment is in flight (grow.go).
func (l *Log) startQueued() {
	for l.start < l.tail && l.err == nil && l.growing == 0 && !l.noSpace {
		rec := &l.recs[l.start%appendsMax]
		now := l.cfg.NowMs()
		if l.core.ShouldRoll(int64(rec.hdr.Length), rec.hdr.RecordCount, now) {
			if l.commit < l.start || l.syncTail-l.syncHead == syncOpsMax {
				return
			}
			if err := l.roll(); err != nil {
				if err != errRollHeld {
					// Whether the old segment is durable is unknown.
					l.fatal(err)
				}
				return
			}
		}
		if g, ok := l.core.NeedGrowth(int64(rec.hdr.Length)); ok {
			// This append and every one after it wait for the
			// allocation (the loop stops while it is in flight).
			if err := l.grow(&g); err != nil {
				l.fatal(err)
				return
			}
			continue
		}
		plan, err := l.core.PrepareAppend(&rec.hdr, now)
		if err != nil {
			l.failAt(rec.seq, fmt.Errorf("ringlog: prepare append at %d: %w", rec.base, err))
			return
		}
		if plan.BaseOffset != rec.base {
			panic(fmt.Sprintf("ringlog: invariant: core assigned base offset %d to the append promised %d", plan.BaseOffset, rec.base))
		}
		rec.plan = plan
		rec.state = stWriting
		l.start++
		if err := l.submitWrite(rec); err != nil {
			rec.state = stWritten // never reached the kernel
			l.fatal(err)
			return
		}
	}
}

// submitWrite queues a WRITE SQE for what is left of a record's frame.
func (l *Log) submitWrite(rec *record) error {
	sqe, err := l.getSQE()
	if err != nil {
		return err
	}
	fd, b := l.activeFd, rec.frame[rec.written:]
	if l.faults != nil {
		fd, b = l.faults.write(fd, rec.plan.Pos+rec.written, b)
	}
	sqe.PrepWrite(fd, b, uint64(rec.plan.Pos+rec.written))
	sqe.SetUserData(l.tag(kindWrite, uint32(rec.seq%appendsMax)))
	l.stats.Writes++
	return nil
}

// getSQE takes a submission slot, submitting what is queued to free some
// when the submission queue is full (we are on the ring's own thread).
func (l *Log) getSQE() (*ring.SQE, error) {
	if sqe := l.r.GetSQE(); sqe != nil {
		return sqe, nil
	}
	if _, err := l.r.Submit(); err != nil {
		return nil, fmt.Errorf("ringlog: submit: %w", err)
	}
	if sqe := l.r.GetSQE(); sqe != nil {
		return sqe, nil
	}
	return nil, fmt.Errorf("ringlog: submission queue full after submitting: %w", unix.EBUSY)
}

// Complete takes a completion whose user data carries this log's prefix.
// It reports what the completion finishes through the Sink and submits the
// follow-up work (the rest of a short write, a group sync, waiting appends).
func (l *Log) Complete(cqe ring.CQE) {
	l.enter()
	kind, index := l.splitTag(cqe.UserData)
	switch kind {
	case kindWrite:
		l.writeDone(index, cqe.Res)
	case kindSync:
		l.syncDone(index, cqe.Res)
	case kindGrow:
		l.growDone(index, cqe.Res)
	default:
		panic(fmt.Sprintf("ringlog: invariant: completion %#x of unknown kind %d", cqe.UserData, kind))
	}
	l.pump()
}

func (l *Log) writeDone(index uint32, res int32) {
	if index >= appendsMax || l.recs[index].state != stWriting {
		panic(fmt.Sprintf("ringlog: invariant: write completion for slot %d, which has no write in flight", index))
	}
	rec := &l.recs[index]
	if rec.seq >= l.failedSeq {
		// The log failed at or before this append: report it now that the
		// kernel no longer reads its bytes.
		rec.state = stWritten
		l.report(rec, l.failedErr())
		return
	}
	var err error
	switch {
	case res < 0 && segment.IsNoSpace(unix.Errno(-res)):
		// Nothing past rec.written reached the file: the rest is
		// written again once there is room (nospace.go).
		rec.state = stNoSpace
		l.holdForSpace(fmt.Errorf("ringlog: write segment %d at %d: %w", rec.plan.Segment.Base(), rec.plan.Pos+rec.written, unix.Errno(-res)))
		return
	case res < 0:
		err = unix.Errno(-res)
	case res == 0:
		err = io.ErrShortWrite // no progress: retrying would spin
	default:
		rec.written += int64(res)
		if rec.written < rec.plan.Len {
			l.stats.ShortWrites++
			if err := l.submitWrite(rec); err != nil {
				rec.state = stWritten
				l.fatal(err)
			}
			return
		}
	}
	rec.state = stWritten
	if err == nil {
		l.roomFound()
	}
	if err != nil {
		// What reached the disk is unknown, and a write error may come
		// back from the next fdatasync of any earlier write: nothing not
		// yet acknowledged is, and nothing more is synced.
		l.fatal(fmt.Errorf("ringlog: write segment %d at %d: %w", rec.plan.Segment.Base(), rec.plan.Pos+rec.written, err))
		return
	}
	l.commitWritten()
}

// commitWritten commits written appends in the order they were prepared,
// whatever order their completions came in.
func (l *Log) commitWritten() {
	for l.commit < l.start && l.commit < l.failedSeq {
		rec := &l.recs[l.commit%appendsMax]
		if rec.state != stWritten {
			break
		}
		if err := l.core.CommitAppend(&rec.plan); err != nil {
			panic(fmt.Sprintf("ringlog: invariant: appends commit in the order they were prepared: %v", err))
		}
		l.hot.add(&rec.plan, rec.hdr.MaxTimestampMs)
		l.commit++
		if l.everyAck {
			rec.state = stCommitted
			continue
		}
		l.report(rec, nil)
	}
	l.maybeAbort()
}

// report hands an append's outcome to the sink and frees its slot once all
// before it are reported too.
func (l *Log) report(rec *record, err error) {
	token, base := rec.token, rec.base
	rec.state = stDone
	rec.frame = nil
	l.inSink = true
	l.sink.AppendDone(token, base, err)
	l.inSink = false
	for l.head < l.tail && l.recs[l.head%appendsMax].state == stDone {
		l.recs[l.head%appendsMax].state = stFree
		l.head++
	}
}

// failAt makes the log unusable: the append at seq and every one after it
// fail (each reported once the kernel is done with its bytes), and pending
// flushes fail. Appends before seq still commit and are acknowledged as
// their writes and syncs complete (only for a core refusal, which is no
// storage error; storage errors go through fatal).
func (l *Log) failAt(seq uint64, err error) {
	if l.err == nil {
		l.err = err
	}
	l.failedSeq = min(l.failedSeq, seq)
	ferr := l.failedErr()
	for s := l.failedSeq; s < l.tail; s++ {
		rec := &l.recs[s%appendsMax]
		switch rec.state {
		case stQueued, stWritten, stCommitted, stNoSpace:
			l.report(rec, ferr)
		}
	}
	for l.flushHead != l.flushTail {
		w := l.flushes[l.flushHead%flushWaitersMax]
		l.flushHead++
		l.flushDone(w.token, ferr)
	}
	l.maybeAbort()
}

// fatal fails every append not yet reported and stops all syncs: used when
// what is durable is no longer known (a failed write or sync, a roll that
// failed half way, a ring that takes no more SQEs). Syncs still in flight
// complete but are not applied: nothing is acknowledged after the failure.
// The synchronous log underneath goes offline too, so that no roll,
// checkpoint, truncation or close moves its recovery point afterwards.
func (l *Log) fatal(err error) {
	l.syncFailed = true
	if !errors.Is(err, segment.ErrStorageFailed) {
		err = fmt.Errorf("%w: %w", segment.ErrStorageFailed, err)
	}
	if !l.closed {
		l.sync.Fail(err)
	}
	l.failAt(l.head, err)
}

// maybeAbort releases the core's reservations for appends that will never
// commit, once every append before the failure has committed.
func (l *Log) maybeAbort() {
	if l.err != nil && !l.aborted && l.commit >= min(l.failedSeq, l.start) {
		l.core.AbortAppends()
		l.aborted = true
	}
}
