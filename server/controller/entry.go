package controller

import (
	"encoding/binary"
	"fmt"

	"github.com/strata-db/strata/server/metadata"
)

// A proposal's Raft entry carries who proposed it, so that the leader can
// match the committed entry to the caller waiting for it:
//
//	entry = version:u8 incarnation:u64 (little-endian) seq:uvarint batch
//
// incarnation is drawn at random each time a node starts, so an entry from
// before a restart never answers a caller of the new process.
const (
	entryVersion   = 0
	entryHeaderMin = 1 + 8 + 1
)

func appendEntry(dst []byte, incarnation, seq uint64, records []metadata.Record) []byte {
	dst = append(dst, entryVersion)
	dst = binary.LittleEndian.AppendUint64(dst, incarnation)
	dst = binary.AppendUvarint(dst, seq)
	return metadata.AppendBatch(dst, records)
}

func decodeEntry(b []byte) (incarnation, seq uint64, records []metadata.Record, err error) {
	if len(b) < entryHeaderMin {
		return 0, 0, nil, fmt.Errorf("controller: entry of %d bytes is too short", len(b))
	}
	if b[0] != entryVersion {
		return 0, 0, nil, fmt.Errorf("controller: entry version %d, want %d", b[0], entryVersion)
	}
	incarnation = binary.LittleEndian.Uint64(b[1:])
	seq, n := binary.Uvarint(b[9:])
	if n <= 0 {
		return 0, 0, nil, fmt.Errorf("controller: bad entry sequence number")
	}
	records, err = metadata.DecodeBatch(b[9+n:])
	return incarnation, seq, records, err
}
