package schema

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A frame is how one record batch travels and rests: the bytes a producer
// sends are the bytes written to the segment file are the bytes a consumer
// receives. It is a fixed 64-byte header followed by a body (a FlatBuffers
// RecordBatchBody, optionally lz4-compressed as a whole).
//
//	 0       4     6   7   8        12            16                    24
//	+-------+-----+---+---+--------+-------------+---------------------+
//	|length |magic|ver|rsv| crc32c | leaderEpoch |     baseOffset      |
//	+-------+-----+---+---+--------+-------------+---------------------+
//	 24    26    28          32                  40                   48
//	+-----+-----+-----------+-------------------+--------------------+
//	|attrs| rsv |recordCount|  firstTimestampMs |   maxTimestampMs   |
//	+-----+-----+-----------+-------------------+--------------------+
//	 48                  56      58    60            64
//	+-------------------+-------+-----+-------------+------------...
//	|    producerId     |pEpoch | rsv |baseSequence |  body
//	+-------------------+-------+-----+-------------+------------...
//
// All integers are little-endian, as FlatBuffers are. length counts the whole
// frame, header included. The CRC32C (Castagnoli) covers bytes [24, length):
// everything the producer sets. leaderEpoch and baseOffset are assigned by the
// broker and patched in place on append, so they sit outside the CRC and a
// patch never forces a recomputation. Records in a frame take the offsets
// baseOffset .. baseOffset+recordCount-1.
const (
	FrameHeaderSize = 64
	FrameMagic      = 0x5354 // "ST" as little-endian bytes 'T','S'
	FrameVersion    = 1

	// MaxFrameBytes is the hard cap on one frame. A per-topic max message
	// size sits below it; nothing larger is ever allocated or accepted.
	MaxFrameBytes = 64 << 20

	offLength       = 0
	offMagic        = 4
	offVersion      = 6
	offReserved     = 7
	offCRC          = 8
	offLeaderEpoch  = 12
	offBaseOffset   = 16
	offAttributes   = 24
	offRecordCount  = 28
	offFirstTSMs    = 32
	offMaxTSMs      = 40
	offProducerID   = 48
	offProducerEpch = 56
	offBaseSequence = 60

	// CRCStart is where the checksummed region begins.
	CRCStart = offAttributes
)

// Attribute bits.
const (
	AttrCompressionMask = 0x0007
	AttrTransactional   = 0x0010
	AttrControl         = 0x0020
	// AttrKeyed says every record of the frame has a key. The batch
	// builder sets it; a compacted topic refuses a compressed frame
	// without it, since checking the keys of a compressed body would mean
	// decompressing it on the produce path, which the broker never does.
	// A frame that claims it falsely only keeps its keyless records past
	// compaction (the cleaner keeps every keyless record).
	AttrKeyed = 0x0040
)

// Compression codecs (the low bits of the attributes).
const (
	CompressionNone = 0
	CompressionLZ4  = 1
)

