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
// without allocating per record (an lz4 body is expanded into a scratch
// buffer kept across frames). It is not safe for concurrent use.
type BatchReader struct {
	hdr     FrameHeader
	body    fb.RecordBatchBody
	n, next int
	scratch []byte
}

// Reset checks frame (length, magic, version, CRC), expands its body if
// compressed, verifies the body, and checks the records against the header:
// at least one and at most recordCount records, offset deltas strictly
// increasing and below recordCount, timestamps at most maxTimestampMs. Only
// then does it make the records available to Next. frame must stay
// unchanged while they are read.
func (r *BatchReader) Reset(frame []byte) error {
	r.n, r.next = 0, 0
	h, err := CheckFrame(frame)
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
	if err := VerifyBody(body); err != nil {
		return fmt.Errorf("%w: %w", ErrBody, err)
	}
	r.body.Init(body, flatbuffers.GetUOffsetT(body))
	n := r.body.RecordsLength()
	if n == 0 || uint64(n) > uint64(h.RecordCount) {
		return fmt.Errorf("%w: %d records, header says %d", ErrBodyRecords, n, h.RecordCount)
	}
	var rec fb.Record
	prev := int64(-1)
	for i := 0; i < n; i++ {
		r.body.Records(&rec, i)
		d := int64(rec.OffsetDelta())
		if d <= prev || d >= int64(h.RecordCount) {
			return fmt.Errorf("%w: record %d has offset delta %d", ErrBodyRecords, i, d)
		}
		prev = d
		if ts := h.FirstTimestampMs + rec.TimestampDelta(); ts > h.MaxTimestampMs {
			return fmt.Errorf("%w: record %d timestamp %d after max %d", ErrBodyRecords, i, ts, h.MaxTimestampMs)
		}
	}
	r.hdr, r.n = h, n
	return nil
}

// Header is the header of the frame last given to Reset.
func (r *BatchReader) Header() FrameHeader { return r.hdr }

// Len is the number of records in the frame.
func (r *BatchReader) Len() int { return r.n }

// Next fills v with the next record and reports whether there was one.
func (r *BatchReader) Next(v *RecordView) bool {
	if r.next >= r.n {
		return false
	}
	r.body.Records(&v.rec, r.next)
	r.next++
	v.Offset = r.hdr.BaseOffset + int64(v.rec.OffsetDelta())
	v.TimestampMs = r.hdr.FirstTimestampMs + v.rec.TimestampDelta()
	v.Key = v.rec.KeyBytes()
	v.Value = v.rec.ValueBytes()
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
}

// HeadersLen is the number of headers of the record.
func (v *RecordView) HeadersLen() int {
	if v.rec.Table().Bytes == nil {
		return 0
	}
	return v.rec.HeadersLength()
}

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
