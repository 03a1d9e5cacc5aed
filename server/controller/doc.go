// Package controller runs Strata's controller quorum: the embedded Raft
// group (go.etcd.io/raft/v3) whose log holds the cluster metadata that the
// metadata package's state machine defines.
//
// A Node runs one voter. Its goroutine owns a raft.RawNode and drives it
// with the Ready loop: persist the snapshot, the new entries and the hard
// state (raftlog, over a segment.Log), then send messages (transport), then
// apply committed entries to a metadata.State and publish a new Image. On
// the leader it also keeps a metadata.Controller that is ahead of the
// applied state by exactly the proposals in flight, and rebuilds it from
// the applied state whenever leadership changes or a proposal is dropped.
//
// The API is what the broker needs: Propose a command and wait for its
// records or a named rejection (or NotLeaderError with the leader's id),
// Image for the applied state, Read for a linearizable (ReadIndex) view,
// Subscribe to applied records, Leader and Status for describe. See
// docs/controller.md for the design.
package controller
