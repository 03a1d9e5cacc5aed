package controller

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/strata-db/strata/server/controller/raftlog"
	"github.com/strata-db/strata/server/controller/transport"
	"github.com/strata-db/strata/server/metadata"
	"go.etcd.io/raft/v3"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Node runs one controller voter. Its goroutine (run) owns the RawNode,
// the storage, the applied State and, on the leader, the Controller; other
// goroutines reach it only through channels, and read the applied state
// through the published Image.
type Node struct {
	cfg         Config
	incarnation uint64
	rn          *raft.RawNode
	store       *raftlog.Storage

	// Owned by the loop goroutine.
	state    *metadata.State
	applied  uint64 // Raft index of the last applied entry
	snapIdx  uint64 // index of the latest snapshot
	lead     uint64
	term     uint64
	leading  bool // leader in term
	ctl      *metadata.Controller
	inflight []inflight
	waiters  map[uint64]*proposal
	deferred []*proposal
	held     []heldRejection
	nextSeq  uint64
	reads    readQueue
	restored *restoredSnapshot // the snapshot admit last decoded
	refusals transport.LogLimit

	inbox   chan *pb.Message
	reports chan report
	props   chan *proposal
	readC   chan *readRequest
	statusC chan chan Status
	stopC   chan struct{}
	doneC   chan struct{}
	started atomic.Bool
	stop    sync.Once

	image atomic.Pointer[metadata.Image]
	// imageMu guards imageC, which is closed (and replaced) whenever a new
	// Image is stored, so any number of goroutines can wait for the next.
	imageMu sync.Mutex
	imageC  chan struct{}
	leader  atomic.Uint64
	subs    subscribers
	errMu   sync.Mutex
	err     error
}

// inflight is a proposal of the current leadership not yet applied; the
// Controller's state already holds its records.
type inflight struct {
	seq     uint64
	records []metadata.Record
}

type report struct {
	peer        uint64
	snapshot    bool
	snapshotOK  bool
	unreachable bool
}

// New opens the voter's storage and restores its state from the latest
// snapshot; Start starts it.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	store, err := raftlog.Open(raftlog.Config{
		Dir: cfg.Dir, FS: cfg.FS, Voters: cfg.Voters,
		SegmentBytes: cfg.SegmentBytes, IndexBytes: cfg.IndexBytes,
	})
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg, store: store, waiters: make(map[uint64]*proposal),
		inbox: make(chan *pb.Message, inboxLen), reports: make(chan report, reportLen),
		props: make(chan *proposal, proposalQueueLen), readC: make(chan *readRequest, proposalQueueLen),
		statusC: make(chan chan Status), stopC: make(chan struct{}), doneC: make(chan struct{}),
		imageC: make(chan struct{}),
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		store.Close()
		return nil, err
	}
	n.incarnation = binary.LittleEndian.Uint64(b[:])
	snap, _ := store.Snapshot()
	n.state = metadata.NewState()
	if !raft.IsEmptySnap(snap) {
		if n.state, err = metadata.Restore(snap.GetData()); err != nil {
			store.Close()
			return nil, fmt.Errorf("controller: restore snapshot %d: %w", snap.GetMetadata().GetIndex(), err)
		}
	}
	n.applied = snap.GetMetadata().GetIndex()
	n.snapIdx = n.applied
	n.storeImage(n.state.Image())
	n.rn, err = raft.NewRawNode(&raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   store,
		Applied:                   n.applied,
		MaxSizePerMsg:             maxSizePerMsgBytes,
		MaxCommittedSizePerReady:  maxCommittedPerReadyByte,
		MaxUncommittedEntriesSize: maxUncommittedBytes,
		MaxInflightMsgs:           maxInflightMsgs,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		DisableProposalForwarding: true,
		Logger:                    cfg.Logger,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	return n, nil
}

