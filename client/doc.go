// Package client is Strata's thin client library: a producer, a consumer,
// a consumer-group member and an admin client over the wire protocol of
// docs/protocol.md.
//
// It is layered the way the broker is read:
//
//   - a connection layer (one TCP connection per broker address) that
//     pipelines requests, pairs answers by correlation id in the order the
//     broker sends them, and bounds the requests in flight per connection;
//   - a Client that owns those connections and a metadata cache (which
//     broker leads which partition);
//   - Producer, Consumer and Admin on top of one Client;
//   - GroupConsumer, a consumer-group member (KIP-848): a sans-IO state
//     machine (memberCore) driven by a heartbeat goroutine, reading the
//     partitions the coordinator assigns with a Consumer's fetch machinery
//     (docs/consumer-groups.md, "The client").
//
// It depends on schema/ and the standard library only (plus the buffer pool
// and lz4 that schema/ brings), never on the broker side.
//
// Retries (docs/client.md has the table): lost and refused connections,
// response timeouts and the retriable codes (NOT_LEADER,
// LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION from a partition's
// broker, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, NOT_ENOUGH_REPLICAS,
// NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT, STORAGE_ERROR, as
// Kafka retries KAFKA_STORAGE_ERROR, since leadership moves off a failed
// disk) are retried with exponential backoff, refreshing the metadata
// where the leader may have moved; anything else (MESSAGE_TOO_LARGE,
// CORRUPT_MESSAGE, INVALID_REQUEST, ...) fails at once. A producer's
// batches retry inside ProducerConfig.DeliveryTimeoutMs and then end with
// ErrDeliveryTimeout wrapping the last cause; metadata lookups and
// ListOffsets retry inside Config.RetryTimeoutMs and then end with
// ErrRetryTimeout. Dial is not retried.
//
// Order: a producer never acknowledges or writes for good a batch after a
// later batch of its partition. A partition's batches in flight share one
// connection, and when one is retried the later ones in flight are sent
// again after it, whatever their answers. A consumer that loses a fetch
// fetches again from its position, on whichever broker leads by then.
// Fetches and offset lookups carry the metadata's leader epoch
// (current_leader_epoch), so a broker can fence a client whose metadata
// is stale.
//
// Delivery is at least once: a batch the broker had appended before its
// answer was lost, or a later batch sent again behind a retried one, is
// written twice (Producer.RetryStats counts the resends). Idempotent
// production (producer ids and sequences) will remove those duplicates;
// until then, consumers that need exactly once deduplicate.
package client
