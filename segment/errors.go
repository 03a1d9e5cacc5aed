package segment

import (
	"errors"

	"golang.org/x/sys/unix"
)

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

// IsNoSpace reports whether err is a file system out of room: ENOSPC, or
// EDQUOT for a quota. Unlike other I/O errors it says nothing was lost: a
// write or fallocate that returns it stored nothing past what it reports
// (docs/storage.md, "A full disk").
func IsNoSpace(err error) bool { return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) }

// errKeptOnNoSpace: a small file could not be replaced for lack of room
// before its rename, so the old one stands whole (replaceFile).
var errKeptOnNoSpace = errors.New("segment: no room to replace the file; the old one stands")
