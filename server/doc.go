// Package server is the Strata broker: one shard per core, each a goroutine
// locked to its own OS thread and CPU that owns one io_uring, one
// SO_REUSEPORT listener, the connections it accepted and the partitions
// hashed to it. A shard never blocks and takes no lock on the data path:
// every socket and file operation is an SQE on its ring, and work for state
// another shard owns travels as a message through server/mailbox.
//
//	          ┌──────────── shard 0 (thread pinned to CPU 0) ────────────┐
//	client ──►│ listener (SO_REUSEPORT) ─ multishot ACCEPT               │
//	          │ conn ─ multishot RECV ─► provided buffers ─► framing     │
//	          │        ─► handler (sans-IO) ─► responses, in order ─► SEND│
//	          │ mailbox ◄─ MSG_RING doorbell ◄─ other shards             │
//	          └───────────────────────────────────────────────────────────┘
//
// See docs/architecture.md for the request and fetch paths.
package server
