package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The recovery-point checkpoint is one small file, replaced atomically:
//
//	 0      4       8              16                24       28
//	+------+-------+--------------+-----------------+--------+
//	|magic |version| logStartOff  | recoveryPoint   | crc32c |
//	+------+-------+--------------+-----------------+--------+
//
// recoveryPoint is an offset below which every byte of the log was synced
// when the file was written; logStartOff is the first offset readers may see.
// The CRC32C covers bytes [0, 24).
const (
	checkpointSize    = 28
	checkpointMagic   = 0x4b435453 // "STCK"
	checkpointVersion = 1
)

var errCheckpoint = errors.New("segment: bad recovery-point checkpoint")

type checkpoint struct {
	logStart      int64
	recoveryPoint int64
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// AppendTo appends the encoded checkpoint to dst.
func (c checkpoint) AppendTo(dst []byte) []byte {
	var b [checkpointSize]byte
	binary.LittleEndian.PutUint32(b[0:], checkpointMagic)
	binary.LittleEndian.PutUint32(b[4:], checkpointVersion)
	binary.LittleEndian.PutUint64(b[8:], uint64(c.logStart))
	binary.LittleEndian.PutUint64(b[16:], uint64(c.recoveryPoint))
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], crcTable))
	return append(dst, b[:]...)
}

func decodeCheckpoint(b []byte) (checkpoint, error) {
	var c checkpoint
	if len(b) != checkpointSize {
		return c, fmt.Errorf("%w: %d bytes, want %d", errCheckpoint, len(b), checkpointSize)
	}
	if binary.LittleEndian.Uint32(b[0:]) != checkpointMagic {
		return c, fmt.Errorf("%w: magic", errCheckpoint)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != checkpointVersion {
		return c, fmt.Errorf("%w: version %d", errCheckpoint, v)
	}
	if crc32.Checksum(b[:24], crcTable) != binary.LittleEndian.Uint32(b[24:]) {
		return c, fmt.Errorf("%w: crc", errCheckpoint)
	}
	c.logStart = int64(binary.LittleEndian.Uint64(b[8:]))
	c.recoveryPoint = int64(binary.LittleEndian.Uint64(b[16:]))
	if c.logStart < 0 || c.recoveryPoint < 0 {
		return c, fmt.Errorf("%w: negative offsets %d, %d", errCheckpoint, c.logStart, c.recoveryPoint)
	}
	return c, nil
}
