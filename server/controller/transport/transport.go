// Package transport carries Raft messages between controller voters. The
// Transport interface lets tests swap the TCP transport for an in-process
// network that drops, delays, duplicates and reorders messages.
package transport

import pb "go.etcd.io/raft/v3/raftpb"

// Handler receives what a transport learns. Its methods must not block:
// the node queues the message (dropping it when its inbox is full, as raft
// retransmits) and returns.
type Handler interface {
	// Deliver hands over a message that arrived for this voter.
	Deliver(m *pb.Message)
	// ReportUnreachable says a message to peer could not be sent.
	ReportUnreachable(peer uint64)
	// ReportSnapshot says whether a snapshot message to peer was sent
	// whole; raft holds the peer until it hears one or the other.
	ReportSnapshot(peer uint64, ok bool)
}

// Transport sends a voter's messages to its peers.
type Transport interface {
	// Start begins receiving and delivering messages to h.
	Start(h Handler) error
	// Send queues messages for their peers and returns at once: a slow
	// or dead peer never blocks the caller or other peers. Messages that
	// do not fit a peer's queue are dropped. The messages must not be
	// modified afterwards.
	Send(msgs []*pb.Message)
	// Close stops every goroutine of the transport and waits for them.
	Close() error
}
