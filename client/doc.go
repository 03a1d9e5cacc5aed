// Package client is Strata's thin client library: a producer, a consumer
// and an admin client over the wire protocol of docs/protocol.md.
//
// It is layered the way the broker is read:
//
//   - a connection layer (one TCP connection per broker address) that
//     pipelines requests, pairs answers by correlation id in the order the
//     broker sends them, and bounds the requests in flight per connection;
//   - a Client that owns those connections and a metadata cache (which
//     broker leads which partition);
//   - Producer, Consumer and Admin on top of one Client.
//
// It depends on schema/ and the standard library only (plus the buffer pool
// and lz4 that schema/ brings), never on the broker side.
//
// Delivery is at least once: a producer that loses a connection or gets a
// retriable error sends the unacknowledged batches again, and a batch the
// broker had appended before the answer was lost is then written twice.
// Idempotent production (producer ids and sequences) will remove those
// duplicates; until then, consumers that need exactly once deduplicate.
package client
