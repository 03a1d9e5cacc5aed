package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/strata-db/strata/replica"
	"github.com/strata-db/strata/server/controller"
	"github.com/strata-db/strata/server/metadata"
)

// A partition leader's ISR change travels to the controller leader as an
// AlterPartition: a compare-and-set on the partition epoch, answered with
// the partition as the controller then holds it, whether it was accepted
// or refused (docs/controller.md, "AlterPartition").
const (
	// alterPartitionTimeout bounds one call, the wait for a slot included.
	// It matches the replica's own wait for an answer
	// (replica.Config.AlterPartitionTimeoutMs), after which it sends the
	// change again, so an answer later than this would be thrown away.
	alterPartitionTimeout = 5 * time.Second
	// alterPartitionCallsMax bounds the calls in flight from one broker.
	// Each forwarded call holds a connection to the controller leader,
	// whose listener holds at most rpcMaxConns; a few per broker keep
	// every broker of a small cluster inside it when all their ISRs
	// change at once (a broker lost), and the replica machine retries the
	// rest.
	alterPartitionCallsMax = 8
)

// errAlterPartitionNoSlot is the error of a call that found every slot
// taken for its whole timeout.
var errAlterPartitionNoSlot = errors.New("server: every AlterPartition slot stayed taken")

// AlterPartitionOutcome is the controller's answer to one AlterPartition.
type AlterPartitionOutcome struct {
	// Code is metadata.ErrNone when the change was accepted (an ISR equal
	// to the current one is accepted too, with a new partition epoch),
	// else why it was refused.
	Code   metadata.ErrorCode
	Detail string
	// Found reports whether the controller leader holds the partition;
	// Partition is it after the request (its leader, epochs and ISR).
	Found     bool
	Partition metadata.PartitionInfo
}

// Accepted reports whether the change was accepted.
func (o AlterPartitionOutcome) Accepted() bool { return o.Code == metadata.ErrNone }

// Result is the outcome as the replica machine takes it.
func (o AlterPartitionOutcome) Result() replica.AlterPartitionResult {
	return replica.AlterPartitionResult{
		Err:            replicaErrorOf(o.Code),
		LeaderEpoch:    o.Partition.LeaderEpoch,
		PartitionEpoch: o.Partition.PartitionEpoch,
		ISR:            slices.Clone(o.Partition.ISR),
	}
}

// replicaErrorOf maps a controller refusal onto the replica machine's
// codes. Refusals that mean "this broker does not lead the partition as
// the controller knows it" (a stale broker epoch, an unknown partition)
// become NOT_LEADER_OR_FOLLOWER: the leader backs off and waits for the
// image that tells it what changed.
func replicaErrorOf(code metadata.ErrorCode) replica.ErrorCode {
	switch code {
	case metadata.ErrNone:
		return replica.ErrNone
	case metadata.ErrInvalidUpdateVersion:
		return replica.ErrInvalidUpdateVersion
	case metadata.ErrFencedLeaderEpoch:
		return replica.ErrFencedLeaderEpoch
	case metadata.ErrUnknownLeaderEpoch:
		return replica.ErrUnknownLeaderEpoch
	case metadata.ErrIneligibleReplica, metadata.ErrFencedReplica:
		return replica.ErrIneligibleReplica
	case metadata.ErrEmptyISR, metadata.ErrInvalidRequest:
		return replica.ErrInvalidRequest
	}
	return replica.ErrNotLeaderOrFollower
}

func (r *rpcRequest) alterPartitionRequest() metadata.AlterPartitionRequest {
	return metadata.AlterPartitionRequest{BrokerID: r.BrokerID, BrokerEpoch: r.Epoch, TopicID: r.TopicID,
		Partition: r.Partition, LeaderEpoch: r.LeaderEpoch, PartitionEpoch: r.PartitionEpoch, ISR: slices.Clone(r.ISR)}
}

