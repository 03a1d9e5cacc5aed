// Package replica is leader/follower replication of one partition as a
// sans-IO state machine, in the manner of etcd raft: inputs go in through
// Step and Tick, and the effects come out as a Ready batch that the driver
// (the broker's shard loop) carries out before calling Advance. The
// package has no ring, sockets, files, goroutines or clock: time comes in
// as Tick(nowMs), and the bytes of the log stay the driver's. The machine
// reasons about offsets and leader epochs only.
//
//	        Image ─┐   Produce ─┐   FetchRequest ─┐   FetchResponse ─┐
//	AlterPartitionResult ─┐   LogDurable ─┐   Tick(nowMs) ─┐          │
//	                      ▼               ▼                ▼          ▼
//	                   ┌───────────────── Partition ─────────────────────┐
//	                   │ role (leader | follower | none), leader epoch,  │
//	                   │ ISR (committed + one change in flight), HW,     │
//	                   │ log end, durable end, EpochCache, followers'    │
//	                   │ ends (leader), fetch pipeline (follower)        │
//	                   └──────────────────────┬──────────────────────────┘
//	                                          ▼ Ready
//	Truncate ─▶ Appends ─▶ Fetches / Responses ─▶ AlterPartition ─▶ Answers
//
// One machine is both roles: every metadata Image may move it between
// leader, follower and no role, and the same object carries its log
// bookkeeping across. docs/replication.md describes the protocol, the
// state machine, the invariants and what each rests on.
package replica
