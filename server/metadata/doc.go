// Package metadata is the controller's state machine: the cluster metadata
// that Strata's embedded Raft group replicates, in the manner of Kafka's
// KRaft __cluster_metadata log. It is sans-IO: no sockets, files,
// goroutines or clock; time comes in as nowMs.
//
// It has two layers. A Controller, run only by the Raft leader, validates
// commands against the current State and either refuses them with a named
// ErrorCode or returns the records that carry them out. Every voter and
// every broker applies those records, in log order, to its own State with
// State.Apply, and so holds the same State.
//
//	broker ──request──▶ Controller (Raft leader)
//	                     │ validate against State
//	                     ├──▶ Rejection{ErrorCode}
//	                     └──▶ []Record ──AppendBatch──▶ Raft log entry
//	                                                       │ committed
//	                            ┌──────────────────────────┼─────────────┐
//	                            ▼                          ▼             ▼
//	                     State.Apply (voter)      State.Apply (broker)   ...
//	                            │                          │
//	                      AppendSnapshot/Restore      Image (Metadata)
//
// The model: brokers (id, incarnation, epoch, listeners, rack, fenced, in
// controlled shutdown), topics (16-byte id, name, configs) and partitions
// (replicas, ISR, leader, leader epoch, partition epoch, and the eligible
// leader replicas of KIP-966 with the last-known ELR; election.go).
//
// Records are a type byte, a version byte and a body of varints and
// length-prefixed strings and lists (record_codec.go). A snapshot is the
// whole State in one canonical encoding (snapshot.go), and State.Hash is
// its SHA-256. docs/controller.md describes the model, the commands, the
// rules for sessions, fencing and elections, and every byte.
package metadata
