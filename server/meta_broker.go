package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-db/strata/server/controller"
	"github.com/strata-db/strata/server/metadata"
)

// Broker session defaults, as KRaft's: a heartbeat every 2 s, fenced after
// 9 s without one.
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultSessionTimeout    = time.Duration(metadata.DefaultSessionTimeoutMs) * time.Millisecond
	// DefaultJoinTimeout bounds how long a starting broker waits to be
	// registered and unfenced: a quorum must be reachable by then.
	DefaultJoinTimeout = 2 * time.Minute
	// controlledShutdownTimeout bounds how long a stopping broker waits
	// for the controller to move its leaderships away.
	controlledShutdownTimeout = 10 * time.Second
	// metadataRequestTimeout bounds a client's CreateTopics or
	// DeleteTopics command (Kafka's default request timeout).
	metadataRequestTimeout = 30 * time.Second
	// metadataRequestsMax bounds the metadata requests in flight on the
	// broker; more are answered REQUEST_TIMED_OUT at once.
	metadataRequestsMax = 256
)

// brokerSession is the broker's side of the metadata: it publishes each
// image the local voter applies to the shards, registers this process
// (a new incarnation per start) and keeps its session alive with
// heartbeats.
type brokerSession struct {
	log       *slog.Logger
	q         *quorumMember
	nodeID    int32
	listeners []metadata.Listener
	rack      string
	interval  time.Duration
	publish   func(im *metadata.Image, done func())

	// incarnation is this process's current registration; the shards read
	// it to tell whether the image's leaderships are theirs to serve.
	incarnation atomic.Pointer[metadata.IncarnationID]
	epoch       atomic.Int64
	// cleanShutdownEpoch is the broker epoch of this node's previous
	// process if it shut down cleanly (setCleanShutdownEpoch), else 0.
	cleanShutdownEpoch atomic.Int64

	// published is the image every shard has taken; pubC is closed (and
	// replaced) whenever it moves.
	pubMu     sync.Mutex
	published *metadata.Image
	pubC      chan struct{}

	slots chan struct{} // metadataRequestsMax tokens
	// alterSlots bounds the AlterPartition calls in flight
	// (alterPartitionCallsMax tokens).
	alterSlots chan struct{}
	stopC      chan struct{}
	wg         sync.WaitGroup
	hbStop     chan struct{}
	hbDone     chan struct{}
}

func newBrokerSession(q *quorumMember, nodeID int32, listeners []metadata.Listener, rack string, interval time.Duration,
	publish func(*metadata.Image, func()), log *slog.Logger) *brokerSession {
	s := &brokerSession{log: log, q: q, nodeID: nodeID, listeners: listeners, rack: rack, interval: interval,
		publish: publish, pubC: make(chan struct{}), slots: make(chan struct{}, metadataRequestsMax),
		alterSlots: make(chan struct{}, alterPartitionCallsMax),
		stopC:      make(chan struct{}), hbStop: make(chan struct{}), hbDone: make(chan struct{})}
	return s
}

// start starts publishing images to the shards.
func (s *brokerSession) start() {
	s.wg.Add(1)
	go s.publishLoop()
}

// publishLoop hands every new image of the local voter to the shards and
// waits until they have taken it, so that "published" means served.
func (s *brokerSession) publishLoop() {
	defer s.wg.Done()
	var last *metadata.Image
	for {
		changed := s.q.node.ImageChanged()
		if im := s.q.node.Image(); im != last {
			taken := make(chan struct{})
			s.publish(im, func() { close(taken) })
			select {
			case <-taken:
			case <-s.stopC:
				return
			}
			last = im
			s.pubMu.Lock()
			s.published = im
			close(s.pubC)
			s.pubC = make(chan struct{})
			s.pubMu.Unlock()
		}
		select {
		case <-changed:
		case <-s.stopC:
			return
		}
	}
}

// publishedImage returns the image the shards serve and a channel closed
// when that changes.
func (s *brokerSession) publishedImage() (*metadata.Image, <-chan struct{}) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	return s.published, s.pubC
}

// waitPublished waits until the shards serve an image at or past offset
// and returns it.
func (s *brokerSession) waitPublished(ctx context.Context, offset uint64) (*metadata.Image, error) {
	for {
		im, c := s.publishedImage()
		if im != nil && im.Offset() >= offset {
			return im, nil
		}
		select {
		case <-c:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stopC:
			return nil, controller.ErrStopped
		}
	}
}

// appliedOffset is what the broker reports in heartbeats: the offset of
// the image its shards serve.
func (s *brokerSession) appliedOffset() uint64 {
	im, _ := s.publishedImage()
	if im == nil {
		return 0
	}
	return im.Offset()
}

// join registers this process and heartbeats until the controller unfences
// it and the shards serve the image that says so.
func (s *brokerSession) join(ctx context.Context, lone bool) error {
	if lone {
		// A lone voter's log is this data folder's: no other process can
		// hold this id, so a registration left unfenced by a crash is
		// fenced now rather than waited out for a whole session.
		im, err := s.q.read(ctx)
		if err != nil {
			return fmt.Errorf("read the metadata: %w", err)
		}
		if b, ok := im.Broker(s.nodeID); ok && !b.Fenced && !b.ShuttingDown {
			if _, err := s.q.propose(ctx, &rpcRequest{Kind: rpcFenceBroker, BrokerID: s.nodeID}); err != nil && metadata.CodeOf(err) != metadata.ErrBrokerFenced {
				return fmt.Errorf("fence the previous run of broker %d: %w", s.nodeID, err)
			}
		}
	}
	if err := s.register(ctx); err != nil {
		return err
	}
	for {
		im, err := s.heartbeat(ctx)
		if err != nil {
			return err
		}
		if s.serving(im) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker %d not unfenced: %w", s.nodeID, ctx.Err())
		case <-time.After(proposeRetryInterval):
		}
	}
}

