package ringlog

import (
	"errors"
	"fmt"
	"math"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
)

// Limits. Each is a count of slots allocated once at Open, so nothing on the
// data path grows.
const (
	// appendsMax bounds appends accepted and not yet reported (written,
	// waiting for a roll, or waiting for a sync). A power of two: a record's
	// slot is its sequence number masked.
	appendsMax = 256
	// syncOpsMax bounds sync operations in flight: at most one group sync,
	// and one per roll whose old segment is still being synced.
	syncOpsMax = 8
	// flushWaitersMax bounds Flush calls waiting for their sync.
	flushWaitersMax = 64
	// hotFramesMax bounds the in-memory table of recent frames that reads
	// are served from without a syscall (see read.go).
	hotFramesMax = 1024
)

// Errors a caller can act on.
var (
	// ErrTooManyInFlight: appendsMax appends (or flushWaitersMax flushes) are
	// outstanding; reap completions and try again.
	ErrTooManyInFlight = errors.New("ringlog: too many operations in flight")
	// ErrFailed: a write, sync or other storage operation failed; the log
	// is offline (fail-stop) until it is closed and opened again (recovery
	// then finds what is on disk). Errors wrapping it also wrap
	// segment.ErrStorageFailed and the cause, except after the core
	// refused to prepare an append (which breaks an invariant, and fails
	// only that append and those after it).
	ErrFailed = errors.New("ringlog: log failed; reopen it")
	// ErrBusy: the operation needs every append and sync completed.
	ErrBusy = errors.New("ringlog: operations in flight")
)

// Sink receives a log's results on the shard's thread: from Complete, Tick
// or Flush, or from within Append when the log fails during it (each method
// says which). Its methods must not call back into the Log.
type Sink interface {
	// AppendDone reports an accepted append: err is nil once it is durable
	// as the flush policy requires; the frame's bytes are no longer used.
	AppendDone(token uint64, baseOffset int64, err error)
	// FlushDone reports a Flush.
	FlushDone(token uint64, err error)
}

// Stats counts the work a Log did, for tests and benchmarks.
type Stats struct {
	Appends     int64 // appends accepted
	Writes      int64 // WRITE SQEs, resubmissions after short writes included
	ShortWrites int64 // writes that completed short and were resubmitted
	GroupSyncs  int64 // fdatasyncs of the active segment (group commit, Flush, interval)
	Rolls       int64 // segments rolled (each synced with three fdatasyncs)
	HotReads    int64 // reads served from the frame table
	ColdReads   int64 // reads served by the synchronous path (pread)
	Grows       int64 // allocation steps of a segment's files (FALLOCATE SQEs)
	GrownBytes  int64 // bytes the completed allocation steps reserved, the log's files' growth on disk
	NoSpace     int64 // FALLOCATEs and WRITEs that found the file system out of room, held and retried
}

// Log is one partition's log driven through a shard's ring. It is not safe
// for concurrent use: the shard's goroutine calls every method.
type Log struct {
	r      *ring.Ring
	sync   *segment.Log // recovery, rolls, checkpoints, trims, cold reads
	core   *segment.Core
	cfg    segment.Config
	sink   Sink
	prefix uint32

	everyAck   bool
	intervalMs int64 // > 0 with FlushIntervalMs
	activeFd   int
	// activeIdxFds are the active segment's offset and time index files,
	// which a growth allocates along with its data file.
	activeIdxFds [2]int

	// Append records by sequence number: [head, commit) written and
	// committed, waiting to be reported; [commit, start) prepared and
	// submitted; [start, tail) accepted but waiting (for a roll that waits
	// for the writes before it). A record is reported before head passes
	// it, and records at or after failedSeq never commit.
	recs       []record
	head       uint64
	commit     uint64
	start      uint64
	tail       uint64
	failedSeq  uint64
	nextOffset int64 // the base offset the next accepted append gets
	// leaderEpoch is what Append stamps (SetLeaderEpoch); latestEpoch is
	// the synchronous log's LatestEpoch, kept here so that an append takes
	// no lock: it changes only through noteEpoch and Truncate.
	leaderEpoch int32
	latestEpoch int32
	aborted     bool

	// Sync operations in issue order; their effects apply in that order.
	syncs          [syncOpsMax]syncOp
	syncHead       uint32
	syncTail       uint32
	groupInFlight  bool
	lastIssuedUpto int64 // every offset below it is covered by an issued sync
	tickDue        bool
	tickMs         int64
	lastSyncMs     int64

	// growing has a bit per file (growData, ...) whose FALLOCATE of the
	// growth is in flight; no write is submitted while it is non-zero.
	growing uint8
	growth  segment.Growth
	growErr error

	// noSpace: a FALLOCATE or WRITE found the file system out of room
	// (nospace.go); nothing new is submitted until noSpaceRetryMs, when
	// the held work is tried again. noSpaceErr is the last such error.
	noSpace        bool
	noSpaceRetryMs int64
	noSpaceErr     error
	// spaceShort stays set from a refusal until a retried growth or
	// write succeeds, so that NoSpace does not flicker off between a
	// retry's submission and its refusal.
	spaceShort bool

	flushes    [flushWaitersMax]flushWaiter
	flushHead  uint32
	flushTail  uint32
	err        error
	syncFailed bool
	inSink     bool
	closed     bool

	hot   hotTable
	spans []segment.Span
	stats Stats

	// faults, set only by tests, injects I/O failures into what the log
	// submits to the ring (see faults.go); nil in production.
	faults ioFaults
}

