package ringlog

import (
	"errors"
	"fmt"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

// Durability. Every sync is an operation in a FIFO, applied in issue order
// once it and everything before it completed:
//
//   - a group sync is one fdatasync of the active segment's data file; it
//     covers the offsets committed when it was issued (upto), and on
//     completion the core's recovery point moves to upto;
//   - a roll sync is three fdatasyncs (the old segment's data and indexes);
//     on completion segment.Log.FinishRoll syncs the folder (so the new
//     segment's entry is durable before anything in it is acknowledged),
//     moves the recovery point past the old segment and writes the
//     checkpoint, synchronously.
//
// Applying in order keeps "every offset below the recovery point is on disk"
// true across segments. At most one group sync is in flight: appends
// committed meanwhile wait for the next one, so a burst of appends costs
// one or two fdatasyncs, not one each.

// errRollHeld: a roll found no room for the new segment's files and the
// log holds until the retry (nospace.go); nothing failed.
var errRollHeld = errors.New("ringlog: roll held for room")

// roll closes the active segment (every write to it has completed) and
// starts the next: the new files are created and mapped synchronously by
// segment.Log.BeginRoll (no blocks: the first append grows the segment, see
// grow.go), the old segment's syncs go to the ring.
//
// A roll that finds the file system out of room creating the new files
// leaves the log as it was and holds it (nospace.go): it reports
// errRollHeld, and the roll is tried again with the held appends.
func (l *Log) roll() error {
	old, files, err := l.sync.BeginRoll()
	if err != nil {
		err = fmt.Errorf("ringlog: roll at %d: %w", l.core.End(), err)
		if segment.IsNoSpace(err) && !errors.Is(err, segment.ErrStorageFailed) {
			l.holdForSpace(err)
			return errRollHeld
		}
		return err
	}
	l.stats.Rolls++
	if err := l.refreshActive(); err != nil {
		return err
	}
	op := l.pushSync(old, old.Next(), len(files))
	index := (l.syncTail - 1) % syncOpsMax
	for i, f := range files {
		sqe, err := l.getSQE()
		if err != nil {
			// The SQEs not issued never complete: take them off so
			// the FIFO still drains.
			op.remaining -= len(files) - i
			op.err = err
			return err
		}
		sqe.PrepFsync(l.syncFd(int(f.Fd())), ring.FsyncDatasync)
		sqe.SetUserData(l.tag(kindSync, index))
	}
	return nil
}

// pushSync adds an operation to the sync FIFO; the caller checked there is
// room.
func (l *Log) pushSync(rolled *segment.Segment, upto int64, sqes int) *syncOp {
	if l.syncTail-l.syncHead >= syncOpsMax {
		panic("ringlog: invariant: sync operations within syncOpsMax")
	}
	op := &l.syncs[l.syncTail%syncOpsMax]
	*op = syncOp{roll: rolled, upto: upto, remaining: sqes}
	l.syncTail++
	l.lastIssuedUpto = max(l.lastIssuedUpto, upto)
	return op
}

// maybeSync issues a group sync of the active segment when one is owed and
// none is in flight: under FlushEveryAck for any committed append no sync
// covers yet, for a Flush whose appends are all written, and for a due
// interval tick.
func (l *Log) maybeSync() {
	if l.syncFailed || l.groupInFlight || l.syncTail-l.syncHead >= syncOpsMax {
		return
	}
	end := l.core.End()
	if end <= l.lastIssuedUpto {
		return
	}
	want := l.everyAck || l.tickDue
	for i := l.flushHead; !want && i != l.flushTail; i++ {
		t := l.flushes[i%flushWaitersMax].target
		want = t > l.lastIssuedUpto && t <= end
	}
	if !want {
		return
	}
	sqe, err := l.getSQE()
	if err != nil {
		l.fatal(err)
		return
	}
	if l.tickDue {
		l.tickDue = false
		l.lastSyncMs = l.tickMs
	}
	l.pushSync(nil, end, 1)
	l.groupInFlight = true
	sqe.PrepFsync(l.syncFd(l.activeFd), ring.FsyncDatasync)
	sqe.SetUserData(l.tag(kindSync, (l.syncTail-1)%syncOpsMax))
	l.stats.GroupSyncs++
}

func (l *Log) syncDone(index uint32, res int32) {
	// The slots with SQEs still in the kernel are exactly those with a
	// positive count.
	if index >= syncOpsMax || l.syncs[index].remaining <= 0 {
		panic(fmt.Sprintf("ringlog: invariant: sync completion for slot %d, which has no sync in flight", index))
	}
	op := &l.syncs[index]
	if res < 0 && op.err == nil {
		op.err = unix.Errno(-res)
	}
	op.remaining--
	if op.remaining == 0 && op.roll == nil {
		l.groupInFlight = false
	}
	l.applySyncs()
}

// applySyncs applies completed sync operations from the FIFO's head, in
// issue order, then reports what became durable. A failed sync fails the
// log: after an fdatasync error the kernel may have dropped the dirty pages,
// so nothing unacknowledged may be acknowledged.
func (l *Log) applySyncs() {
	for l.syncHead != l.syncTail && l.syncs[l.syncHead%syncOpsMax].remaining == 0 {
		op := l.syncs[l.syncHead%syncOpsMax]
		l.syncs[l.syncHead%syncOpsMax] = syncOp{}
		l.syncHead++
		if l.syncFailed {
			continue
		}
		err := op.err
		switch {
		case err != nil:
		case op.roll != nil:
			err = l.sync.FinishRoll(op.roll)
		default:
			l.core.Flushed(op.upto)
		}
		if err != nil {
			l.fatal(fmt.Errorf("ringlog: sync: %w", err))
		}
	}
	l.ackDurable()
}

// ackDurable reports the appends and flushes the recovery point now covers.
func (l *Log) ackDurable() {
	durable := l.core.RecoveryPoint()
	for l.head < l.commit {
		rec := &l.recs[l.head%appendsMax]
		if rec.state != stCommitted || rec.plan.NextOffset > durable {
			break
		}
		l.report(rec, nil)
	}
	for l.flushHead != l.flushTail {
		w := l.flushes[l.flushHead%flushWaitersMax]
		if w.target > durable {
			break
		}
		l.flushHead++
		l.flushDone(w.token, nil)
	}
}

func (l *Log) flushDone(token uint64, err error) {
	l.inSink = true
	l.sink.FlushDone(token, err)
	l.inSink = false
}

// Flush makes every append accepted so far durable and reports it with
// Sink.FlushDone: from Complete once a sync that started after their writes
// completed has completed, or from within this call when they are durable
// already, the log has failed, or flushWaitersMax flushes are waiting.
func (l *Log) Flush(token uint64) {
	l.enter()
	if err := l.usable(); err != nil {
		l.flushDone(token, err)
		return
	}
	if l.nextOffset <= l.core.RecoveryPoint() {
		l.flushDone(token, nil)
		return
	}
	if l.flushTail-l.flushHead >= flushWaitersMax {
		l.flushDone(token, ErrTooManyInFlight)
		return
	}
	l.flushes[l.flushTail%flushWaitersMax] = flushWaiter{token: token, target: l.nextOffset}
	l.flushTail++
	l.pump()
}

// Tick is the shard's timer. Under FlushIntervalMs it issues a group sync
// when the last one is at least the interval old and something is unsynced;
// appends under that policy are acknowledged when written, not synced.
func (l *Log) Tick(nowMs int64) {
	l.enter()
	if l.closed {
		return
	}
	if l.noSpace && l.err == nil && l.cfg.NowMs() >= l.noSpaceRetryMs {
		l.retrySpace()
	}
	if l.intervalMs == 0 || nowMs-l.lastSyncMs < l.intervalMs {
		return
	}
	l.tickDue, l.tickMs = true, nowMs
	l.pump()
}