// setCleanShutdownEpoch records the broker epoch the previous process of
// this node held when it shut down cleanly (its logs flushed and closed),
// for the first registration to prove it: the controller keeps a broker
// that proves a clean shutdown in the ELRs of topics that do not flush
// before acknowledging (docs/controller.md, "Eligible leader replicas").
// Without it, the first registration counts as after a crash.
func (s *brokerSession) setCleanShutdownEpoch(epoch int64) { s.cleanShutdownEpoch.Store(epoch) }

// register registers a new incarnation, retrying while the previous one
// still holds a live session (a quick restart after a crash waits for it
// to lapse, as Kafka brokers do).
func (s *brokerSession) register(ctx context.Context) error {
	inc := new(metadata.IncarnationID)
	rand.Read(inc[:])
	s.incarnation.Store(inc)
	// A registration again within this process (the controller lost this
	// epoch) loses nothing of the logs: the process never stopped, so its
	// previous epoch is proof enough.
	previous := s.epoch.Load()
	if previous == 0 {
		previous = s.cleanShutdownEpoch.Load()
	}
	req := &rpcRequest{Kind: rpcRegisterBroker, BrokerID: s.nodeID, Incarnation: *inc, Rack: s.rack, Listeners: s.listeners,
		PreviousEpoch: previous}
	for {
		off, err := s.q.propose(ctx, req)
		if metadata.CodeOf(err) == metadata.ErrDuplicateBrokerRegistration || errors.Is(err, controller.ErrOutcomeUnknown) {
			// The registration is idempotent for one incarnation, so an
			// unknown outcome is safe to retry.
			s.log.Info("waiting to register", "broker", s.nodeID, "reason", err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("register broker %d: %w", s.nodeID, err)
			case <-time.After(s.interval):
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("register broker %d: %w", s.nodeID, err)
		}
		im, err := s.waitPublished(ctx, off)
		if err != nil {
			return fmt.Errorf("register broker %d: %w", s.nodeID, err)
		}
		b, ok := im.Broker(s.nodeID)
		if !ok || b.Incarnation != *inc {
			return fmt.Errorf("register broker %d: the image does not hold this incarnation", s.nodeID)
		}
		s.epoch.Store(b.Epoch)
		s.log.Info("broker registered", "broker", s.nodeID, "epoch", b.Epoch)
		return nil
	}
}

// serving reports whether im has this process registered and unfenced:
// only then are the leaderships im gives this node id its own. Before
// that, the image may be an old one replayed from the local log, whose
// leaderships the controller has since moved.
func (s *brokerSession) serving(im *metadata.Image) bool {
	inc := s.incarnation.Load()
	if inc == nil {
		return false
	}
	b, ok := im.Broker(s.nodeID)
	return ok && b.Incarnation == *inc && !b.Fenced && !b.ShuttingDown
}

// heartbeat renews the session and returns the image that reflects it.
func (s *brokerSession) heartbeat(ctx context.Context) (*metadata.Image, error) {
	off, err := s.q.heartbeat(ctx, &rpcRequest{Kind: rpcBrokerHeartbeat, BrokerID: s.nodeID, Epoch: s.epoch.Load(),
		AppliedOffset: s.appliedOffset()})
	if err != nil {
		return nil, err
	}
	return s.waitPublished(ctx, off)
}

// heartbeatLoop renews the session every interval until stopHeartbeats. A
// broker that the controller no longer knows by this epoch (it registered
// again elsewhere, or its registration was lost) registers anew.
func (s *brokerSession) heartbeatLoop() {
	defer close(s.hbDone)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.hbStop:
			return
		case <-t.C:
		}
		// A heartbeat that cannot finish within its interval gives way to
		// the next one, which carries a newer applied offset.
		ctx, cancel := context.WithTimeout(context.Background(), s.interval)
		_, err := s.heartbeat(ctx)
		switch code := metadata.CodeOf(err); {
		case err == nil:
		case code == metadata.ErrStaleBrokerEpoch || code == metadata.ErrBrokerNotRegistered:
			s.log.Warn("heartbeat refused; registering again", "broker", s.nodeID, "err", err)
			if err := s.register(ctx); err != nil {
				s.log.Warn("register again", "broker", s.nodeID, "err", err)
			}
		default:
			s.log.Debug("heartbeat", "broker", s.nodeID, "err", err)
		}
		cancel()
	}
}

// controlledShutdown asks the controller to move this broker's leaderships
// away, and waits until the shards serve the image that has them moved.
func (s *brokerSession) controlledShutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), controlledShutdownTimeout)
	defer cancel()
	off, err := s.q.propose(ctx, &rpcRequest{Kind: rpcControlledShutdown, BrokerID: s.nodeID, Epoch: s.epoch.Load()})
	switch metadata.CodeOf(err) {
	case metadata.ErrBrokerFenced, metadata.ErrBrokerShuttingDown:
		return nil // already out of service
	}
	if err != nil {
		return err
	}
	_, err = s.waitPublished(ctx, off)
	return err
}

// stopHeartbeats ends the heartbeat loop (if it was started).
func (s *brokerSession) stopHeartbeats(started bool) {
	close(s.hbStop)
	if started {
		<-s.hbDone
	}
}

// stop ends the publisher; the shards get no more images.
func (s *brokerSession) stop() {
	close(s.stopC)
	s.wg.Wait()
}

// acquire takes one of the metadata request slots; release returns it.
func (s *brokerSession) acquire() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *brokerSession) release() { <-s.slots }