type recState uint8

const (
	stFree      recState = iota
	stQueued             // accepted, not yet prepared
	stWriting            // a WRITE SQE for it is in the kernel
	stWritten            // the kernel is done with its bytes; waiting to commit
	stCommitted          // committed; waiting for a sync (FlushEveryAck)
	stNoSpace            // its write found no room; the rest waits to be written again
	stDone               // reported
)

type record struct {
	seq     uint64
	token   uint64
	frame   []byte
	hdr     schema.FrameHeader
	base    int64
	plan    segment.AppendPlan
	written int64
	state   recState
}

type syncOp struct {
	roll      *segment.Segment // the rolled segment; nil for a group sync
	upto      int64            // a group sync makes every offset below it durable
	remaining int              // SQEs not yet completed
	err       error
}

type flushWaiter struct {
	token  uint64
	target int64
}

// Open opens (creating if needed) the partition log in dir, recovering it
// synchronously with segment.Open (it blocks: a shard opens its partitions
// before serving them), and drives it through r from then on. r must have
// been created on the calling thread. cfg.FS must be the OS filesystem, or
// a DescriptorFS over it: the ring needs real descriptors.
func Open(r *ring.Ring, dir string, cfg segment.Config, userDataPrefix uint32, sink Sink) (*Log, error) {
	if r == nil || sink == nil {
		return nil, fmt.Errorf("ringlog: open %s: a ring and a sink are required", dir)
	}
	if cfg.FS != nil {
		_, isOS := cfg.FS.(segment.OSFS)
		if _, wraps := cfg.FS.(DescriptorFS); !isOS && !wraps {
			return nil, fmt.Errorf("ringlog: open %s: filesystem %T has no descriptors for the ring", dir, cfg.FS)
		}
	}
	sl, err := segment.Open(dir, cfg)
	if err != nil {
		return nil, err
	}
	core := sl.Core()
	l := &Log{
		r: r, sync: sl, core: core, cfg: core.Config(), sink: sink, prefix: userDataPrefix,
		recs:      make([]record, appendsMax),
		failedSeq: math.MaxUint64,
		spans:     make([]segment.Span, 0, hotFramesMax),
	}
	l.everyAck = l.cfg.Flush == segment.FlushEveryAck
	if ms, ok := l.cfg.Flush.IntervalMs(); ok {
		l.intervalMs = max(ms, 1)
	}
	if err := l.refreshActive(); err != nil {
		sl.Close()
		return nil, err
	}
	l.nextOffset = core.End()
	l.leaderEpoch, l.latestEpoch = sl.LeaderEpoch(), sl.LatestEpoch()
	l.lastIssuedUpto = core.RecoveryPoint()
	l.lastSyncMs = l.cfg.NowMs()
	return l, nil
}

