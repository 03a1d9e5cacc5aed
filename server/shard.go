package server

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/server/mailbox"
)

// inboxCapacity bounds the messages waiting for a shard.
const inboxCapacity = 4096

// Shard is one core's share of the broker. Everything in it is touched only
// by its own thread, except the inbox (any thread pushes) and the stop flag.
type Shard struct {
	id      int
	cpu     int // -1: not pinned
	log     *slog.Logger
	handler Handler
	now     func() int64 // wall clock in ms; a field so tests can step it

	connIdleMaxMs int64
	// drainWaitMaxMs bounds a stop's wait for answers; drainEndMs is when
	// the wait of the stop in progress runs out.
	drainWaitMaxMs int64
	drainEndMs     int64

	r        *ring.Ring
	bufs     *ring.BufRing
	bufRefs  []int32 // per provided buffer: holds outstanding beyond the receive
	listenFD int
	eventFD  int // doorbell for threads without a ring, and for Stop
	eventBuf [8]byte
	tickTS   unix.Timespec

	conns     []*conn
	freeSlots []uint32
	open      int

	// Outbound connections (outbound.go), in a table of their own.
	outs    []*outConn
	outFree []uint32
	outOpen int

	inbox    *mailbox.Queue[func(*Shard)]
	deferred []func(*Shard) // work queued on this shard for the end of the turn
	peers    []*Shard       // every shard of the server, by id
	begin    chan struct{}  // closed once every shard is set up
	stopping atomic.Bool
	tid      atomic.Int32 // the OS thread the shard runs on
	draining bool
	// drainBegun is draining, readable from other threads (tests wait on it).
	drainBegun atomic.Bool
	// drainReportAtMs is when a stop that is still waiting next says why.
	drainReportAtMs int64
	done            chan struct{}
	err             error

	// Pooled buffers for large requests received into place, and the
	// budget their bytes are reserved from.
	directFree         map[int][]*pooledBuf
	directFreeBytes    int
	directPoolCapBytes int
	budget             requestBudget

	// Pipes lent to connections while they splice file bytes.
	freePipes   []*pipePair
	pipes       int
	pipeWaiters []ConnRef

	batch [completionBatchMax]*ring.CQE
	req   Request // reused for every dispatch

	// Counters, read by the metrics exporter through Stats.
	stats ShardStats
}

// ShardStats are a shard's running counts.
type ShardStats struct {
	Accepted    atomic.Uint64
	Closed      atomic.Uint64
	Requests    atomic.Uint64
	BytesIn     atomic.Uint64
	BytesOut    atomic.Uint64
	Submissions atomic.Uint64
	DirectRecvs atomic.Uint64 // large requests received into their own buffer
	DirectReuse atomic.Uint64 // ... into a buffer reused from the shard's pool
	// Answers whose file bytes were spliced to the socket, and the time
	// from their envelope being sent to their last byte leaving, summed.
	SplicedAnswers atomic.Uint64
	SpliceNanos    atomic.Uint64
	// Splice chains that moved less than they asked (a short socket send,
	// most often) and were finished by single sends.
	SpliceChainsStopped atomic.Uint64
	Completions         atomic.Uint64
	Open                atomic.Int64
	// The request budget: bytes reserved by large requests, connections
	// waiting for it now, and waits begun.
	RequestBudgetUsedBytes atomic.Int64
	RequestBudgetPeakBytes atomic.Int64 // the most RequestBudgetUsedBytes has been
	RequestBudgetWaiting   atomic.Int64
	RequestBudgetWaits     atomic.Uint64
	RequestBudgetPassed    atomic.Uint64 // requests granted ahead of waiting ones
	// Bytes the waiting connections hold in hand, and connections closed
	// because theirs would pass the bound.
	RequestBudgetWaitingBytes atomic.Int64
	RequestBudgetClosed       atomic.Uint64
	// Outbound connections: open now, dialed and closed in all, bytes
	// each way, and the receives that brought bytes in.
	OutboundOpen     atomic.Int64
	OutboundDialed   atomic.Uint64
	OutboundClosed   atomic.Uint64
	OutboundBytesIn  atomic.Uint64
	OutboundBytesOut atomic.Uint64
	OutboundRecvs    atomic.Uint64
}

