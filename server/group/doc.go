// Package group is the consumer-group coordinator's state machine, in the
// manner of Kafka's next-generation group protocol (KIP-848, Kafka 4.0):
// members heartbeat with their subscription and the partitions they own,
// the coordinator computes every member's target assignment (uniform or
// range assignor, both sticky) and moves each member's current assignment
// toward its target incrementally, so that a partition is revoked from its
// owner, and the revocation acknowledged, before it is given to another.
//
// It is sans-IO like server/metadata: no sockets, files, goroutines or
// clock. Time comes in as nowMs arguments, topic metadata comes in through
// SetTopics, and every change to the durable state comes out as Records
// that the broker appends to the group's log before it answers. A new
// coordinator rebuilds the same state by Replay of those records.
//
//	member ──Heartbeat──▶ Coordinator ──▶ HeartbeatResponse (epoch, assignment)
//	                          │
//	                          └──▶ []Record ──append──▶ group log
//	                                                        │ (failover)
//	                                      Replay ◀──────────┘
//
// Epochs: the group epoch is bumped by every change of membership,
// subscription or subscribed topic metadata; the target assignment is
// computed for a group epoch (the assignment epoch); a member's epoch
// reaches the assignment epoch once it has revoked everything its target
// no longer holds. docs/consumer-groups.md describes the protocol, the
// records and the guarantees.
package group