// refreshActive caches the active segment's descriptors: every write and
// group sync uses its data file's, a growth all three.
func (l *Log) refreshActive() error {
	f, err := l.sync.DataFile(l.core.Active())
	if err != nil {
		return err
	}
	off, tim, err := l.sync.IndexFiles(l.core.Active())
	if err != nil {
		return err
	}
	l.activeFd = int(f.Fd())
	l.activeIdxFds = [2]int{int(off.Fd()), int(tim.Fd())}
	return nil
}

// LogStart is the first offset readers may see.
func (l *Log) LogStart() int64 { return l.core.LogStart() }

// End is the log end offset: the offset after the last written frame.
// Accepted appends still in flight are not below it yet.
func (l *Log) End() int64 { return l.core.End() }

// Size is the bytes of segment data the log holds.
func (l *Log) Size() int64 { return l.core.Size() }

// RecoveryPoint is the offset below which everything is durable.
func (l *Log) RecoveryPoint() int64 { return l.core.RecoveryPoint() }

// Segments lists the segments, oldest first (the core's own slice).
func (l *Log) Segments() []*segment.Segment { return l.core.Segments() }

// SetLeaderEpoch makes Append and AppendChecked stamp epoch on every frame
// from now on. An epoch below the latest in the log (see LatestEpoch) or
// below the one set before is refused with segment.ErrEpochRegress.
// Nothing is written until the first frame of the epoch is appended.
func (l *Log) SetLeaderEpoch(epoch int32) error {
	if err := l.usable(); err != nil {
		return err
	}
	if err := l.sync.SetLeaderEpoch(epoch); err != nil {
		return err
	}
	l.leaderEpoch = epoch
	return nil
}

// LeaderEpoch is the epoch appends are stamped with.
func (l *Log) LeaderEpoch() int32 { return l.leaderEpoch }

// Epochs is the log's leader-epoch list, oldest first (a copy): the epoch
// of every accepted append, with the offset of its first frame. Entries of
// appends still in flight are in it already (their file is written before
// their frames).
func (l *Log) Epochs() []segment.EpochEntry { return l.sync.Epochs() }

// LatestEpoch is the epoch of the last accepted append, or
// segment.NoEpoch.
func (l *Log) LatestEpoch() int32 { return l.latestEpoch }

// Stats returns the work counters.
func (l *Log) Stats() Stats { return l.stats }

// Err is the failure that made the log unusable, or nil.
func (l *Log) Err() error { return l.err }

// Idle reports whether no append, sync or flush is outstanding: nothing of
// the log's is in the kernel and nothing waits to be reported.
func (l *Log) Idle() bool {
	return l.head == l.tail && l.syncHead == l.syncTail && l.flushHead == l.flushTail && l.growing == 0
}

// Fd is the descriptor of a span's segment, for splicing it to a socket.
// Closed segments that recovery trusted are opened on first use (a blocking
// open, once per segment).
func (l *Log) Fd(s *segment.Segment) (int, error) {
	f, err := l.sync.DataFile(s)
	if err != nil {
		return -1, err
	}
	return int(f.Fd()), nil
}

func (l *Log) usable() error {
	if l.closed {
		return segment.ErrClosed
	}
	if l.err != nil {
		return l.failedErr()
	}
	return nil
}

func (l *Log) failedErr() error { return fmt.Errorf("%w: %w", ErrFailed, l.err) }

// DescriptorFS is a filesystem wrapper over segment.OSFS whose files' Fd
// are the real descriptors (a test's fault-injecting or crash-modelling
// layer); the ring submits I/O against them.
type DescriptorFS interface {
	segment.FS
	// RealDescriptors marks the wrapper; it does nothing.
	RealDescriptors()
}

// storageFailed takes the log offline after a storage error of the
// synchronous path (a truncation, deletion or retention pass whose I/O
// failed), as fatal does for the ring's own I/O.
func (l *Log) storageFailed(err error) error {
	if errors.Is(err, segment.ErrStorageFailed) {
		l.fatal(err)
		return l.failedErr()
	}
	return err
}