type shardConfig struct {
	id          int
	cpu         int
	listenFD    int
	handler     Handler
	log         *slog.Logger
	connIdleMax time.Duration
	// drainWaitMax: see Config.DrainWaitMax.
	drainWaitMax time.Duration
	// requestBudgetBytes is this shard's share of Config.RequestBudgetBytes.
	requestBudgetBytes int64
}

func newShard(cfg shardConfig) (*Shard, error) {
	inbox, err := mailbox.New[func(*Shard)](inboxCapacity)
	if err != nil {
		return nil, err
	}
	// Blocking: io_uring answers a read of a non-blocking descriptor with
	// EAGAIN instead of waiting for it to become readable.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	idleMs := cfg.connIdleMax.Milliseconds()
	if idleMs <= 0 {
		idleMs = connIdleMaxMsDefault
	}
	budgetBytes := cfg.requestBudgetBytes
	if budgetBytes <= 0 {
		budgetBytes = requestBudgetBytesDefault
	}
	drainMs := cfg.drainWaitMax.Milliseconds()
	if drainMs <= 0 {
		drainMs = drainWaitMaxMsDefault
	}
	return &Shard{
		id: cfg.id, cpu: cfg.cpu, log: cfg.log.With("shard", cfg.id), handler: cfg.handler,
		connIdleMaxMs: idleMs, drainWaitMaxMs: drainMs,
		now:      func() int64 { return time.Now().UnixMilli() },
		listenFD: cfg.listenFD, eventFD: efd,
		inbox: inbox, done: make(chan struct{}),
		budget:             newRequestBudget(budgetBytes),
		directPoolCapBytes: int(min(directPoolBytesMax, budgetBytes/directPoolBudgetShare)),
	}, nil
}

// closeUnstarted releases what newShard opened, for a shard whose run was
// never called.
func (sh *Shard) closeUnstarted() {
	if sh.listenFD >= 0 {
		unix.Close(sh.listenFD)
		sh.listenFD = -1
	}
	unix.Close(sh.eventFD)
}

// ThreadID is the id of the OS thread the shard is locked to (for
// operators and tests reading /proc/self/task/<tid>).
func (sh *Shard) ThreadID() int { return int(sh.tid.Load()) }

// ID is the shard's index.
func (sh *Shard) ID() int { return sh.id }

// Ring is the shard's ring, for handlers that submit their own work.
func (sh *Shard) Ring() *ring.Ring { return sh.r }

// Stats are the shard's counters.
func (sh *Shard) Stats() *ShardStats { return &sh.stats }

// Post runs fn on the shard's thread. It may be called from any goroutine;
// it fails when the shard's inbox is full. A shard that is draining still
// runs what it is sent (answers for requests in flight); once it has
// stopped, nothing it is sent runs.
func (sh *Shard) Post(fn func(*Shard)) error {
	if !sh.inbox.Push(fn) {
		return errInboxFull
	}
	if sh.inbox.Arm() {
		return sh.ringEventFD()
	}
	return nil
}

// PostFrom is Post called on another shard's thread (from): the doorbell is
// an IORING_OP_MSG_RING on the sender's ring, which goes to the kernel with
// the sender's next batch and costs no syscall of its own. Called with
// from == sh, fn runs at the end of the current turn.
func (sh *Shard) PostFrom(from *Shard, fn func(*Shard)) error {
	if from == sh {
		sh.deferred = append(sh.deferred, fn)
		return nil
	}
	if from == nil {
		return sh.Post(fn)
	}
	if !sh.inbox.Push(fn) {
		return errInboxFull
	}
	if sh.inbox.Arm() {
		sqe := from.sqe()
		sqe.PrepMsgRing(sh.r.FD(), 0, tag(opMsgRing, 0, 0), 0)
		sqe.SetUserData(tag(opMsgRingSent, uint32(sh.id), 0))
		sqe.SetFlags(ring.SQECQESkipSuccess)
	}
	return nil
}

// Defer runs fn on this shard at the end of the current turn; it must be
// called on the shard's thread.
func (sh *Shard) Defer(fn func(*Shard)) { sh.deferred = append(sh.deferred, fn) }

