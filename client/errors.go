package client

import (
	"errors"
	"fmt"
	"net"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// isConnErr reports whether err means the connection (not the request)
// failed: a closed connection, a dial or network error.
func isConnErr(err error) bool {
	if errors.Is(err, ErrConnClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// ErrorCode is the wire error code carried by err (a *schema.CodeError
// anywhere in its chain), or NONE when it carries none.
func ErrorCode(err error) schema.ErrorCode {
	var ce *schema.CodeError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return fb.ErrorCodeNone
}

// needsMetadata reports whether a wire error says the cached leader may be
// wrong. STORAGE_ERROR is one: a broker whose disk failed serves the
// partition no more, and the controller moves its leadership away.
func needsMetadata(code schema.ErrorCode) bool {
	switch code {
	case fb.ErrorCodeNotLeader, fb.ErrorCodeUnknownTopicOrPartition, fb.ErrorCodeLeaderNotAvailable,
		fb.ErrorCodeFencedLeaderEpoch, fb.ErrorCodeUnknownLeaderEpoch, fb.ErrorCodeStorageError:
		return true
	}
	return false
}

// refreshesMetadata reports whether err means the cached leader of the
// partition it came from may be wrong: a code needsMetadata names, or a
// lost or refused connection (the broker may be down, and its
// leaderships moving to others).
func refreshesMetadata(err error) bool {
	if code := ErrorCode(err); code != fb.ErrorCodeNone {
		return needsMetadata(code)
	}
	return isConnErr(err)
}

// BatchTooLargeError is a broker's MESSAGE_TOO_LARGE answer to a produce:
// a batch of the partition was larger than the topic's max.message.bytes.
// Bytes is the size of the largest batch (its whole frame) the request
// carried for the partition, the one the limit refused.
type BatchTooLargeError struct {
	TopicPartition
	Bytes int
	Err   *schema.CodeError
}

func (e *BatchTooLargeError) Error() string {
	return fmt.Sprintf("produce to %s/%d: record batch of %d bytes: %v", e.Topic, e.Partition, e.Bytes, e.Err)
}

func (e *BatchTooLargeError) Unwrap() error { return e.Err }