// Frame errors. Each is a distinct value so callers can map them to wire
// error codes.
var (
	ErrFrameShort     = errors.New("schema: frame shorter than its header")
	ErrFrameLength    = errors.New("schema: frame length field out of bounds")
	ErrFrameMagic     = errors.New("schema: bad frame magic")
	ErrFrameVersion   = errors.New("schema: unsupported frame version")
	ErrFrameCRC       = errors.New("schema: frame CRC mismatch")
	ErrFrameRecords   = errors.New("schema: frame record count out of bounds")
	ErrFrameTruncated = errors.New("schema: frame truncated")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FrameHeader is the decoded fixed header of a frame.
type FrameHeader struct {
	Length           uint32
	Version          uint8
	CRC              uint32
	LeaderEpoch      int32
	BaseOffset       int64
	Attributes       uint16
	RecordCount      uint32
	FirstTimestampMs int64
	MaxTimestampMs   int64
	ProducerID       int64
	ProducerEpoch    int16
	BaseSequence     int32
}

// LastOffset is the offset of the frame's last record.
func (h *FrameHeader) LastOffset() int64 { return h.BaseOffset + int64(h.RecordCount) - 1 }

// NextOffset is the offset that follows this frame.
func (h *FrameHeader) NextOffset() int64 { return h.BaseOffset + int64(h.RecordCount) }

// Compression is the codec of the body.
func (h *FrameHeader) Compression() uint16 { return h.Attributes & AttrCompressionMask }

// PeekFrameLength reads the length field of a frame whose first bytes are in
// b, and checks it lies in [FrameHeaderSize, maxBytes]. It lets a reader bound
// a frame before reading or allocating its body.
func PeekFrameLength(b []byte, maxBytes int) (int, error) {
	if len(b) < 4 {
		return 0, ErrFrameShort
	}
	n := int(binary.LittleEndian.Uint32(b[offLength:]))
	if maxBytes > MaxFrameBytes || maxBytes <= 0 {
		maxBytes = MaxFrameBytes
	}
	if n < FrameHeaderSize || n > maxBytes {
		return 0, fmt.Errorf("%w: %d not in [%d, %d]", ErrFrameLength, n, FrameHeaderSize, maxBytes)
	}
	return n, nil
}

// ParseFrameHeader decodes the header at the start of b. It checks the length
// bound, magic and version, but not the CRC (see CheckFrame).
func ParseFrameHeader(b []byte) (FrameHeader, error) {
	var h FrameHeader
	if len(b) < FrameHeaderSize {
		return h, ErrFrameShort
	}
	n, err := PeekFrameLength(b, MaxFrameBytes)
	if err != nil {
		return h, err
	}
	if binary.LittleEndian.Uint16(b[offMagic:]) != FrameMagic {
		return h, ErrFrameMagic
	}
	if b[offVersion] != FrameVersion {
		return h, fmt.Errorf("%w: %d", ErrFrameVersion, b[offVersion])
	}
	// Byte 7 sits outside the CRC, so the only way to notice it flipped is
	// to insist on its one valid value.
	if b[offReserved] != 0 {
		return h, fmt.Errorf("%w: reserved byte %#x", ErrFrameVersion, b[offReserved])
	}
	h.Length = uint32(n)
	h.Version = b[offVersion]
	h.CRC = binary.LittleEndian.Uint32(b[offCRC:])
	h.LeaderEpoch = int32(binary.LittleEndian.Uint32(b[offLeaderEpoch:]))
	h.BaseOffset = int64(binary.LittleEndian.Uint64(b[offBaseOffset:]))
	h.Attributes = binary.LittleEndian.Uint16(b[offAttributes:])
	h.RecordCount = binary.LittleEndian.Uint32(b[offRecordCount:])
	h.FirstTimestampMs = int64(binary.LittleEndian.Uint64(b[offFirstTSMs:]))
	h.MaxTimestampMs = int64(binary.LittleEndian.Uint64(b[offMaxTSMs:]))
	h.ProducerID = int64(binary.LittleEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.LittleEndian.Uint16(b[offProducerEpch:]))
	h.BaseSequence = int32(binary.LittleEndian.Uint32(b[offBaseSequence:]))
	// This bounds recordCount before anyone sizes a slice by it.
	if h.RecordCount == 0 || h.RecordCount > recordCountMax(n-FrameHeaderSize, h.Compression()) {
		return h, fmt.Errorf("%w: %d records in %d body bytes", ErrFrameRecords, h.RecordCount, n-FrameHeaderSize)
	}
	return h, nil
}

// CheckFrame is the broker-side check of one whole frame: length, magic,
// version and CRC. It never decodes records. b must hold exactly one frame or
// begin with one; the returned header describes it.
func CheckFrame(b []byte) (FrameHeader, error) {
	h, err := checkFrameLength(b)
	if err != nil {
		return h, err
	}
	if crc32.Checksum(b[CRCStart:h.Length], castagnoli) != h.CRC {
		return h, ErrFrameCRC
	}
	return h, nil
}

// checkFrameLength is CheckFrame without the CRC: the header checks of
// ParseFrameHeader, and that b holds the whole frame.
func checkFrameLength(b []byte) (FrameHeader, error) {
	h, err := ParseFrameHeader(b)
	if err != nil {
		return h, err
	}
	if int(h.Length) > len(b) {
		return h, fmt.Errorf("%w: need %d bytes, have %d", ErrFrameTruncated, h.Length, len(b))
	}
	return h, nil
}

// AppendFrameHeader appends a header for a frame with the given fields and
// bodyLen body bytes; the CRC field is zero until SealFrame fills it.
func AppendFrameHeader(dst []byte, h *FrameHeader, bodyLen int) []byte {
	var hb [FrameHeaderSize]byte
	binary.LittleEndian.PutUint32(hb[offLength:], uint32(FrameHeaderSize+bodyLen))
	binary.LittleEndian.PutUint16(hb[offMagic:], FrameMagic)
	hb[offVersion] = FrameVersion
	binary.LittleEndian.PutUint32(hb[offLeaderEpoch:], uint32(h.LeaderEpoch))
	binary.LittleEndian.PutUint64(hb[offBaseOffset:], uint64(h.BaseOffset))
	binary.LittleEndian.PutUint16(hb[offAttributes:], h.Attributes)
	binary.LittleEndian.PutUint32(hb[offRecordCount:], h.RecordCount)
	binary.LittleEndian.PutUint64(hb[offFirstTSMs:], uint64(h.FirstTimestampMs))
	binary.LittleEndian.PutUint64(hb[offMaxTSMs:], uint64(h.MaxTimestampMs))
	binary.LittleEndian.PutUint64(hb[offProducerID:], uint64(h.ProducerID))
	binary.LittleEndian.PutUint16(hb[offProducerEpch:], uint16(h.ProducerEpoch))
	binary.LittleEndian.PutUint32(hb[offBaseSequence:], uint32(h.BaseSequence))
	return append(dst, hb[:]...)
}

// SealFrame computes and stores the CRC of the frame in b (header and body
// complete, length field correct).
func SealFrame(b []byte) {
	n := binary.LittleEndian.Uint32(b[offLength:])
	binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[CRCStart:n], castagnoli))
}

// PatchBaseOffset sets the broker-assigned base offset in place.
func PatchBaseOffset(b []byte, baseOffset int64) {
	binary.LittleEndian.PutUint64(b[offBaseOffset:], uint64(baseOffset))
}

// PatchLeaderEpoch sets the broker-assigned leader epoch in place.
func PatchLeaderEpoch(b []byte, epoch int32) {
	binary.LittleEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// recordCountMax bounds the records a body of bodyBytes can hold. An
// uncompressed record takes at least one byte of body. A compressed one may
// take less, since an lz4 byte can expand to lz4ExpansionMax bytes, so a
// compressed body is bounded by that expansion and by RecordsPerBatchMax.
func recordCountMax(bodyBytes int, compression uint16) uint32 {
	if compression == CompressionNone {
		return uint32(bodyBytes)
	}
	return uint32(min(lz4RawLenMax(bodyBytes), RecordsPerBatchMax))
}