// errInboxFull is the answer to a message for a shard whose mailbox is
// full.
var errInboxFull = errors.New("server: shard inbox full")

func (sh *Shard) ringEventFD() error {
	var one = [8]byte{1}
	_, err := unix.Write(sh.eventFD, one[:])
	if err == unix.EAGAIN {
		return nil // the counter is saturated: a wake-up is pending anyway
	}
	return err
}

// stop asks the shard to finish: stop accepting, answer what is in flight,
// close its connections, and return from run.
func (sh *Shard) stop() {
	sh.stopping.Store(true)
	sh.ringEventFD()
}

// run is the shard's event loop. It owns the calling goroutine's thread
// until the shard stops, and reports start-up through started.
func (sh *Shard) run(started chan<- error) {
	defer close(sh.done)
	runtime.LockOSThread()
	// A pinned thread is never handed back to the runtime: it ends with
	// this goroutine, so that no other goroutine runs on a thread bound
	// to the shard's CPU.
	if sh.cpu < 0 {
		defer runtime.UnlockOSThread()
	}
	sh.tid.Store(int32(unix.Gettid()))
	if err := sh.setup(); err != nil {
		sh.teardown()
		started <- err
		return
	}
	started <- nil
	// Wait until every shard is set up: from here on peers' rings may be
	// addressed, and the channel close orders their setup before our reads.
	<-sh.begin
	sh.err = sh.loop()
	sh.teardown()
}

func (sh *Shard) setup() error {
	if sh.cpu >= 0 {
		if err := pinToCPU(sh.cpu); err != nil {
			return fmt.Errorf("shard %d: pin to cpu %d: %w", sh.id, sh.cpu, err)
		}
	}
	r, err := ring.New(ringEntriesDefault, ring.Options{Flags: ring.ShardFlags, CQEntries: ringEntriesDefault * cqPerSQ})
	if err != nil {
		return fmt.Errorf("shard %d: io_uring setup: %w", sh.id, err)
	}
	sh.r = r
	sh.bufs, err = r.NewBufRing(recvGroupID, recvBufferCount, recvBufferBytes)
	if err != nil {
		return fmt.Errorf("shard %d: receive buffers: %w", sh.id, err)
	}
	sh.bufRefs = make([]int32, recvBufferCount)
	sh.armAccept()
	sh.armEventFD()
	sh.tickTS = unix.NsecToTimespec(int64(tickInterval))
	sqe := sh.sqe()
	sqe.PrepTimeout(&sh.tickTS, 0, ring.TimeoutMultishot)
	sqe.SetUserData(tag(opTick, 0, 0))
	return nil
}

func (sh *Shard) teardown() {
	for _, c := range sh.conns {
		if c != nil && c.state != 0 {
			unix.Close(c.fd)
			c.state = 0
		}
	}
	sh.closeOutboundFDs()
	sh.closePipes()
	if sh.bufs != nil {
		sh.bufs.Close()
	}
	if sh.r != nil {
		sh.r.Close()
	}
	if sh.listenFD >= 0 {
		unix.Close(sh.listenFD)
		sh.listenFD = -1
	}
	unix.Close(sh.eventFD)
}

// sqe returns a free SQE, submitting what is queued when the submission
// queue is full (so it never fails while the kernel accepts work).
func (sh *Shard) sqe() *ring.SQE {
	for {
		if s := sh.r.GetSQE(); s != nil {
			sh.stats.Submissions.Add(1)
			return s
		}
		if _, err := sh.r.Submit(); err != nil && err != unix.EBUSY && err != unix.EAGAIN {
			panic(fmt.Sprintf("server: shard %d: io_uring submit: %v", sh.id, err))
		}
	}
}

// reserveSQEs submits what is queued if fewer than n SQEs are free, so the
// next n SQEs (a linked chain) go to the kernel in one submission.
func (sh *Shard) reserveSQEs(n int) {
	for int(sh.r.SQSpace()) < n {
		if _, err := sh.r.Submit(); err != nil && err != unix.EBUSY && err != unix.EAGAIN {
			panic(fmt.Sprintf("server: shard %d: io_uring submit: %v", sh.id, err))
		}
	}
}

