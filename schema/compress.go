package schema

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/pierrec/lz4/v4"
)

// A compressed body (CompressionLZ4) is the uncompressed body's length and
// one lz4 block:
//
//	+-----------------+---------------------------------+
//	| rawLen (u32 LE) | lz4 block of the rawLen bytes   |
//	+-----------------+---------------------------------+
//
// The block format carries no checksum of its own: the frame's CRC32C
// already covers these bytes. rawLen lets the reader allocate exactly once,
// and is checked against two bounds first: BodyBytesMax, and what the
// compressed bytes could possibly expand to (lz4ExpansionMax per byte), so a
// small frame can never make the reader allocate a large buffer.
const (
	lz4LengthBytes = 4
	// lz4ExpansionMax bounds how many output bytes one input byte of an lz4
	// block can produce: a match length byte of 255 adds 255 bytes.
	lz4ExpansionMax = 255
	// lz4ExpansionSlackBytes covers the fixed part of the shortest blocks
	// (a token and the minimum match of 4 bytes).
	lz4ExpansionSlackBytes = 16
)

// lz4RawLenMax is the largest rawLen that compressed bytes of length n may
// declare.
func lz4RawLenMax(n int) int {
	m := n*lz4ExpansionMax + lz4ExpansionSlackBytes
	if m > BodyBytesMax {
		m = BodyBytesMax
	}
	return m
}

// compressBody appends the lz4 form of body to dst. ok is false when the
// body does not shrink (unless keep is set) or lz4 fails, and the caller
// stores it uncompressed.
func compressBody(c *lz4.Compressor, dst, body []byte, keep bool) (out []byte, ok bool) {
	start := len(dst)
	need := lz4LengthBytes + lz4.CompressBlockBound(len(body))
	dst = slices.Grow(dst, need)
	buf := dst[start : start+need]
	binary.LittleEndian.PutUint32(buf, uint32(len(body)))
	n, err := c.CompressBlock(body, buf[lz4LengthBytes:])
	if err != nil || n == 0 || (!keep && lz4LengthBytes+n >= len(body)) {
		return dst[:start], false
	}
	return dst[:start+lz4LengthBytes+n], true
}

// decompressBody expands an lz4 body into scratch (grown as needed, and
// returned for reuse) and returns the raw body.
func decompressBody(scratch, z []byte) (raw, newScratch []byte, err error) {
	if len(z) <= lz4LengthBytes {
		return nil, scratch, fmt.Errorf("%w: lz4 body of %d bytes", ErrBodyCompression, len(z))
	}
	rawLen := int(binary.LittleEndian.Uint32(z))
	if rawLen == 0 || rawLen > lz4RawLenMax(len(z)-lz4LengthBytes) {
		return nil, scratch, fmt.Errorf("%w: declared %d bytes from %d", ErrBodyCompression, rawLen, len(z))
	}
	scratch = slices.Grow(scratch[:0], rawLen)[:rawLen]
	n, err := lz4.UncompressBlock(z[lz4LengthBytes:], scratch)
	if err != nil {
		return nil, scratch, fmt.Errorf("%w: %v", ErrBodyCompression, err)
	}
	if n != rawLen {
		return nil, scratch, fmt.Errorf("%w: declared %d bytes, got %d", ErrBodyCompression, rawLen, n)
	}
	return scratch[:n], scratch, nil
}
