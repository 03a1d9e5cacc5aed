package segment

import (
	"encoding/binary"

	flatbuffers "github.com/google/flatbuffers/go"
	"github.com/pierrec/lz4/v4"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// The cleaner is the one place that re-encodes a frame. A cleaned frame
// keeps everything of the original header (base offset, leader epoch,
// attributes, record count, both timestamps, producer id, epoch and base
// sequence) and holds the records it kept with their own offset and
// timestamp deltas, so every kept record keeps its offset and timestamp.
// The record count is the frame's offset span (records take offsets below
// base+recordCount), not the number of records in it, exactly as before
// cleaning: the next frame still starts at or after base+recordCount.
//
// The frame check bounds the record count by the body size (an
// uncompressed record takes at least one body byte), so a body that lost
// most of its records is padded with an unreferenced zero-filled byte
// vector up to recordCount bytes: FlatBuffers readers follow offsets only,
// and the verifier accepts bytes no offset names. An lz4 body is
// recompressed with lz4; when the compressed body would be too small for
// its record count (the padding itself compresses about 255:1), the frame
// is stored uncompressed with its codec bits cleared, the one header
// field that then changes.

// frameRewriter re-encodes frames; it reuses its buffers across frames and
// is not safe for concurrent use.
type frameRewriter struct {
	rd       schema.BatchReader
	fbb      *flatbuffers.Builder
	recs     []flatbuffers.UOffsetT
	hdrs     []flatbuffers.UOffsetT
	lz       lz4.Compressor
	zbuf     []byte
	pad      []byte
	out      []byte
	keepBits []bool
	dropped  int // records dropped from the last frame rewritten
	kept     int
}

// rewriterBuilderBytes is the builder's first buffer; it grows to the
// largest body rewritten (bounded by schema.BodyBytesMax).
const rewriterBuilderBytes = 64 << 10

func newFrameRewriter() *frameRewriter {
	return &frameRewriter{fbb: flatbuffers.NewBuilder(rewriterBuilderBytes)}
}

// recordKeep decides for one record whether the cleaner keeps it.
type recordKeep func(v *schema.RecordView) bool

// rewrite returns frame with only the records keep accepts: frame itself
// (unchanged, not copied) when it keeps them all, nil when it keeps none,
// else a new frame in the rewriter's buffer, valid until the next call.
// keep is called once per record, in offset order.
func (w *frameRewriter) rewrite(frame []byte, keep recordKeep) ([]byte, error) {
	if err := w.rd.Reset(frame); err != nil {
		return nil, err
	}
	h := w.rd.Header()
	w.kept, w.dropped = 0, 0
	w.keepBits = w.keepBits[:0]
	var v schema.RecordView
	for w.rd.Next(&v) {
		k := keep(&v)
		w.keepBits = append(w.keepBits, k)
		if k {
			w.kept++
		} else {
			w.dropped++
		}
	}
	if w.dropped == 0 {
		return frame, nil
	}
	if w.kept == 0 {
		return nil, nil
	}
	body, err := w.encodeBody(frame, &h, 0)
	if err != nil {
		return nil, err
	}
	compressed := false
	if h.Compression() == schema.CompressionLZ4 {
		if z, ok := w.compress(body, h.RecordCount); ok {
			body, compressed = z, true
		} else {
			h.Attributes &^= schema.AttrCompressionMask
		}
	}
	if !compressed && len(body) < int(h.RecordCount) {
		// The padding vector's length word comes on top of padBytes.
		if body, err = w.encodeBody(frame, &h, int(h.RecordCount)-len(body)); err != nil {
			return nil, err
		}
	}
	w.out = schema.AppendFrameHeader(w.out[:0], &h, len(body))
	w.out = append(w.out, body...)
	schema.SealFrame(w.out)
	return w.out, nil
}

// encodeBody builds the body of the records keepBits marks, with padBytes
// of unreferenced zeros.
func (w *frameRewriter) encodeBody(frame []byte, h *schema.FrameHeader, padBytes int) ([]byte, error) {
	if err := w.rd.ResetCRCChecked(frame); err != nil {
		return nil, err
	}
	fbb := w.fbb
	fbb.Reset()
	if padBytes > 0 {
		// Built first, so it sits at the end of the finished buffer.
		w.pad = growZero(w.pad, padBytes)
		fbb.CreateByteVector(w.pad)
	}
	w.recs = w.recs[:0]
	var v schema.RecordView
	for i := 0; w.rd.Next(&v); i++ {
		if w.keepBits[i] {
			w.recs = append(w.recs, w.encodeRecord(&v, h.BaseOffset, h.FirstTimestampMs))
		}
	}
	fb.RecordBatchBodyStartRecordsVector(fbb, len(w.recs))
	for i := len(w.recs) - 1; i >= 0; i-- {
		fbb.PrependUOffsetT(w.recs[i])
	}
	records := fbb.EndVector(len(w.recs))
	fb.RecordBatchBodyStart(fbb)
	fb.RecordBatchBodyAddRecords(fbb, records)
	fbb.FinishWithFileIdentifier(fb.RecordBatchBodyEnd(fbb), []byte(schema.BodyIdentifier))
	return fbb.FinishedBytes(), nil
}

func (w *frameRewriter) encodeRecord(v *schema.RecordView, base, firstTs int64) flatbuffers.UOffsetT {
	return schema.EncodeRecord(w.fbb, v.Key, v.Value, v.HeadersLen(), v.Header,
		v.TimestampMs-firstTs, uint32(v.Offset-base), &w.hdrs)
}

// lz4 body framing, as schema's compress.go writes it: the raw length,
// then one lz4 block.
const (
	lz4RawLengthBytes = 4
	lz4ExpansionMax   = 255
	lz4SlackBytes     = 16
)

// compress returns the lz4 form of body, or ok=false when the result
// would be too short for records offsets (see above).
func (w *frameRewriter) compress(body []byte, records uint32) ([]byte, bool) {
	need := lz4RawLengthBytes + lz4.CompressBlockBound(len(body))
	if cap(w.zbuf) < need {
		w.zbuf = make([]byte, need)
	}
	z := w.zbuf[:need]
	binary.LittleEndian.PutUint32(z, uint32(len(body)))
	n, err := w.lz.CompressBlock(body, z[lz4RawLengthBytes:])
	if err != nil || n == 0 {
		return nil, false
	}
	z = z[:lz4RawLengthBytes+n]
	// Both bounds the frame check puts on an lz4 body: on the record
	// count, and on the raw length it declares.
	bound := min(n*lz4ExpansionMax+lz4SlackBytes, schema.BodyBytesMax)
	if int(records) > min(bound, schema.RecordsPerBatchMax) || len(body) > bound {
		return nil, false
	}
	return z, true
}

func growZero(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// parseCheckedHeader is the header of a frame the rewriter produced or
// the scanner checked.
func parseCheckedHeader(frame []byte) (schema.FrameHeader, error) {
	return schema.ParseFrameHeader(frame)
}