func (sh *Shard) loop() error {
	for {
		if _, err := sh.r.SubmitAndWait(1); err != nil && err != unix.EBUSY && err != unix.EAGAIN && err != unix.ETIME {
			return fmt.Errorf("shard %d: io_uring_enter: %w", sh.id, err)
		}
		n := sh.r.PeekBatchCQE(sh.batch[:])
		for _, c := range sh.batch[:n] {
			sh.complete(*c)
		}
		sh.r.CQAdvance(uint32(n))
		sh.stats.Completions.Add(uint64(n))
		sh.runDeferred()
		sh.bufs.Publish()
		if sh.stopping.Load() {
			if !sh.draining {
				sh.beginDrain()
			}
			if sh.inbox.Len() > 0 {
				// A message whose doorbell has not come yet (or never
				// will: a peer that stopped first) is run now.
				sh.drainInbox()
			}
			if sh.open == 0 && sh.outOpen == 0 && sh.handlerIdle() && sh.inbox.Len() == 0 && sh.peersClosed() {
				// Doorbells to peers ride on this ring's next submission:
				// submit once more so none is left behind in the queue.
				if _, err := sh.r.Submit(); err != nil && err != unix.EBUSY && err != unix.EAGAIN {
					return fmt.Errorf("shard %d: final io_uring submit: %w", sh.id, err)
				}
				return nil
			}
			sh.reportSlowDrain()
			sh.closeStragglers()
		}
	}
}

// complete dispatches one completion by its tag.
func (sh *Shard) complete(cqe ring.CQE) {
	if k := tagKind(cqe.UserData); k >= opSpliceChain {
		if c := sh.connFor(cqe.UserData); c != nil {
			sh.onSpliceChain(c, int(k-opSpliceChain), cqe)
		}
		return
	}
	switch tagKind(cqe.UserData) {
	case opOutConnect, opOutRecv, opOutSend, opOutClose:
		sh.completeOutbound(cqe)
	case opAccept:
		sh.onAccept(cqe)
	case opRecv:
		if c := sh.connFor(cqe.UserData); c != nil {
			sh.onRecv(c, cqe)
		} else if cqe.Flags&ring.CQEFBuffer != 0 {
			sh.bufRecycle(cqe.BufferID())
		}
	case opSend:
		if c := sh.connFor(cqe.UserData); c != nil {
			sh.onSend(c, cqe)
		}
	case opSendLinked:
		if c := sh.connFor(cqe.UserData); c != nil {
			sh.onSendLinked(c, cqe)
		}
	case opCancel:
		if c := sh.connFor(cqe.UserData); c != nil {
			sh.opDone(c)
		}
	case opRecvDirect:
		if c := sh.connFor(cqe.UserData); c != nil {
			sh.onRecvDirect(c, cqe)
		}
	case opShutdown:
		if c := sh.connFor(cqe.UserData); c != nil {
			sh.opDone(c)
		}
	case opDoorbell:
		sh.onDoorbell(cqe)
	case opTick:
		sh.onTick(cqe)
	case opSpliceOut:
		if c := sh.connFor(cqe.UserData); c != nil {
			sh.onSpliceOut(c, cqe)
		}
	case opDisk:
		if d, ok := sh.handler.(DiskHandler); ok {
			d.CompleteDisk(sh, cqe)
		} else {
			panic(fmt.Sprintf("server: shard %d: disk completion without a disk handler", sh.id))
		}
	case opIgnore:
	case opMsgRing:
		sh.drainInbox()
	case opMsgRingSent:
		// A doorbell to another shard failed (its ring is gone or full):
		// fall back to its eventfd so the message is not stranded.
		if peer := int(tagSlot(cqe.UserData)); peer < len(sh.peers) {
			sh.peers[peer].ringEventFD()
		}
	default:
		panic(fmt.Sprintf("server: shard %d: completion with unknown tag %#x", sh.id, cqe.UserData))
	}
}

