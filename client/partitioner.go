package client

import "math/rand/v2"

// The murmur2 constants of the Kafka Java client (Utils.murmur2), so that a
// key lands on the partition a Java producer would pick for it.
const (
	murmur2Seed = 0x9747b28c
	murmur2M    = 0x5bd1e995
	murmur2R    = 24
)

// Murmur2 is the 32-bit MurmurHash2 of b, computed exactly as the Kafka
// Java client's Utils.murmur2: seed 0x9747b28c, little-endian 4-byte
// blocks, the tail mixed in from its last byte down.
func Murmur2(b []byte) int32 {
	n := len(b)
	h := uint32(murmur2Seed) ^ uint32(n)
	blocks := n / 4
	for i := 0; i < blocks; i++ {
		j := i * 4
		k := uint32(b[j]) | uint32(b[j+1])<<8 | uint32(b[j+2])<<16 | uint32(b[j+3])<<24
		k *= murmur2M
		k ^= k >> murmur2R
		k *= murmur2M
		h *= murmur2M
		h ^= k
	}
	tail := b[blocks*4:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= murmur2M
	}
	h ^= h >> 13
	h *= murmur2M
	h ^= h >> 15
	return int32(h)
}

// KeyPartition is the partition of a keyed record among n partitions:
// murmur2 of the key made positive by clearing the sign bit (not abs, as
// the Java client's toPositive does), modulo n.
func KeyPartition(key []byte, n int32) int32 {
	return (Murmur2(key) & 0x7fffffff) % n
}

// stickyPartition picks the partition unkeyed records of a topic go to
// until the batch they fill is sealed: one batch at a time fills up, so
// unkeyed records make few large batches instead of many small ones. The
// next pick avoids the previous partition when there is another.
func stickyPartition(prev, n int32) int32 {
	if n <= 1 {
		return 0
	}
	p := rand.Int32N(n - 1)
	if prev >= 0 && p >= prev {
		p++
	}
	return p
}
