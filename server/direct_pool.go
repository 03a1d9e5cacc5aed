package server

import "math/bits"

// Buffers for requests received straight into place (see startDirect) are
// pooled per shard by power-of-two size class: a new Go slice is zeroed
// when made, which for a stream of large produce requests cost more CPU
// than anything else on the receive path.
const (
	// directPooledBytesMax is the largest buffer kept for reuse; larger
	// requests get a buffer of their own that the GC reclaims.
	directPooledBytesMax = 16 << 20
	// directPoolBytesMax bounds the bytes a shard keeps in its pool (and
	// so does a share of its request budget: directPoolBudgetShare).
	directPoolBytesMax = 64 << 20
	// directClassMin is the smallest size class (directRecvMinBytes rounds
	// up to it).
	directClassMin = directRecvMinBytes
	// pooledGrowMaxBytes bounds how much larger a buffer grows at once for
	// bytes that arrive behind a whole request waiting in it at the
	// in-flight cap (appendPooled): doubling would make a 128 MiB request
	// hold 256 MiB for the few MiB that can arrive before its receive
	// stops.
	pooledGrowMaxBytes = directPooledBytesMax
)

// pooledBuf is a pooled buffer shared by the connection that received into
// it and the holds on requests inside it; it returns to the pool when the
// last lets go.
type pooledBuf struct {
	buf  []byte // the whole buffer, len == cap == its size class
	refs int32
	// reserved is what the buffer holds of the shard's request budget, and
	// waiting what it holds of the bytes waiting for budget (a request
	// served from bytes in hand), both returned when the last reference
	// goes.
	reserved, waiting int64
	passed            bool // reserved ahead of connections waiting (mayPass)
}

// directClass is the size class for n bytes: the next power of two, at
// least directClassMin.
func directClass(n int) int {
	if n <= directClassMin {
		return directClassMin
	}
	return 1 << bits.Len(uint(n-1))
}

// takeDirect returns a buffer of at least n bytes with one reference (the
// connection's), from the pool when one of its class is free.
func (sh *Shard) takeDirect(n int) *pooledBuf {
	class := directClass(n)
	if class > directPooledBytesMax {
		return &pooledBuf{buf: make([]byte, n), refs: 1}
	}
	free := sh.directFree[class]
	if k := len(free); k > 0 {
		pb := free[k-1]
		free[k-1] = nil
		sh.directFree[class] = free[:k-1]
		sh.directFreeBytes -= class
		sh.stats.DirectReuse.Add(1)
		pb.refs = 1
		return pb
	}
	return &pooledBuf{buf: make([]byte, class), refs: 1}
}

// unrefDirect drops one reference; the last returns the buffer to the pool
// (or to the GC, when the pool is full or the buffer is not pooled).
func (sh *Shard) unrefDirect(pb *pooledBuf) {
	pb.refs--
	if pb.refs < 0 {
		panic("server: invariant: pooled request buffer released more than held")
	}
	if pb.refs > 0 {
		return
	}
	sh.releaseBudget(pb)
	class := len(pb.buf)
	if class > directPooledBytesMax || class != directClass(class) || sh.directFreeBytes+class > sh.directPoolCapBytes {
		return
	}
	if sh.directFree == nil {
		sh.directFree = map[int][]*pooledBuf{}
	}
	sh.directFree[class] = append(sh.directFree[class], pb)
	sh.directFreeBytes += class
}
