package server

import (
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// Oversized answers a request larger than any envelope the broker accepts
// with MESSAGE_TOO_LARGE, before reading any of it. Its envelope was never
// read, so the answer carries correlation id 0; it is still the answer to
// that request's place in the connection's order.
func (b *Broker) Oversized(sh *Shard, ref ConnRef, seq uint64, size int64) {
	bs := b.shards[sh.ID()]
	b.metrics.forShard(bs.id).receivedUnknown()
	h := schema.EnvelopeHeader{ErrorCode: fb.ErrorCodeMessageTooLarge}
	sh.Respond(ref, seq, bs.enc.Encode(&h, nil))
	b.log.Debug("request above the envelope limit", "bytes", size, "limit", schema.EnvelopeBytesMax)
}
