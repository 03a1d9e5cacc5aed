package metadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Primitive encodings shared by records and snapshots. Integers are varints
// (signed ones zig-zag), so small ids and epochs take one or two bytes;
// strings and lists are a uvarint count followed by their elements.

var errShort = errors.New("metadata: truncated input")

func appendInt32(dst []byte, v int32) []byte { return binary.AppendVarint(dst, int64(v)) }
func appendInt64(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendInt32s(dst []byte, vs []int32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	for _, v := range vs {
		dst = appendInt32(dst, v)
	}
	return dst
}

// uvarintLen is the length of v's shortest encoding. Decoders refuse longer
// ones, so that every record and snapshot has exactly one encoding.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// reader decodes primitives from a byte slice. The first failure sticks in
// err and every later read returns a zero value, so a decoder can read a
// whole record and check err once; no read ever panics.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) u8() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail(errShort)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) {
		r.fail(fmt.Errorf("metadata: bad or overlong uvarint"))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int64() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n != uvarintLen(uint64(v)<<1^uint64(v>>63)) {
		r.fail(fmt.Errorf("metadata: bad or overlong varint"))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int32() int32 {
	v := r.int64()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail(fmt.Errorf("metadata: %d overflows int32", v))
		return 0
	}
	return int32(v)
}

// count reads a list length and checks it against max and against the
// bytes left, given that every element takes at least minElemBytes.
func (r *reader) count(max int, minElemBytes int, what string) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(max) {
		r.fail(fmt.Errorf("metadata: %d %s exceeds the limit of %d", n, what, max))
		return 0
	}
	if n*uint64(minElemBytes) > uint64(len(r.b)) {
		r.fail(errShort)
		return 0
	}
	return int(n)
}

func (r *reader) string(max int, what string) string {
	n := r.count(max, 1, what+" bytes")
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) fixed16() (v [16]byte) {
	if r.err != nil {
		return v
	}
	if len(r.b) < len(v) {
		r.fail(errShort)
		return v
	}
	copy(v[:], r.b)
	r.b = r.b[len(v):]
	return v
}

func (r *reader) int32s(max int, what string) []int32 {
	n := r.count(max, 1, what)
	if r.err != nil || n == 0 {
		// An empty list decodes as nil, as the state holds it.
		return nil
	}
	vs := make([]int32, n)
	for i := range vs {
		vs[i] = r.int32()
	}
	if r.err != nil {
		return nil
	}
	return vs
}

// done fails when bytes remain: every record and snapshot has one encoding.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Errorf("metadata: %d trailing bytes", len(r.b)))
	}
	return r.err
}
