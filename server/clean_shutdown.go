package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// The clean-shutdown marker. A broker that stopped cleanly (its logs
// flushed and closed without error) leaves its last broker epoch in the
// data folder; the next process of the node reads it, removes it before
// touching any log, and proves the clean shutdown at its first
// registration, so that the controller keeps it in the eligible leader
// replicas of topics that do not flush before acknowledging (KIP-966,
// docs/controller.md). A crash leaves no marker: a process that read one
// removed it first.
//
// Format: the epoch (8 bytes, little-endian) and the CRC32C of those 8
// bytes (4 bytes, little-endian).
const (
	cleanShutdownFile  = "clean-shutdown"
	cleanShutdownBytes = 12
)

var cleanShutdownCRC = crc32.MakeTable(crc32.Castagnoli)

// takeCleanShutdown returns the epoch the marker holds (0 without one, or
// with a damaged one) and removes it durably.
func takeCleanShutdown(dir string) (int64, error) {
	path := filepath.Join(dir, cleanShutdownFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var epoch int64
	if len(b) == cleanShutdownBytes && crc32.Checksum(b[:8], cleanShutdownCRC) == binary.LittleEndian.Uint32(b[8:]) {
		epoch = int64(binary.LittleEndian.Uint64(b[:8]))
	}
	if err := os.Remove(path); err != nil {
		return 0, err
	}
	return epoch, syncDir(dir)
}

// markCleanShutdown writes the marker durably.
func markCleanShutdown(dir string, epoch int64) error {
	var b [cleanShutdownBytes]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(epoch))
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], cleanShutdownCRC))
	tmp := filepath.Join(dir, cleanShutdownFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b[:])
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, cleanShutdownFile))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("server: clean shutdown marker: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
