package ringlog

import "fmt"

// The low 32 bits of a Log's user data: the kind of operation in the top
// bits, the slot it belongs to below.
const (
	tagKindShift = 28
	tagIndexMask = 1<<tagKindShift - 1

	kindWrite uint32 = 1 // slot: an append record
	kindSync  uint32 = 2 // slot: a sync operation
	kindGrow  uint32 = 3 // slot: which file of the growth (growData, ...)
)

func (l *Log) tag(kind, index uint32) uint64 {
	return uint64(l.prefix)<<32 | uint64(kind<<tagKindShift|index)
}

// splitTag checks that a CQE is this Log's and splits its low bits.
func (l *Log) splitTag(userData uint64) (kind, index uint32) {
	if uint32(userData>>32) != l.prefix {
		panic(fmt.Sprintf("ringlog: invariant: completion %#x routed to the log with prefix %#x", userData, l.prefix))
	}
	low := uint32(userData)
	return low >> tagKindShift, low & tagIndexMask
}

// Slot numbers must fit the index bits (a negative constant does not compile).
const (
	_ uint = tagIndexMask - appendsMax
	_ uint = tagIndexMask - syncOpsMax
)
