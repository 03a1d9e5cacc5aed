package controller

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/strata-db/strata/server/metadata"
	"go.etcd.io/raft/v3"
)

// readRequest is one linearizable read: raft's ReadIndex (ReadOnlySafe:
// the leader confirms with a quorum that it still leads) gives the commit
// index at the time of the request, and the read is answered from the
// Image once this voter has applied that far.
type readRequest struct {
	id    uint64
	index uint64 // 0 until raft returns the read state
	done  chan readOutcome
}

type readOutcome struct {
	image *metadata.Image
	err   error
}

func (r *readRequest) finish(im *metadata.Image, err error) { r.done <- readOutcome{im, err} }

// readQueue holds the reads in flight.
type readQueue struct {
	nextID  uint64
	pending map[uint64]*readRequest // waiting for raft's read state
	indexed []*readRequest          // waiting for apply, by id order
}

// Read returns an Image that reflects every command committed before Read
// was called (a linearizable read). Any voter can serve it; a follower
// asks the leader for the read index. Without a known leader it fails at
// once with a *NotLeaderError; if leadership moves while it waits it fails
// the same way, and the caller retries.
func (n *Node) Read(ctx context.Context) (*metadata.Image, error) {
	r := &readRequest{done: make(chan readOutcome, 1)}
	select {
	case n.readC <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.doneC:
		return nil, ErrStopped
	default:
		return nil, ErrBusy
	}
	select {
	case o := <-r.done:
		return o.image, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.doneC:
		select {
		case o := <-r.done:
			return o.image, o.err
		default:
			return nil, ErrStopped
		}
	}
}

// DescribeTopic is a linearizable lookup of one topic.
func (n *Node) DescribeTopic(ctx context.Context, name string) (metadata.TopicInfo, bool, error) {
	im, err := n.Read(ctx)
	if err != nil {
		return metadata.TopicInfo{}, false, err
	}
	t, ok := im.TopicByName(name)
	return t, ok, nil
}

func (n *Node) handleRead(r *readRequest) {
	if n.lead == 0 {
		r.finish(nil, &NotLeaderError{})
		return
	}
	q := &n.reads
	if len(q.pending)+len(q.indexed) >= maxPendingReads {
		r.finish(nil, ErrBusy)
		return
	}
	if q.pending == nil {
		q.pending = make(map[uint64]*readRequest)
	}
	q.nextID++
	r.id = q.nextID
	q.pending[r.id] = r
	var rctx [8]byte
	binary.LittleEndian.PutUint64(rctx[:], r.id)
	n.rn.ReadIndex(rctx[:])
}

// readStates records the read indexes raft returned.
func (n *Node) readStates(states []raft.ReadState) {
	q := &n.reads
	for _, rs := range states {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		id := binary.LittleEndian.Uint64(rs.RequestCtx)
		r, ok := q.pending[id]
		if !ok {
			continue
		}
		delete(q.pending, id)
		r.index = rs.Index
		q.indexed = append(q.indexed, r)
	}
	q.answer(n.applied, n.image.Load())
}

// answer answers the reads whose index is applied.
func (q *readQueue) answer(applied uint64, im *metadata.Image) {
	keep := q.indexed[:0]
	for _, r := range q.indexed {
		if r.index <= applied {
			r.finish(im, nil)
		} else {
			keep = append(keep, r)
		}
	}
	clear(q.indexed[len(keep):])
	q.indexed = keep
}

// failUnindexed fails the reads raft has not answered: after a leader
// change their requests may be lost.
func (q *readQueue) failUnindexed(err error) {
	for id, r := range q.pending {
		r.finish(nil, fmt.Errorf("controller: read abandoned: %w", err))
		delete(q.pending, id)
	}
}

func (q *readQueue) failAll(err error) {
	q.failUnindexed(err)
	for _, r := range q.indexed {
		r.finish(nil, err)
	}
	q.indexed = nil
}
