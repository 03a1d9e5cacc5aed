package schema

import (
	"errors"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
	"github.com/pierrec/lz4/v4"

	"github.com/strata-db/strata/schema/fb"
)

// Batch errors.
var (
	ErrBatchEmpty    = errors.New("schema: batch has no records")
	ErrBatchFull     = fmt.Errorf("schema: batch already holds %d records", RecordsPerBatchMax)
	ErrBatchTooLarge = errors.New("schema: record does not fit the batch size limit")
	ErrBatchOptions  = errors.New("schema: invalid batch options")
)

// RecordHeader is one application header of a record.
type RecordHeader struct {
	Key   []byte // written as a FlatBuffers string; required
	Value []byte // nil: absent
}

// Record is one record to append. Nil Key or Value is null, which differs
// from empty; a null Value is a tombstone.
type Record struct {
	Key         []byte
	Value       []byte
	Headers     []RecordHeader
	TimestampMs int64
}

// BatchOptions are the per-batch settings of a BatchBuilder.
type BatchOptions struct {
	Compression   uint16 // CompressionNone or CompressionLZ4
	ProducerID    int64  // -1 when the producer is not idempotent
	ProducerEpoch int16
	BaseSequence  int32
	// BodyBytesMax bounds the uncompressed body; 0 means BodyBytesMax.
	BodyBytesMax int
	// KeepCodec stores the body in Compression's codec even when that
	// does not make it smaller; without it such a body is stored
	// uncompressed. A topic whose compression.type names a codec refuses
	// batches in any other, and the broker never recompresses, so a
	// producer set to a codec keeps it, as Kafka's producers do.
	KeepCodec bool
}

// Upper bounds of the encoding overhead, used to refuse a record before it
// is written (a FlatBuffers builder cannot take one back). They cover the
// worst case: a new vtable, padding to 8, the NUL of strings, and the
// record's slot in the records vector.
const (
	recordOverheadBytes = 96
	headerOverheadBytes = 48
	bodyOverheadBytes   = 64
	builderInitialBytes = 16 << 10
)

var bodyIdent = []byte(BodyIdentifier)

// BatchBuilder encodes records into one frame. Build a batch with Append,
// seal it with AppendTo, and reuse the builder for the next batch: in steady
// state it allocates nothing per record or per batch. It is not safe for
// concurrent use.
type BatchBuilder struct {
	opts    BatchOptions
	fbb     *flatbuffers.Builder
	records []flatbuffers.UOffsetT
	headers []flatbuffers.UOffsetT
	firstTs int64
	maxTs   int64
	// estimate is an upper bound of the body size once finished.
	estimate int
	// keyless counts the records appended without a key (AttrKeyed).
	keyless int
	lz      lz4.Compressor
	zbuf    []byte
}

// NewBatchBuilder returns a builder for batches with opts.
func NewBatchBuilder(opts BatchOptions) (*BatchBuilder, error) {
	b := &BatchBuilder{fbb: flatbuffers.NewBuilder(builderInitialBytes)}
	if err := b.Reset(opts); err != nil {
		return nil, err
	}
	return b, nil
}

// Reset drops any records appended so far and sets the options of the next
// batch.
func (b *BatchBuilder) Reset(opts BatchOptions) error {
	if opts.Compression != CompressionNone && opts.Compression != CompressionLZ4 {
		return fmt.Errorf("%w: compression %d", ErrBatchOptions, opts.Compression)
	}
	if opts.BodyBytesMax <= 0 || opts.BodyBytesMax > BodyBytesMax {
		opts.BodyBytesMax = BodyBytesMax
	}
	b.opts = opts
	b.clear()
	return nil
}

func (b *BatchBuilder) clear() {
	b.fbb.Reset()
	b.records = b.records[:0]
	b.estimate = bodyOverheadBytes
	b.keyless = 0
}

// Len is the number of records appended to the current batch.
func (b *BatchBuilder) Len() int { return len(b.records) }

// EstimatedBytes is an upper bound of the current batch's body before
// compression.
func (b *BatchBuilder) EstimatedBytes() int { return b.estimate }

// recordBytes is an upper bound of what r adds to the body.
func recordBytes(r *Record) int {
	n := recordOverheadBytes + len(r.Key) + len(r.Value)
	for i := range r.Headers {
		n += headerOverheadBytes + len(r.Headers[i].Key) + len(r.Headers[i].Value)
	}
	return n
}

