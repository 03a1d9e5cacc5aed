package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
)

// The cleaner's state is one small file, replaced atomically like the
// recovery point (temp file, fdatasync, rename, folder fsync):
//
//	 0      4        8            16      20             20+16n  24+16n
//	+------+--------+------------+-------+-- n times --+--------+
//	|magic |version | firstDirty | count | base | at   | crc32c |  magic "STCL"
//	| u32  |  u32=1 |    i64     |  u32  | i64  | i64  | [0,20+16n)
//	+------+--------+------------+-------+------+------+--------+
//
// firstDirty is the offset below which every record was seen by a round's
// key map. An entry (base, at) says the segment at base may skip offsets
// (its frames were cleaned, or the segment after it removed), and, when at
// is not 0, that it was first cleaned whole at time at (ms), which starts
// its tombstones' delete.retention.ms.
//
// The file is written twice a round: before the swaps, with an entry for
// every segment a swap may leave skipping offsets (a segment that skips
// offsets without one is damage to recovery and reads, so the entry must
// be durable first; one for a swap that then did not happen only relaxes
// that check for an intact segment), and after them, with the new
// firstDirty and times. A crash can leave the second write undone: that
// only makes the cleaner read records again and keep tombstones longer.
// A missing or bad file is read as empty: a cleaned segment then reads as
// damaged where it skips offsets, as any segment whose file was lost.
const (
	cleanerFileName     = "cleaner.checkpoint"
	cleanerMagic        = 0x4c435453 // "STCL"
	cleanerVersion      = 1
	cleanerHeaderBytes  = 20
	cleanerEntryBytes   = 16
	cleanerCRCBytes     = 4
	cleanerEntriesMax   = 1 << 16
	cleanerFileBytesMax = cleanerHeaderBytes + cleanerEntriesMax*cleanerEntryBytes + cleanerCRCBytes
)

var errCleanerState = errors.New("segment: bad cleaner checkpoint")

type cleanerState struct {
	firstDirty int64
	// cleanedAt has an entry for each segment that may skip offsets:
	// the time of its first whole cleaning (ms), or 0 when none yet.
	cleanedAt map[int64]int64
}

// cleanerGapped reports whether the segment at base may skip offsets.
func (l *Log) cleanerGapped(base int64) bool {
	_, ok := l.cleaner.cleanedAt[base]
	return ok
}

func encodeCleanerState(st *cleanerState) []byte {
	bases := make([]int64, 0, len(st.cleanedAt))
	for b := range st.cleanedAt {
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	// PlanCompaction keeps the entries within cleanerEntriesMax, and
	// none may be dropped: a segment that skips offsets without one would
	// read as damaged.
	b := make([]byte, cleanerHeaderBytes, cleanerHeaderBytes+len(bases)*cleanerEntryBytes+cleanerCRCBytes)
	binary.LittleEndian.PutUint32(b[0:], cleanerMagic)
	binary.LittleEndian.PutUint32(b[4:], cleanerVersion)
	binary.LittleEndian.PutUint64(b[8:], uint64(st.firstDirty))
	binary.LittleEndian.PutUint32(b[16:], uint32(len(bases)))
	for _, base := range bases {
		b = binary.LittleEndian.AppendUint64(b, uint64(base))
		b = binary.LittleEndian.AppendUint64(b, uint64(st.cleanedAt[base]))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func decodeCleanerState(b []byte) (*cleanerState, error) {
	if len(b) < cleanerHeaderBytes+cleanerCRCBytes || len(b) > cleanerFileBytesMax {
		return nil, fmt.Errorf("%w: %d bytes", errCleanerState, len(b))
	}
	if binary.LittleEndian.Uint32(b[0:]) != cleanerMagic || binary.LittleEndian.Uint32(b[4:]) != cleanerVersion {
		return nil, fmt.Errorf("%w: magic or version", errCleanerState)
	}
	n := int(binary.LittleEndian.Uint32(b[16:]))
	if n > cleanerEntriesMax || len(b) != cleanerHeaderBytes+n*cleanerEntryBytes+cleanerCRCBytes {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", errCleanerState, n, len(b))
	}
	body := b[:len(b)-cleanerCRCBytes]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(body):]) {
		return nil, fmt.Errorf("%w: crc", errCleanerState)
	}
	st := &cleanerState{firstDirty: int64(binary.LittleEndian.Uint64(b[8:])), cleanedAt: make(map[int64]int64, n)}
	if st.firstDirty < 0 {
		return nil, fmt.Errorf("%w: first dirty offset %d", errCleanerState, st.firstDirty)
	}
	for i := 0; i < n; i++ {
		e := b[cleanerHeaderBytes+i*cleanerEntryBytes:]
		st.cleanedAt[int64(binary.LittleEndian.Uint64(e))] = int64(binary.LittleEndian.Uint64(e[8:]))
	}
	return st, nil
}

// loadCleanerState reads the cleaner's file once. A missing or bad file
// starts from nothing cleaned (see above: always safe).
func (l *Log) loadCleanerState() error {
	if l.cleaner != nil {
		return nil
	}
	l.cleaner = &cleanerState{cleanedAt: make(map[int64]int64)}
	name := filepath.Join(l.dir, cleanerFileName)
	f, err := l.fs.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return err
	}
	if size > cleanerFileBytesMax {
		return nil
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil
	}
	if st, err := decodeCleanerState(b); err == nil {
		l.cleaner = st
	}
	return nil
}

// writeCleanerState records the state after a round; entries of segments
// the log no longer has are dropped. Its failure takes the log offline,
// like every failed replacement of the partition's files.
func (l *Log) writeCleanerState() error {
	live := make(map[int64]bool, len(l.core.segs))
	for _, s := range l.core.segs {
		live[s.base] = true
	}
	for b := range l.cleaner.cleanedAt {
		if !live[b] {
			delete(l.cleaner.cleanedAt, b)
		}
	}
	if err := l.replaceFile(filepath.Join(l.dir, cleanerFileName), encodeCleanerState(l.cleaner)); err != nil {
		return l.fail(fmt.Errorf("segment: write cleaner checkpoint: %w", err))
	}
	return nil
}

// cleanerTruncated forgets what the cleaner knew of the offsets a
// truncation dropped: records appended there anew are dirty, and a new
// segment that takes a dropped one's base has never been cleaned (its
// tombstones must not inherit the dropped one's time).
func (l *Log) cleanerTruncated() error {
	if err := l.loadCleanerState(); err != nil {
		return err
	}
	active := l.core.Active().base
	changed := false
	if l.cleaner.firstDirty > active {
		l.cleaner.firstDirty, changed = active, true
	}
	for b, at := range l.cleaner.cleanedAt {
		switch {
		case b > active:
			delete(l.cleaner.cleanedAt, b)
			changed = true
		case b == active && at != 0:
			// Its frames below the cut may still skip offsets.
			l.cleaner.cleanedAt[b] = 0
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return l.writeCleanerState()
}
