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
// recompressed with lz4. Its bound is on the compressed length (a record
// count of at most 255 x its bytes), so a compressed body too short for
// its record count is padded before compression with an unreferenced
// vector of pseudo-random bytes, which lz4 cannot shrink: recordCount/255
// of them (and a margin) make it long enough, at a 255th of the cost of
// zero padding an uncompressed body. Only if that still falls short
// (lz4 found matches in the padding, which the margin makes all but
// impossible) is the frame stored uncompressed, zero-padded, with its
// codec bits cleared, the one header field that then changes.

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
	body, err := w.encodeBody(frame, &h, 0, false)
	if err != nil {
		return nil, err
	}
	compressed := false
	if h.Compression() == schema.CompressionLZ4 {
		z, ok := w.compress(body, h.RecordCount)
		if !ok {
			pad := int(h.RecordCount)/lz4ExpansionMax + lz4PadMarginBytes
			if body, err = w.encodeBody(frame, &h, pad, true); err != nil {
				return nil, err
			}
			z, ok = w.compress(body, h.RecordCount)
		}
		if ok {
			body, compressed = z, true
		} else {
			h.Attributes &^= schema.AttrCompressionMask
			if body, err = w.encodeBody(frame, &h, 0, false); err != nil {
				return nil, err
			}
		}
	}
	if !compressed && len(body) < int(h.RecordCount) {
		// The padding vector's length word comes on top of padBytes.
		if body, err = w.encodeBody(frame, &h, int(h.RecordCount)-len(body), false); err != nil {
			return nil, err
		}
	}
	w.out = schema.AppendFrameHeader(w.out[:0], &h, len(body))
	w.out = append(w.out, body...)
	schema.SealFrame(w.out)
	return w.out, nil
}

// encodeBody builds the body of the records keepBits marks, with padBytes
// of unreferenced zeros, or of pseudo-random bytes with noise (the
// padding of a body to compress).
func (w *frameRewriter) encodeBody(frame []byte, h *schema.FrameHeader, padBytes int, noise bool) ([]byte, error) {
	if err := w.rd.ResetCRCChecked(frame); err != nil {
		return nil, err
	}
	fbb := w.fbb
	fbb.Reset()
	if padBytes > 0 {
		// Built first, so it sits at the end of the finished buffer.
		w.pad = growLen(w.pad, padBytes)
		if noise {
			fillNoise(w.pad)
		} else {
			clear(w.pad)
		}
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
	// lz4PadMarginBytes is added to the noise padding of a sparse lz4
	// body, beyond recordCount/255: room for the few bytes lz4 might
	// still save on it.
	lz4PadMarginBytes = 64
)

// fillNoise fills b with pseudo-random bytes (xorshift64*, fixed seed:
// a cleaned frame's bytes depend only on what it keeps).
func fillNoise(b []byte) {
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i < len(b); i += 8 {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		v := x * 0x2545F4914F6CDD1D
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

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

func growLen(b []byte, n int) []byte {
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
