package server

import (
	"errors"
	"os"

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
	topic           string
	index           int32
	slot            uint32 // in the shard's partition table; routes its CQEs
	log             *ringlog.Log
	everyAck        bool // FlushEveryAck: only synced data is visible
	maxMessageBytes int
	shard           *Shard
	metrics         *partitionMetrics

	// parts are produce parts in flight, by token; backlog holds parts
	// whose frames wait for room in the log's in-flight window.
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
	closing      bool // deleted: close and remove once idle
	dir          string
	// storageFailureNoticed: the log's storage failed and checkStorage has
	// logged, counted and reported it (partition_offline.go).
	storageFailureNoticed bool
	// offlineReport: what the controller was told of it.
	offlineReport offlineReport
}

// appendPart is one produce request's frames for one partition.
type appendPart struct {
	token    uint64
	rest     []byte // frames not yet handed to the log
	pending  int    // frames handed to the log and not yet reported
	base     int64
	records  uint32
	bytes    int
	err      error
	finished bool
	done     func(code fb.ErrorCode, base, logStart int64)
}

// highWatermark is the end of what readers may see: the log end, or under
// FlushEveryAck the synced end, so that nothing a crash could take back is
// ever served.
func (p *partition) highWatermark() int64 {
	if p.everyAck {
		return p.log.RecoveryPoint()
	}
	return p.log.End()
}

// startAppend hands a checked part's frames to the log; done runs on this
// shard once all are durable under the flush policy, or one failed.
func (p *partition) startAppend(frames []byte, records uint32, done func(code fb.ErrorCode, base, logStart int64)) {
	p.nextToken++
	ap := &appendPart{token: p.nextToken, rest: frames, base: -1, records: records, bytes: len(frames), done: done}
	p.parts[ap.token] = ap
	if len(p.backlog) > 0 {
		p.backlog = append(p.backlog, ap)
		return
	}
	if !p.submit(ap) {
		p.backlog = append(p.backlog, ap)
	}
}

// submit hands the part's remaining frames to the log until it refuses for
// lack of room; it reports whether every frame went in.
func (p *partition) submit(ap *appendPart) bool {
	for len(ap.rest) > 0 && ap.err == nil {
		// appendFrames checked every frame (CRC included) before handing
		// them over; only the header is read again here.
		h, err := schema.ParseFrameHeader(ap.rest)
		if err != nil {
			ap.err = err
			break
		}
		n := int(h.Length)
		if n > len(ap.rest) {
			panic("server: invariant: a checked frame runs past its produce part")
		}
		off, err := p.log.AppendChecked(ap.rest[:n], h, ap.token)
		if errors.Is(err, ringlog.ErrTooManyInFlight) {
			return false
		}
		if err != nil {
			ap.err = err
			break
		}
		if ap.base < 0 {
			ap.base = off
		}
		ap.pending++
		ap.rest = ap.rest[n:]
	}
	p.maybeFinish(ap)
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

func (p *partition) maybeFinish(ap *appendPart) {
	if ap.finished || ap.pending > 0 || (len(ap.rest) > 0 && ap.err == nil) {
		return
	}
	ap.finished = true
	delete(p.parts, ap.token)
	if ap.err != nil {
		ap.done(fb.ErrorCodeStorageError, -1, -1)
	} else {
		p.metrics.appended(uint64(ap.bytes), uint64(ap.records), p.log.End())
		ap.done(fb.ErrorCodeNone, ap.base, p.log.LogStart())
	}
	p.wakeWaiters()
}

// drainBacklog resubmits parts that waited for room, in order.
func (p *partition) drainBacklog() {
	for len(p.backlog) > 0 {
		if !p.submit(p.backlog[0]) {
			return
		}
		p.backlog[0] = nil
		p.backlog = p.backlog[1:]
	}
}

// complete routes one of the log's CQEs, then moves queued work along.
func (p *partition) complete(cqe ring.CQE) {
	p.log.Complete(cqe)
	p.drainBacklog()
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
