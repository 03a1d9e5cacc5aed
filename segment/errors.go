package segment

import "errors"

// Errors a caller can act on.
var (
	// ErrOffsetOutOfRange: the offset is below the log start or past the end.
	ErrOffsetOutOfRange = errors.New("segment: offset out of range")
	// ErrNeedRoll: the active segment cannot take the frame; roll first.
	ErrNeedRoll = errors.New("segment: active segment must be rolled first")
	// ErrNeedGrowth: the frame would pass the active segment's allocated
	// end; allocate the core's Growth first.
	ErrNeedGrowth = errors.New("segment: active segment must grow first")
	// ErrAppendsPending: the operation needs every prepared append committed.
	ErrAppendsPending = errors.New("segment: appends still in flight")
	// ErrFrameTooLarge: the frame is larger than a segment.
	ErrFrameTooLarge = errors.New("segment: frame larger than the segment size")
	// ErrCorrupt: bytes on disk fail their checks; nothing from them is served.
	ErrCorrupt = errors.New("segment: corrupt data")
	// ErrStaleRead: the log was truncated or trimmed while a read was planned.
	ErrStaleRead = errors.New("segment: log changed under a read plan; plan again")
	// ErrClosed: the log is closed.
	ErrClosed = errors.New("segment: log closed")
	// ErrOutOfOrder: an append was committed out of the order it was prepared.
	ErrOutOfOrder = errors.New("segment: append committed out of order")
	// ErrStorageFailed: a write, sync, allocate, truncate, rename or folder
	// sync of the log's files failed; the log is offline (fail-stop) until it
	// is opened again, and nothing after the failure was acknowledged.
	ErrStorageFailed = errors.New("segment: storage failed; the log is offline until it is reopened")
)