// Start starts the transport and the node's goroutine.
func (n *Node) Start() error {
	if !n.started.CompareAndSwap(false, true) {
		return fmt.Errorf("controller: node %d already started", n.cfg.ID)
	}
	if n.cfg.Transport != nil {
		if err := n.cfg.Transport.Start(n); err != nil {
			return err
		}
	}
	go n.run()
	return nil
}

// Stop stops the node and closes its transport and storage. Callers
// waiting on it get ErrStopped or ErrOutcomeUnknown.
func (n *Node) Stop() error {
	var err error
	n.stop.Do(func() {
		close(n.stopC)
		if n.started.Load() {
			<-n.doneC
		}
		if n.cfg.Transport != nil && n.started.Load() {
			err = n.cfg.Transport.Close()
		}
		if cerr := n.store.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// Err returns the error that stopped the node, if one did (a storage
// failure or a record the state refuses, which means a corrupt log).
func (n *Node) Err() error {
	n.errMu.Lock()
	defer n.errMu.Unlock()
	return n.err
}

// ID is the voter's id.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Leader returns the id of the leader this voter knows of, 0 if none.
func (n *Node) Leader() uint64 { return n.leader.Load() }

// Image returns the applied metadata. It may lag the leader; use Read for
// a linearizable view.
func (n *Node) Image() *metadata.Image { return n.image.Load() }

// ImageChanged returns a channel that is closed once an Image newer than
// the one Image returns after this call is published. Take the channel
// before reading Image: then no update falls between the two.
func (n *Node) ImageChanged() <-chan struct{} {
	n.imageMu.Lock()
	defer n.imageMu.Unlock()
	return n.imageC
}

// storeImage publishes im and wakes everyone waiting on ImageChanged.
func (n *Node) storeImage(im *metadata.Image) {
	n.image.Store(im)
	n.imageMu.Lock()
	close(n.imageC)
	n.imageC = make(chan struct{})
	n.imageMu.Unlock()
}

// Storage exposes the voter's Raft storage (tests and tools).
func (n *Node) Storage() *raftlog.Storage { return n.store }

// Deliver implements transport.Handler: queue a message for the loop.
func (n *Node) Deliver(m *pb.Message) {
	select {
	case n.inbox <- m:
	default: // raft retransmits
	}
}

// ReportUnreachable implements transport.Handler.
func (n *Node) ReportUnreachable(peer uint64) {
	select {
	case n.reports <- report{peer: peer, unreachable: true}:
	default:
	}
}

// ReportSnapshot implements transport.Handler.
func (n *Node) ReportSnapshot(peer uint64, ok bool) {
	select {
	case n.reports <- report{peer: peer, snapshot: true, snapshotOK: ok}:
	default:
	}
}

// Propose runs cmd on the leader and waits until its records are
// committed and applied here. It returns the Result, a
// *metadata.Rejection (nothing was proposed), a *NotLeaderError (nothing
// was proposed), ErrOutcomeUnknown (proposed, but the outcome is not
// known: leadership moved or ctx ended), ErrBusy, ErrTooLarge or
// ErrStopped.
func (n *Node) Propose(ctx context.Context, cmd Command) (Result, error) {
	p := &proposal{cmd: cmd, done: make(chan outcome, 1)}
	select {
	case n.props <- p:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-n.doneC:
		return Result{}, ErrStopped
	default:
		return Result{}, ErrBusy
	}
	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	case <-n.doneC:
		select {
		case o := <-p.done:
			return o.res, o.err
		default:
			return Result{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ErrStopped)
		}
	}
}

// Status reports this voter's view of the quorum.
func (n *Node) Status(ctx context.Context) (Status, error) {
	c := make(chan Status, 1)
	select {
	case n.statusC <- c:
	case <-ctx.Done():
		return Status{}, ctx.Err()
	case <-n.doneC:
		return Status{}, ErrStopped
	}
	select {
	case st := <-c:
		return st, nil
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
}

func (n *Node) fail(err error) {
	n.errMu.Lock()
	if n.err == nil {
		n.err = err
	}
	n.errMu.Unlock()
}