// Append adds r to the batch. It fails with ErrBatchTooLarge, leaving the
// batch as it was, when r would take the body past its size limit, and with
// ErrBatchFull at RecordsPerBatchMax records.
func (b *BatchBuilder) Append(r *Record) error {
	if len(b.records) >= RecordsPerBatchMax {
		return ErrBatchFull
	}
	if len(r.Headers) > RecordsPerBatchMax {
		return fmt.Errorf("%w: %d headers", ErrBatchTooLarge, len(r.Headers))
	}
	size := recordBytes(r)
	if size > b.opts.BodyBytesMax-b.estimate {
		return fmt.Errorf("%w: %d bytes more than %d", ErrBatchTooLarge, size, b.opts.BodyBytesMax-b.estimate)
	}
	if len(b.records) == 0 {
		b.firstTs, b.maxTs = r.TimestampMs, r.TimestampMs
	} else if r.TimestampMs > b.maxTs {
		b.maxTs = r.TimestampMs
	}
	fbb := b.fbb

	rec := EncodeRecord(fbb, r.Key, r.Value, len(r.Headers), func(i int) ([]byte, []byte) {
		return r.Headers[i].Key, r.Headers[i].Value
	}, r.TimestampMs-b.firstTs, uint32(len(b.records)), &b.headers)
	b.records = append(b.records, rec)
	b.estimate += size
	if r.Key == nil {
		b.keyless++
	}
	return nil
}

// EncodeRecord builds one Record table in fbb: key and value (nil: absent),
// n headers (header(i) gives the i-th key and value, a nil value absent),
// and the deltas from the frame's first timestamp and base offset. scratch
// holds the headers' offsets while they are built. The batch builder and
// the log cleaner (which re-encodes the records a compaction keeps) both
// build records here, so a record is laid out one way.
func EncodeRecord(fbb *flatbuffers.Builder, key, value []byte, n int, header func(i int) (k, v []byte),
	tsDelta int64, offsetDelta uint32, scratch *[]flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	var headers flatbuffers.UOffsetT
	if n > 0 {
		hdrs := (*scratch)[:0]
		for i := range n {
			hk, hv := header(i)
			k := fbb.CreateByteString(hk) // a FlatBuffers string
			var v flatbuffers.UOffsetT
			if hv != nil {
				v = fbb.CreateByteVector(hv)
			}
			fb.HeaderStart(fbb)
			fb.HeaderAddKey(fbb, k)
			if hv != nil {
				fb.HeaderAddValue(fbb, v)
			}
			hdrs = append(hdrs, fb.HeaderEnd(fbb))
		}
		fb.RecordStartHeadersVector(fbb, len(hdrs))
		for i := len(hdrs) - 1; i >= 0; i-- {
			fbb.PrependUOffsetT(hdrs[i])
		}
		headers = fbb.EndVector(len(hdrs))
		*scratch = hdrs
	}
	var k, v flatbuffers.UOffsetT
	if key != nil {
		k = fbb.CreateByteVector(key)
	}
	if value != nil {
		v = fbb.CreateByteVector(value)
	}
	fb.RecordStart(fbb)
	fb.RecordAddTimestampDelta(fbb, tsDelta)
	fb.RecordAddOffsetDelta(fbb, offsetDelta)
	if key != nil {
		fb.RecordAddKey(fbb, k)
	}
	if value != nil {
		fb.RecordAddValue(fbb, v)
	}
	if headers != 0 {
		fb.RecordAddHeaders(fbb, headers)
	}
	return fb.RecordEnd(fbb)
}

// AppendTo seals the batch into a frame appended to dst (header with CRC,
// body compressed as the options say) and clears the builder for the next
// batch with the same options. The frame's base offset and leader epoch are
// zero until the broker patches them. An LZ4 batch whose body does not
// shrink is stored uncompressed, with the compression bits saying so.
func (b *BatchBuilder) AppendTo(dst []byte) ([]byte, error) {
	n := len(b.records)
	if n == 0 {
		return dst, ErrBatchEmpty
	}
	fbb := b.fbb
	fb.RecordBatchBodyStartRecordsVector(fbb, n)
	for i := n - 1; i >= 0; i-- {
		fbb.PrependUOffsetT(b.records[i])
	}
	records := fbb.EndVector(n)
	fb.RecordBatchBodyStart(fbb)
	fb.RecordBatchBodyAddRecords(fbb, records)
	fbb.FinishWithFileIdentifier(fb.RecordBatchBodyEnd(fbb), bodyIdent)
	body := fbb.FinishedBytes()

	h := FrameHeader{
		RecordCount:      uint32(n),
		FirstTimestampMs: b.firstTs,
		MaxTimestampMs:   b.maxTs,
		ProducerID:       b.opts.ProducerID,
		ProducerEpoch:    b.opts.ProducerEpoch,
		BaseSequence:     b.opts.BaseSequence,
	}
	if b.keyless == 0 {
		h.Attributes |= AttrKeyed
	}
	if b.opts.Compression == CompressionLZ4 {
		if z, ok := compressBody(&b.lz, b.zbuf[:0], body, b.opts.KeepCodec); ok {
			h.Attributes |= CompressionLZ4
			body = z
			b.zbuf = z
		} else {
			b.zbuf = z
		}
	}
	start := len(dst)
	dst = AppendFrameHeader(dst, &h, len(body))
	dst = append(dst, body...)
	SealFrame(dst[start:])
	b.clear()
	return dst, nil
}
