package segment

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// offsetMap is the cleaner's key map: for each key of the dirty section,
// the offset of its latest record. It holds no keys, only a 16-byte hash
// of each (the first half of its SHA-256), and the offset: 24 bytes an
// entry, in one table allocated at the byte budget it is given, as
// Kafka's dedupe buffer. Two keys whose hashes collide (one chance in
// 2^64 for a billion keys) count as one key; the cleaner would then drop
// the older of the two records.
//
// Open addressing with linear probing; the table is full, for the
// cleaner, at offsetMapLoadPercent of its slots, so probes stay short.
type offsetMap struct {
	slots   []byte // slotCount * offsetMapEntryBytes
	n       int    // slots in use
	limit   int    // n at which the map counts as full
	scratch [sha256.Size]byte
}

const (
	offsetMapHashBytes   = 16
	offsetMapEntryBytes  = offsetMapHashBytes + 8
	offsetMapLoadPercent = 90
	// offsetMapSlotsMin keeps a tiny budget usable (tests force rounds
	// with a handful of keys).
	offsetMapSlotsMin = 4
	// offsetMapBytesMax bounds the table: an int of slots, 2^28 entries.
	offsetMapBytesMax = offsetMapEntryBytes << 28
)

// emptySlot marks an unused slot: an offset of -1 (no record has one).
const emptySlotOffset = -1

func newOffsetMap(budgetBytes int64) (*offsetMap, error) {
	if budgetBytes < offsetMapSlotsMin*offsetMapEntryBytes || budgetBytes > offsetMapBytesMax {
		return nil, fmt.Errorf("segment: offset map budget %d bytes not in [%d, %d]",
			budgetBytes, offsetMapSlotsMin*offsetMapEntryBytes, int64(offsetMapBytesMax))
	}
	count := int(budgetBytes / offsetMapEntryBytes)
	m := &offsetMap{slots: make([]byte, count*offsetMapEntryBytes)}
	m.limit = max(1, count*offsetMapLoadPercent/100)
	m.clear()
	return m, nil
}

func (m *offsetMap) clear() {
	for i := 0; i < len(m.slots); i += offsetMapEntryBytes {
		binary.LittleEndian.PutUint64(m.slots[i+offsetMapHashBytes:], uint64(emptySlotOffset&0xffffffffffffffff))
	}
	m.n = 0
}

// full reports whether the map takes no more new keys.
func (m *offsetMap) full() bool { return m.n >= m.limit }

// Len is the number of keys in the map.
func (m *offsetMap) Len() int { return m.n }

func (m *offsetMap) hash(key []byte) []byte {
	m.scratch = sha256.Sum256(key)
	return m.scratch[:offsetMapHashBytes]
}

// find returns the slot of key's hash h: the one holding it, or the empty
// one where it would go.
func (m *offsetMap) find(h []byte) (slot int, found bool) {
	count := len(m.slots) / offsetMapEntryBytes
	i := int(binary.LittleEndian.Uint64(h) % uint64(count))
	for {
		e := m.slots[i*offsetMapEntryBytes:]
		if int64(binary.LittleEndian.Uint64(e[offsetMapHashBytes:])) == emptySlotOffset {
			return i, false
		}
		if string(e[:offsetMapHashBytes]) == string(h) {
			return i, true
		}
		if i++; i == count {
			i = 0
		}
	}
}

// put records offset as key's latest; it reports false, changing nothing,
// for a new key when the map is full.
func (m *offsetMap) put(key []byte, offset int64) bool {
	h := m.hash(key)
	i, found := m.find(h)
	if !found {
		if m.full() {
			return false
		}
		m.n++
	}
	e := m.slots[i*offsetMapEntryBytes:]
	copy(e, h)
	binary.LittleEndian.PutUint64(e[offsetMapHashBytes:], uint64(offset))
	return true
}

// get returns key's latest offset, or -1 when the map does not hold it.
func (m *offsetMap) get(key []byte) int64 {
	i, found := m.find(m.hash(key))
	if !found {
		return -1
	}
	return int64(binary.LittleEndian.Uint64(m.slots[i*offsetMapEntryBytes+offsetMapHashBytes:]))
}