// Close syncs everything, writes the checkpoint and closes the files, all
// synchronously (segment.Log.Close). The shard completes every outstanding
// operation first: Close refuses with ErrBusy while any is in flight, since
// the kernel may still be using frame bytes and descriptors. A failed log
// only closes its files (nothing is synced or checkpointed after a storage
// error) and returns its failure.
func (l *Log) Close() error {
	if l.closed {
		return segment.ErrClosed
	}
	if !l.Idle() {
		return ErrBusy
	}
	l.closed = true
	l.hot.clear()
	err := l.sync.Close()
	if l.err == nil {
		err = l.storageFailed(err)
	}
	if l.err != nil {
		return l.failedErr()
	}
	return err
}

// Truncate drops every frame holding an offset at or after offset (see
// segment.Log.Truncate); it runs synchronously and needs the log idle.
func (l *Log) Truncate(offset int64) error {
	return l.rewriteIdle(func() error { return l.sync.Truncate(offset) })
}

// ResetTo empties the log and starts it again at offset (see
// segment.Log.ResetTo: a follower below its leader's log start); it runs
// synchronously and needs the log idle.
func (l *Log) ResetTo(offset int64) error {
	return l.rewriteIdle(func() error { return l.sync.ResetTo(offset) })
}

// rewriteIdle runs a synchronous change of the log's end (a truncation, a
// reset) on an idle log and takes the ring's state from the result.
func (l *Log) rewriteIdle(change func() error) error {
	if err := l.usable(); err != nil {
		return err
	}
	if !l.Idle() {
		return ErrBusy
	}
	if err := change(); err != nil {
		return l.storageFailed(err)
	}
	l.hot.clear()
	l.nextOffset = l.core.End()
	l.latestEpoch = l.sync.LatestEpoch()
	l.lastIssuedUpto = l.core.RecoveryPoint()
	return l.refreshActive()
}

// DeleteRecordsBefore advances the log start to offset and deletes the
// closed segments wholly below it (synchronously: unlinks and a checkpoint).
// Spans from an earlier Read may lead to deleted segments afterwards (see
// KeepDeletedDataFiles). It refuses with ErrBusy while a roll's syncs are in
// flight: they name the rolled segment's descriptors, which deleting it
// would close under the kernel. A group sync names only the active
// segment's data file, which is never deleted, so it does not stop a
// deletion: under steady appends one is nearly always in flight, and
// retention refused for it would never run.
func (l *Log) DeleteRecordsBefore(offset int64) error {
	if err := l.usable(); err != nil {
		return err
	}
	if l.rollSyncInFlight() {
		return ErrBusy
	}
	err := l.sync.DeleteRecordsBefore(offset)
	l.hot.trim(l.core.LogStart())
	return l.storageFailed(err)
}

// ApplyRetention deletes closed segments past the time and size bounds
// (synchronously, and refused while a roll's syncs are in flight, like
// DeleteRecordsBefore).
func (l *Log) ApplyRetention(nowMs int64) error {
	return l.ApplyRetentionBelow(nowMs, math.MaxInt64)
}

// ApplyRetentionBelow is ApplyRetention bounded to segments wholly below
// limit (segment.Core.ApplyRetentionBelow): a replicated partition passes
// its high watermark.
func (l *Log) ApplyRetentionBelow(nowMs, limit int64) error {
	if err := l.usable(); err != nil {
		return err
	}
	if l.rollSyncInFlight() {
		return ErrBusy
	}
	err := l.sync.ApplyRetentionBelow(nowMs, limit)
	l.hot.trim(l.core.LogStart())
	return l.storageFailed(err)
}

// rollSyncInFlight reports whether a roll's fdatasyncs, which name the
// rolled segment's three descriptors, are in the FIFO.
func (l *Log) rollSyncInFlight() bool {
	for i := l.syncHead; i != l.syncTail; i++ {
		if l.syncs[i%syncOpsMax].roll != nil {
			return true
		}
	}
	return false
}

// KeepDeletedDataFiles hands fn the open data file of each segment that a
// deletion, retention pass or truncation removes, instead of closing it
// (segment.Log.KeepDeletedDataFiles): spans of it may still be queued for
// a socket, naming its descriptor. fn runs on the shard's thread inside
// the call that deleted the segment and must not call into the Log.
func (l *Log) KeepDeletedDataFiles(fn func(s *segment.Segment, data segment.File)) {
	l.sync.KeepDeletedDataFiles(fn)
}