// connFor finds the connection a completion belongs to; nil when the slot
// was freed or reused since the operation was submitted.
func (sh *Shard) connFor(t uint64) *conn {
	slot := tagSlot(t)
	if int(slot) >= len(sh.conns) {
		return nil
	}
	c := sh.conns[slot]
	if c == nil || c.state == 0 || c.gen != tagGen(t) {
		return nil
	}
	return c
}

func (sh *Shard) armAccept() {
	sqe := sh.sqe()
	sqe.PrepMultishotAccept(sh.listenFD, unix.SOCK_CLOEXEC)
	sqe.SetUserData(tag(opAccept, 0, 0))
}

func (sh *Shard) armEventFD() {
	sqe := sh.sqe()
	sqe.PrepRead(sh.eventFD, sh.eventBuf[:], 0)
	sqe.SetUserData(tag(opDoorbell, 0, 0))
}

func (sh *Shard) onAccept(cqe ring.CQE) {
	if !cqe.More() && !sh.draining {
		sh.armAccept() // the multishot accept ended: arm it again
	}
	if cqe.Res < 0 {
		if cqe.Res != -int32(unix.ECANCELED) {
			sh.log.Warn("accept failed", "err", cqe.Err())
		}
		return
	}
	fd := int(cqe.Res)
	if sh.draining || sh.open >= connsPerShardMax {
		unix.Close(fd)
		return
	}
	// Once per connection, not per request: answers are small and
	// latency-bound, so never let Nagle hold them back.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	var slot uint32
	if n := len(sh.freeSlots); n > 0 {
		slot = sh.freeSlots[n-1]
		sh.freeSlots = sh.freeSlots[:n-1]
	} else {
		slot = uint32(len(sh.conns))
		sh.conns = append(sh.conns, &conn{slot: slot})
	}
	c := sh.conns[slot]
	c.reset(fd, sh.now())
	sh.open++
	sh.stats.Accepted.Add(1)
	sh.stats.Open.Store(int64(sh.open))
	sh.armRecv(c)
}

func (sh *Shard) bufRelease(bid uint16) {
	sh.bufRefs[bid]--
	if sh.bufRefs[bid] < 0 {
		panic(fmt.Sprintf("server: shard %d: buffer %d released more than held", sh.id, bid))
	}
	if sh.bufRefs[bid] == 0 {
		sh.bufRecycle(bid)
	}
}

func (sh *Shard) bufRecycle(bid uint16) { sh.bufs.Recycle(bid) }

func (sh *Shard) onDoorbell(cqe ring.CQE) {
	if cqe.Res < 0 && cqe.Res != -int32(unix.EAGAIN) {
		sh.log.Warn("doorbell read failed", "err", cqe.Err())
	}
	sh.drainInbox()
	// Re-armed even while draining: a stopping shard still runs the work
	// other threads send it until every connection is closed.
	sh.armEventFD()
}

// peersClosed reports whether no shard has a connection left, accepted or
// outbound (whose messages, too, may send work to other shards). A draining
// shard stops only then: until every connection is closed, requests in
// flight on other shards may still send it work (an append, a read) whose
// answer they wait for. Requests come only from connections, so once none
// is open no new work is sent; the shard's 100 ms tick re-checks while it
// waits.
func (sh *Shard) peersClosed() bool {
	for _, p := range sh.peers {
		if p.stats.Open.Load() != 0 || p.stats.OutboundOpen.Load() != 0 {
			return false
		}
	}
	return true
}

// handlerIdle asks a handler with work of its own in the kernel (partition
// logs) whether it is done, so the shard does not stop under it.
func (sh *Shard) handlerIdle() bool {
	if d, ok := sh.handler.(DiskHandler); ok {
		return d.Idle(sh)
	}
	return true
}

// drainInbox runs every message posted to this shard.
func (sh *Shard) drainInbox() {
	sh.inbox.Disarm()
	for {
		fn, ok := sh.inbox.Pop()
		if !ok {
			break
		}
		fn(sh)
	}
}

// runDeferred runs the work this shard queued for itself this turn,
// including work that work queues.
func (sh *Shard) runDeferred() {
	for i := 0; i < len(sh.deferred); i++ {
		fn := sh.deferred[i]
		sh.deferred[i] = nil
		fn(sh)
	}
	sh.deferred = sh.deferred[:0]
}

