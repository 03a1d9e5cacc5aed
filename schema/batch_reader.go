package schema

import (
	"errors"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema/fb"
)

// Body errors: a frame whose header and CRC are fine but whose body is not.
// Each wraps ErrBody; a failed verification wraps the *VerifyError too.
var (
	ErrBody            = errors.New("schema: invalid batch body")
	ErrBodyCompression = fmt.Errorf("%w: bad compression", ErrBody)
	ErrBodyRecords     = fmt.Errorf("%w: records disagree with the frame header", ErrBody)
)

// BatchReader decodes one frame at a time and walks its records in place,
// without allocating per record or, in steady state, per frame: an lz4 body
// is expanded into a scratch buffer, and what Next needs of each record is
// kept in a slice, both reused across frames. It is not safe for concurrent
// use.
type BatchReader struct {
	hdr     FrameHeader
	body    []byte
	recs    []recordEntry
	next    int
	scratch []byte
}

// Reset checks frame (length, magic, version, CRC), expands its body if
// compressed, verifies the body, and checks the records against the header:
// at least one and at most recordCount records, offset deltas strictly
// increasing and below recordCount, timestamps at most maxTimestampMs. Only
// then does it make the records available to Next. frame must stay
// unchanged while they are read.
//
// The body is verified as VerifyBody would verify it, in the same pass that
// reads the records (record_decode.go), and fails with the same errors.
func (r *BatchReader) Reset(frame []byte) error {
	return r.reset(frame, true)
}

// ResetCRCChecked is Reset for a frame whose CRC the caller has already
// checked with CheckFrame, on the same bytes, unchanged since (but for the
// base offset and leader epoch, which the CRC does not cover). It skips
// only computing the CRC: the length, magic, version, reserved byte and
// record count of the header, the body and the records are checked as
// Reset checks them. A caller that cannot vouch for the CRC must use Reset:
// the CRC is the only check that catches damage to record bytes and header
// fields that still verify.
func (r *BatchReader) ResetCRCChecked(frame []byte) error {
	return r.reset(frame, false)
}

func (r *BatchReader) reset(frame []byte, checkCRC bool) error {
	r.recs, r.next = r.recs[:0], 0
	var h FrameHeader
	var err error
	if checkCRC {
		h, err = CheckFrame(frame)
	} else {
		h, err = checkFrameLength(frame)
	}
	if err != nil {
		return err
	}
	body := frame[FrameHeaderSize:h.Length]
	switch h.Compression() {
	case CompressionNone:
	case CompressionLZ4:
		if body, r.scratch, err = decompressBody(r.scratch, body); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: codec %d", ErrBodyCompression, h.Compression())
	}
	if err := r.decodeRecords(body, &h); err != nil {
		return err
	}
	r.hdr, r.body = h, body
	return nil
}

// Header is the header of the frame last given to Reset.
func (r *BatchReader) Header() FrameHeader { return r.hdr }

// Len is the number of records in the frame.
func (r *BatchReader) Len() int { return len(r.recs) }

// Next fills v with the next record and reports whether there was one.
func (r *BatchReader) Next(v *RecordView) bool {
	if r.next >= len(r.recs) {
		return false
	}
	e := &r.recs[r.next]
	r.next++
	v.Offset = r.hdr.BaseOffset + int64(e.offsetDelta)
	v.TimestampMs = r.hdr.FirstTimestampMs + e.timestampDelta
	// Two-index slices, as the generated accessors make: the same bytes,
	// length and capacity.
	v.Key, v.Value = nil, nil
	if e.keyStart != 0 {
		v.Key = r.body[e.keyStart:e.keyEnd]
	}
	if e.valueStart != 0 {
		v.Value = r.body[e.valueStart:e.valueEnd]
	}
	v.rec.Init(r.body, flatbuffers.UOffsetT(e.table))
	v.headersLen = int(e.headers)
	return true
}

// RecordView is one record read in place: its slices point into the frame
// (or the reader's scratch buffer for a compressed frame) and stay valid
// until the reader's next Reset. A nil Key or Value is null.
type RecordView struct {
	Offset      int64
	TimestampMs int64
	Key         []byte
	Value       []byte
	rec         fb.Record
	headersLen  int // counted when the batch was verified
}

// HeadersLen is the number of headers of the record.
func (v *RecordView) HeadersLen() int { return v.headersLen }

// Header returns the i-th header's key and value (nil when absent), or two
// nils when i is out of range.
func (v *RecordView) Header(i int) (key, value []byte) {
	if i < 0 || i >= v.HeadersLen() {
		return nil, nil
	}
	var h fb.Header
	v.rec.Headers(&h, i)
	return h.Key(), h.ValueBytes()
}
