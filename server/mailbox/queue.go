// Package mailbox carries messages between shards: a bounded lock-free
// multi-producer single-consumer queue, and the doorbell protocol that wakes
// the consuming shard without a syscall per message.
//
// A shard owns its state; another shard never touches it and instead pushes
// a message into the owner's Queue and, if the owner may be asleep, rings
// its doorbell (an IORING_OP_MSG_RING from the sender's ring, or an eventfd
// write from a thread without a ring). The owner drains its queue when the
// doorbell's completion arrives.
//
//	producer shards                       consumer shard
//	 Push(m) ──┐                      ┌── doorbell CQE
//	 Push(m) ──┼─► [ slot | slot | … ] ─┤   Disarm()
//	 Push(m) ──┘   bounded, lock-free   └── Pop() until empty
//	 Arm() true ──► MSG_RING / eventfd
package mailbox

import (
	"fmt"
	"sync/atomic"
)

// MaxCapacity bounds a queue so a slow shard cannot make others queue
// without limit; senders see Push fail and hold the message themselves.
const MaxCapacity = 1 << 20

// cacheLinePad keeps the producer and consumer cursors on separate cache
// lines so they do not bounce between cores.
type cacheLinePad [64]byte

type slot[T any] struct {
	// seq is the slot's turn: equal to the position when free for the
	// producer of that position, position+1 once filled.
	seq atomic.Uint64
	val T
}

// Queue is a bounded multi-producer single-consumer queue (a sequence-
// numbered ring in the style of Vyukov's bounded queue). Push may be called
// from any goroutine; Pop only from the owner.
type Queue[T any] struct {
	_     cacheLinePad
	tail  atomic.Uint64 // next position producers claim
	_     cacheLinePad
	head  uint64 // next position the consumer reads; owner only
	_     cacheLinePad
	armed atomic.Bool // a doorbell is outstanding
	_     cacheLinePad
	mask  uint64
	slots []slot[T]
}

// New makes a queue holding capacity messages (a power of two).
func New[T any](capacity int) (*Queue[T], error) {
	if capacity < 2 || capacity > MaxCapacity || capacity&(capacity-1) != 0 {
		return nil, fmt.Errorf("mailbox: capacity %d not a power of two in [2, %d]", capacity, MaxCapacity)
	}
	q := &Queue[T]{mask: uint64(capacity - 1), slots: make([]slot[T], capacity)}
	for i := range q.slots {
		q.slots[i].seq.Store(uint64(i))
	}
	return q, nil
}

// Push adds v and reports whether there was room.
func (q *Queue[T]) Push(v T) bool {
	for {
		pos := q.tail.Load()
		s := &q.slots[pos&q.mask]
		seq := s.seq.Load()
		switch {
		case seq == pos:
			if q.tail.CompareAndSwap(pos, pos+1) {
				s.val = v
				s.seq.Store(pos + 1) // publishes val to the consumer
				return true
			}
		case seq < pos:
			return false // the slot still holds an unread message: full
		}
		// Another producer claimed pos first; try the next position.
	}
}

// Pop removes the oldest message. ok is false when the queue is empty or
// the oldest claimed slot is still being written (its producer is between
// claim and publish); the doorbell rung after that publish brings the
// consumer back.
func (q *Queue[T]) Pop() (v T, ok bool) {
	s := &q.slots[q.head&q.mask]
	if s.seq.Load() != q.head+1 {
		return v, false
	}
	v = s.val
	var zero T
	s.val = zero // drop references for the GC
	s.seq.Store(q.head + q.mask + 1)
	q.head++
	return v, true
}

// Len is the number of messages claimed but not popped (an estimate while
// producers are active).
func (q *Queue[T]) Len() int { return int(q.tail.Load() - q.head) }

// Cap is the queue's capacity.
func (q *Queue[T]) Cap() int { return len(q.slots) }

// Arm is called by a producer after a successful Push: true means no
// doorbell is outstanding and this producer must ring one. Many pushes
// between two drains cost one doorbell.
func (q *Queue[T]) Arm() bool { return q.armed.CompareAndSwap(false, true) }

// Disarm is called by the consumer when a doorbell arrives, before it
// drains: any push that lands after the drain started sees the queue
// disarmed and rings again, so no message waits for a doorbell that never
// comes.
func (q *Queue[T]) Disarm() { q.armed.Store(false) }
