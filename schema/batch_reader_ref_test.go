package schema

import (
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema/fb"
)

// refBatchReader is the reference for BatchReader: the same checks made
// the slow, obviously faithful way. Reset runs CheckFrame, expands the
// body, runs the generic verifier VerifyBody, then checks every record
// against the header; Next reads each record through the generated
// accessors. BatchReader must accept exactly the frames it accepts, fail
// with the same errors, and yield the same records.
type refBatchReader struct {
	hdr     FrameHeader
	body    fb.RecordBatchBody
	n, next int
	scratch []byte
}

func (r *refBatchReader) Reset(frame []byte) error {
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

func (r *refBatchReader) Len() int { return r.n }

func (r *refBatchReader) Next(v *RecordView) bool {
	if r.next >= r.n {
		return false
	}
	r.body.Records(&v.rec, r.next)
	r.next++
	v.Offset = r.hdr.BaseOffset + int64(v.rec.OffsetDelta())
	v.TimestampMs = r.hdr.FirstTimestampMs + v.rec.TimestampDelta()
	v.Key = v.rec.KeyBytes()
	v.Value = v.rec.ValueBytes()
	v.headersLen = v.rec.HeadersLength() // through the generated accessor
	return true
}