// proposeAlterPartition runs an AlterPartition on this voter's node and
// answers with the partition as the node's controller holds it after.
func (q *quorumMember) proposeAlterPartition(ctx context.Context, req *rpcRequest) rpcReply {
	var view controller.AlterPartitionView
	res, err := q.node.Propose(ctx, controller.AlterPartitionReporting(req.alterPartitionRequest(), &view))
	reply := replyOf(res, err)
	if view.Found && (reply.Outcome == rpcOK || reply.Outcome == rpcRejected) {
		reply.Partition = &view.Partition
	}
	return reply
}

// alterPartition runs an AlterPartition on the controller leader: here
// when this voter leads, else forwarded to the leader. Like propose it
// retries while no leader is known, the leader is busy or the request was
// not sent, and never retries one whose outcome is unknown (the replica
// machine sends its change again after its own timeout, and the
// compare-and-set applies it at most once).
func (q *quorumMember) alterPartition(ctx context.Context, req *rpcRequest) (rpcReply, error) {
	for {
		reply := q.proposeAlterPartition(ctx, req)
		err := reply.err()
		var nl *controller.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != 0 && nl.Leader != q.voterID {
			reply, err = callRPC(ctx, q.auth, nl.Leader, q.addrs[nl.Leader], req)
			if err == nil {
				err = reply.err()
			}
		}
		var rej *metadata.Rejection
		if err == nil || errors.As(err, &rej) {
			return reply, nil
		}
		if !retryable(err) {
			return rpcReply{}, err
		}
		select {
		case <-ctx.Done():
			return rpcReply{}, err
		case <-time.After(proposeRetryInterval):
		}
	}
}

// alterPartition proposes this broker's ISR change for a partition it
// leads. It is called from a goroutine of its own, never a shard (it
// blocks for a round trip to the controller leader and a Raft commit),
// and its outcome is posted to the shard that owns the partition. It
// waits at most alterPartitionTimeout, a free slot included; an error
// means no answer (no slot, no leader reachable, outcome unknown,
// stopping), and the replica machine sends the change again.
//
// req.BrokerID must be this broker and req.BrokerEpoch its current
// registration's epoch; BrokerEpoch zero means the current one.
func (s *brokerSession) alterPartition(ctx context.Context, req metadata.AlterPartitionRequest) (AlterPartitionOutcome, error) {
	if req.BrokerID != s.nodeID {
		return AlterPartitionOutcome{}, fmt.Errorf("server: broker %d cannot alter a partition as broker %d", s.nodeID, req.BrokerID)
	}
	if req.BrokerEpoch == 0 {
		req.BrokerEpoch = s.epoch.Load()
	}
	ctx, cancel := context.WithTimeout(ctx, alterPartitionTimeout)
	defer cancel()
	select {
	case s.alterSlots <- struct{}{}:
		defer func() { <-s.alterSlots }()
	case <-ctx.Done():
		return AlterPartitionOutcome{}, fmt.Errorf("%w: %w", errAlterPartitionNoSlot, ctx.Err())
	case <-s.stopC:
		return AlterPartitionOutcome{}, controller.ErrStopped
	}
	reply, err := s.q.alterPartition(ctx, &rpcRequest{Kind: rpcAlterPartition, BrokerID: req.BrokerID, Epoch: req.BrokerEpoch,
		TopicID: req.TopicID, Partition: req.Partition, LeaderEpoch: req.LeaderEpoch, PartitionEpoch: req.PartitionEpoch,
		ISR: slices.Clone(req.ISR)})
	if err != nil {
		return AlterPartitionOutcome{}, fmt.Errorf("alter partition %s-%d: %w", req.TopicID, req.Partition, err)
	}
	out := AlterPartitionOutcome{Code: reply.Code, Detail: reply.Detail}
	if reply.Outcome == rpcOK {
		out.Code = metadata.ErrNone
	}
	if reply.Partition != nil {
		out.Found, out.Partition = true, *reply.Partition
	}
	return out, nil
}