func (sh *Shard) onTick(cqe ring.CQE) {
	if !cqe.More() && !sh.draining {
		sqe := sh.sqe()
		sqe.PrepTimeout(&sh.tickTS, 0, ring.TimeoutMultishot)
		sqe.SetUserData(tag(opTick, 0, 0))
	}
	now := sh.now()
	sh.closeIdle(now)
	sh.outboundTick(now)
	if t, ok := sh.handler.(Ticker); ok {
		t.Tick(sh, now)
	}
}

// closeIdle closes connections that made no progress for longer than the
// idle limit: silent ones with nothing in flight (idle clients, and
// half-open ones: a peer that vanished mid-request never completes it),
// and ones whose answer has not moved (a client that stopped reading,
// which would otherwise hold its answer's files open for ever). A request
// still being worked on (a parked fetch, a produce waiting for its sync)
// is not the client's stall and keeps its connection.
func (sh *Shard) closeIdle(nowMs int64) {
	for _, c := range sh.conns {
		if c != nil && c.state == connOpen && (c.inflight() == 0 || c.sending) &&
			nowMs-c.lastActiveMs > sh.connIdleMaxMs {
			sh.closeConn(c)
		}
	}
}

// beginDrain stops accepting and reading, closes every outbound connection
// (nothing more is fetched) and every accepted one that has nothing in
// flight; the rest close as their last answer goes out.
func (sh *Shard) beginDrain() {
	sh.draining = true
	sh.drainBegun.Store(true)
	sh.drainEndMs = sh.now() + sh.drainWaitMaxMs
	sqe := sh.sqe()
	sqe.PrepCancelFD(sh.listenFD, ring.AsyncCancelAll)
	sqe.SetUserData(tag(opIgnore, 0, 0))
	for _, c := range sh.conns {
		if c != nil && c.state == connOpen {
			sh.closeIfAnswered(c)
		}
	}
	sh.closeOutbounds()
}

// reportSlowDrain logs, every drainReportInterval while a stop waits, what
// the shard is still waiting for, so that a stop that does not end says
// why.
func (sh *Shard) reportSlowDrain() {
	now := sh.now()
	if sh.drainReportAtMs == 0 {
		sh.drainReportAtMs = now + drainReportInterval.Milliseconds()
		return
	}
	if now < sh.drainReportAtMs {
		return
	}
	sh.drainReportAtMs = now + drainReportInterval.Milliseconds()
	sh.log.Warn("stop still waiting", "open", sh.open, "outbound_open", sh.outOpen, "handler_idle", sh.handlerIdle(),
		"inbox", sh.inbox.Len(), "peers_closed", sh.peersClosed())
	for _, c := range sh.conns {
		if c == nil || c.state == 0 {
			continue
		}
		sh.log.Warn("stop waits for a connection", "slot", c.slot, "closing", c.state == connClosing,
			"ops_in_flight", c.opsInFlight, "unanswered", c.inflight(), "sending", c.sending,
			"splice_spans", len(c.splice.files), "splice_span", c.splice.idx, "chain_pairs", c.splice.chainPairs,
			"pipe_held", c.splice.held, "recv_armed", c.recvArmed)
	}
}

// closeStragglers closes, once a stop's wait for answers has run out, the
// connections still open: their clients are not reading what is due to
// them (or their requests are not done), and the stop goes on without
// them.
func (sh *Shard) closeStragglers() {
	if sh.now() < sh.drainEndMs {
		return
	}
	for _, c := range sh.conns {
		if c != nil && c.state == connOpen {
			sh.log.Warn("stop closes a connection still unanswered or unread", "slot", c.slot,
				"unanswered", c.inflight(), "sending", c.sending, "waited_ms", sh.drainWaitMaxMs)
			sh.closeConn(c)
		}
	}
}

// Draining reports whether the shard is stopping: handlers end long waits.
func (sh *Shard) Draining() bool { return sh.draining }

// closeIfAnswered closes c once every request it sent has been answered
// and the answers are out.
func (sh *Shard) closeIfAnswered(c *conn) {
	if c.state == connOpen && c.inflight() == 0 && !c.sending {
		sh.closeConn(c)
	}
}
