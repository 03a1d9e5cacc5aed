package server

import (
	"time"

	"github.com/strata-db/strata/schema"
)

// Limits of a shard, each a named constant so every bound is visible in one
// place. Config may lower some of them; none is unbounded.
const (
	// ringEntriesDefault is the submission queue depth of a shard's ring;
	// the completion queue is cqPerSQ times deeper, since multishot accept
	// and receive post many completions per submission.
	ringEntriesDefault = 4096
	cqPerSQ            = 4

	// recvBufferBytes and recvBufferCount size a shard's provided buffer
	// ring: the memory every connection of the shard receives into. It is
	// shared, so 10,000 idle connections hold none of it.
	recvBufferBytes = 64 << 10
	recvBufferCount = 512
	recvGroupID     = 1

	// connsPerShardMax bounds a shard's connection table; an accept beyond
	// it is closed at once.
	connsPerShardMax = 1 << 16

	// inflightPerConnMax is how many requests one connection may have
	// received and not yet been answered: the pipelining cap. Beyond it the
	// shard stops reading from that connection until answers go out.
	inflightPerConnMax = 1024

	// requestBytesMax bounds one request (length prefix excluded): the
	// largest envelope schema accepts. A larger length prefix closes the
	// connection before any of the body is read.
	requestBytesMax = schema.EnvelopeBytesMax - lengthPrefixBytes

	// discardBytesMax bounds how much of an oversized request the shard
	// drops to keep the connection usable after answering it; a larger
	// claim ends the connection once the answer is out.
	discardBytesMax = 1 << 30

	// lengthPrefixBytes is the size of the little-endian length that
	// precedes every request and response.
	lengthPrefixBytes = schema.LengthPrefixBytes

	// pendingBytesMax bounds what a connection buffers beyond the requests
	// it is allowed to have in flight; past it, receiving pauses.
	pendingBytesMax = 2 * recvBufferBytes

	// connIdleMaxMs closes a connection that sent nothing and had nothing
	// in flight for this long (Kafka's connections.max.idle.ms).
	connIdleMaxMsDefault = 10 * 60 * 1000

	// tickInterval is how often a shard checks timers (idle connections).
	tickInterval = 100 * time.Millisecond
	// drainReportInterval is how often a stop that is still waiting for
	// connections or work logs what it waits for.
	drainReportInterval = 5 * time.Second
	// drainWaitMaxMsDefault bounds how long a stop waits for answers to
	// reach their clients before closing the connections left.
	drainWaitMaxMsDefault = 15_000

	// completionBatchMax is how many CQEs a shard handles per turn.
	completionBatchMax = 256

	// The request budget (request_budget.go). requestBudgetBytesDefault is the memory for large requests shared
	// by all of a server's shards (each gets an equal share). With the
	// shards' fixed memory (provided buffers, pools) it fits a 2 GiB
	// machine; see docs/architecture.md for the sum.
	requestBudgetBytesDefault = 512 << 20
	// requestBudgetBytesMin is the least budget a server accepts: below
	// it, every large request would wait for its shard to hold nothing.
	requestBudgetBytesMin = 1 << 20
	// requestBudgetShareBytesMin is the least share of the budget each
	// shard may get: the total is divided among the shards, so a total
	// that passes requestBudgetBytesMin can still leave every shard too
	// little (1 MiB over 16 shards is 64 KiB each, two of the smallest
	// large requests), and the server refuses it.
	requestBudgetShareBytesMin = 1 << 20
	// directPoolBudgetShare keeps the pool of free request buffers within
	// a share of the budget (1/directPoolBudgetShare), so that memory kept
	// for reuse stays proportional to the memory requests may hold.
	directPoolBudgetShare = 4
	// budgetWaitingShare bounds the bytes that connections waiting for
	// budget hold in hand (1/budgetWaitingShare of the budget, at least
	// budgetWaitingBytesMin, room for a few clients that pipeline large
	// requests): what arrived before their receive was cancelled. A
	// multishot receive takes what the socket holds, up to the socket's
	// receive buffer, before the shard sees the length prefix; a waiting
	// connection whose bytes would pass the bound is closed, since the
	// shard can neither keep them nor give them back.
	budgetWaitingShare    = 4
	budgetWaitingBytesMin = 16 << 20
	// budgetStaleWaitersMax is how many entries of connections that no
	// longer wait the queue keeps beyond twice the waiting ones before it
	// is compacted, so that it stays in proportion to the waiting.
	budgetStaleWaitersMax = 64

	// partialBytesMin is the least a connection's partial buffer grows
	// to: an incomplete request's first bytes waiting for budget hold
	// little.
	partialBytesMin = 4 << 10
)

// The ISR's lag bound (BrokerConfig.ReplicaLagTimeMax).
const (
	// ReplicaLagTimeMaxDefault is Kafka's replica.lag.time.max.ms.
	ReplicaLagTimeMaxDefault = 30 * time.Second
	// ReplicaLagTimeMaxMin keeps a follower from leaving the ISR between
	// two of its fetches (each parks up to 500 ms).
	ReplicaLagTimeMaxMin = time.Second
)
