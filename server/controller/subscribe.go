package controller

import (
	"errors"
	"sync"

	"github.com/strata-db/strata/server/metadata"
)

// Change is what a subscriber receives for each applied entry that
// carried records, or for a snapshot that replaced the whole state.
type Change struct {
	Index  uint64 // Raft index of the entry (or of the snapshot)
	Term   uint64
	Offset uint64 // metadata offset of the first record (the state's offset after a snapshot)
	// Records are the entry's records; they must not be modified.
	Records []metadata.Record
	// Snapshot says the state was replaced by a snapshot from the leader:
	// read Node.Image for the whole state.
	Snapshot bool
}

// ErrLagged ends a subscription whose reader fell more than its buffer
// behind; it should read Node.Image and subscribe again.
var ErrLagged = errors.New("controller: subscriber fell behind")

// Subscription delivers Changes in apply order on C until it is closed:
// by Close, when the node stops, or when the reader lags (Err says which).
type Subscription struct {
	C    <-chan Change
	c    chan Change
	subs *subscribers
	err  error
}

// Err says why C was closed (nil for Close or a stopped node).
func (s *Subscription) Err() error {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	return s.err
}

// Close ends the subscription.
func (s *Subscription) Close() { s.subs.remove(s, nil) }

type subscribers struct {
	mu  sync.Mutex
	set map[*Subscription]struct{}
}

// Subscribe returns a subscription to the changes applied from now on,
// with a buffer of buf changes (DefaultSubscriptionLen when buf <= 0). A
// reader that lets the buffer fill is dropped with ErrLagged rather than
// slowing the node.
func (n *Node) Subscribe(buf int) *Subscription {
	if buf <= 0 {
		buf = DefaultSubscriptionLen
	}
	c := make(chan Change, buf)
	s := &Subscription{C: c, c: c, subs: &n.subs}
	n.subs.mu.Lock()
	defer n.subs.mu.Unlock()
	if n.subs.set == nil {
		n.subs.set = make(map[*Subscription]struct{})
	}
	n.subs.set[s] = struct{}{}
	return s
}

func (ss *subscribers) publish(ch Change) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for s := range ss.set {
		select {
		case s.c <- ch:
		default:
			ss.removeLocked(s, ErrLagged)
		}
	}
}

func (ss *subscribers) remove(s *Subscription, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.removeLocked(s, err)
}

func (ss *subscribers) removeLocked(s *Subscription, err error) {
	if _, ok := ss.set[s]; !ok {
		return
	}
	delete(ss.set, s)
	s.err = err
	close(s.c)
}

func (ss *subscribers) closeAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for s := range ss.set {
		ss.removeLocked(s, nil)
	}
}
