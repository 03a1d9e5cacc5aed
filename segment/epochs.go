package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"sort"

	"github.com/strata-db/strata/schema"
)

// Leader epochs. Every frame carries the leader epoch it was written in
// (schema's leaderEpoch field). The log keeps the epochs present in it as
// a list of (epoch, first offset), Kafka's leader-epoch-checkpoint, which
// replication's divergence check asks (replica.EpochCache is its sans-IO
// twin; this package does not import replica). The rules:
//
//   - Epochs and start offsets both strictly increase along the list, and
//     every entry starts below the log end: an entry is made by the first
//     frame of its epoch, never by a leadership that wrote nothing.
//   - The list never lacks an entry that a durable frame needs: when an
//     append carries an epoch above the latest, the file is replaced
//     durably before that frame is written.
//   - Truncate drops the entries at or past the new end; retention and
//     DeleteRecordsBefore drop the entries wholly below the log start
//     (the one covering the log start stays, with its original start).
//   - Open drops entries at or past the recovered end (frames a crash
//     lost) and wholly below the log start, and rewrites the file if
//     that changed it, before any append can follow. A missing or corrupt
//     file while the log holds frames is rebuilt from frame headers
//     (rebuildEpochs, the slow path).
const (
	epochFileName    = "leader-epoch.checkpoint"
	epochFileMagic   = 0x45505453 // "STPE"
	epochFileVersion = 1
	epochHeaderSize  = 12 // magic, version, count
	epochEntrySize   = 12 // epoch (int32), start offset (int64)
	epochCRCSize     = 4
	// EpochEntriesMax bounds the list, and so the file's size before it is
	// read: one entry per leader change among the retained data. An append
	// that would add one more is refused with ErrTooManyEpochs.
	EpochEntriesMax   = 1 << 16
	epochFileBytesMax = epochHeaderSize + EpochEntriesMax*epochEntrySize + epochCRCSize

	// NoEpoch is LatestEpoch of a log with no epochs.
	NoEpoch int32 = -1
)

// Epoch errors a caller can act on. None of them changes the log.
var (
	// ErrEpochRegress: an append, or SetLeaderEpoch, names an epoch lower
	// than the latest in the log (or a negative one).
	ErrEpochRegress = errors.New("segment: leader epoch lower than the log's latest")
	// ErrOffsetMismatch: a replicated frame's base offset is not the log end.
	ErrOffsetMismatch = errors.New("segment: replicated frame's base offset is not the log end")
	// ErrTooManyEpochs: the epoch list holds EpochEntriesMax entries.
	ErrTooManyEpochs = errors.New("segment: too many leader epochs in the log")

	errEpochFile = errors.New("segment: bad leader-epoch checkpoint")
)

// EpochEntry says that leader epoch Epoch's frames begin at StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// encodeEpochs is the file's bytes:
//
//	 0      4        8       12            12+12n     16+12n
//	+------+--------+-------+-- n times --+--------+
//	|magic |version | count |epoch | start| crc32c |
//	+------+--------+-------+------+------+--------+
//	                         4 B    8 B
//
// little-endian; the CRC32C covers bytes [0, 12+12n).
func encodeEpochs(dst []byte, entries []EpochEntry) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, epochFileMagic)
	dst = binary.LittleEndian.AppendUint32(dst, epochFileVersion)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(entries)))
	for _, e := range entries {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(e.Epoch))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.StartOffset))
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], crcTable))
}

func decodeEpochs(b []byte) ([]EpochEntry, error) {
	if len(b) < epochHeaderSize+epochCRCSize || len(b) > epochFileBytesMax {
		return nil, fmt.Errorf("%w: %d bytes", errEpochFile, len(b))
	}
	if binary.LittleEndian.Uint32(b[0:]) != epochFileMagic {
		return nil, fmt.Errorf("%w: magic", errEpochFile)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != epochFileVersion {
		return nil, fmt.Errorf("%w: version %d", errEpochFile, v)
	}
	n := binary.LittleEndian.Uint32(b[8:])
	if n > EpochEntriesMax || len(b) != epochHeaderSize+int(n)*epochEntrySize+epochCRCSize {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", errEpochFile, n, len(b))
	}
	body := b[:len(b)-epochCRCSize]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(body):]) {
		return nil, fmt.Errorf("%w: crc", errEpochFile)
	}
	entries := make([]EpochEntry, n)
	for i := range entries {
		p := b[epochHeaderSize+i*epochEntrySize:]
		entries[i] = EpochEntry{Epoch: int32(binary.LittleEndian.Uint32(p)), StartOffset: int64(binary.LittleEndian.Uint64(p[4:]))}
	}
	if err := checkEpochOrder(entries); err != nil {
		return nil, err
	}
	return entries, nil
}

// checkEpochOrder checks the list's shape: no negative field, epochs and
// start offsets strictly increasing.
func checkEpochOrder(entries []EpochEntry) error {
	for i, e := range entries {
		if e.Epoch < 0 || e.StartOffset < 0 {
			return fmt.Errorf("%w: negative entry %+v", errEpochFile, e)
		}
		if i > 0 && (e.Epoch <= entries[i-1].Epoch || e.StartOffset <= entries[i-1].StartOffset) {
			return fmt.Errorf("%w: entry %+v does not follow %+v", errEpochFile, e, entries[i-1])
		}
	}
	return nil
}

// Epochs returns a copy of the epoch list, oldest first.
func (l *Log) Epochs() []EpochEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]EpochEntry(nil), l.epochs...)
}

// LatestEpoch is the epoch of the newest entry (of the last frame accepted
// by this log or its ring driver), or NoEpoch.
func (l *Log) LatestEpoch() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latestEpoch()
}

func (l *Log) latestEpoch() int32 {
	if len(l.epochs) == 0 {
		return NoEpoch
	}
	return l.epochs[len(l.epochs)-1].Epoch
}

// LeaderEpoch is the epoch Append stamps on frames.
func (l *Log) LeaderEpoch() int32 { l.mu.Lock(); defer l.mu.Unlock(); return l.leaderEpoch }

// SetLeaderEpoch makes Append stamp epoch on every frame from now on. An
// epoch below the latest in the log, or below the one set before, is
// refused with ErrEpochRegress. Nothing is written: the epoch enters the
// list (and the file) with the first frame appended in it.
func (l *Log) SetLeaderEpoch(epoch int32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if epoch < max(l.latestEpoch(), l.leaderEpoch, 0) {
		return fmt.Errorf("%w: %d, latest %d, set %d", ErrEpochRegress, epoch, l.latestEpoch(), l.leaderEpoch)
	}
	l.leaderEpoch = epoch
	return nil
}

// AssignEpoch records that epoch's frames begin at start, replacing the
// epoch file durably before it returns; the caller then writes the frame
// at start. It is for a driver that runs the data path itself
// (segment/ringlog) and calls it when it accepts the first frame of an
// epoch above the latest; start is the base offset it gave that frame, at
// or past the end of what is written. The latest epoch again is a no-op;
// a lower one is ErrEpochRegress. A failure writing the file takes the
// log offline (ErrStorageFailed), as any failed write does.
func (l *Log) AssignEpoch(epoch int32, start int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if start < l.core.End() {
		return fmt.Errorf("%w: epoch %d at %d, below the end %d", ErrOffsetMismatch, epoch, start, l.core.End())
	}
	return l.assignEpoch(epoch, start)
}

// assignEpoch is AssignEpoch with the lock held and start checked.
//
// The file is written synchronously (temp file, fdatasync, rename, folder
// fsync) before the frame's write is issued: a crash must never leave a
// durable frame whose epoch the list lacks, and ordering the two through
// the kernel is not possible without waiting for the first. It happens
// once per leader change, so the cost (two syncs) is off the steady path.
func (l *Log) assignEpoch(epoch int32, start int64) error {
	latest := l.latestEpoch()
	switch {
	case epoch == latest:
		return nil
	case epoch < latest || epoch < 0:
		return fmt.Errorf("%w: %d after %d", ErrEpochRegress, epoch, latest)
	case len(l.epochs) >= EpochEntriesMax:
		return fmt.Errorf("%w: %d", ErrTooManyEpochs, len(l.epochs))
	}
	if n := len(l.epochs); n > 0 && start <= l.epochs[n-1].StartOffset {
		return fmt.Errorf("segment: invariant: epoch %d at %d, latest %d began at %d", epoch, start, latest, l.epochs[n-1].StartOffset)
	}
	// An epoch beginning at the log start (after a truncation below it)
	// leaves the entry before it wholly below.
	next := trimBelow(append(l.epochs[:len(l.epochs):len(l.epochs)], EpochEntry{Epoch: epoch, StartOffset: start}), l.core.LogStart())
	if err := l.writeEpochFile(next); err != nil {
		return err
	}
	l.epochs = next
	return nil
}

// writeEpochFile replaces the epoch file with entries; its failure takes
// the log offline.
func (l *Log) writeEpochFile(entries []EpochEntry) error {
	l.epochBuf = encodeEpochs(l.epochBuf[:0], entries)
	if err := l.replaceFile(filepath.Join(l.dir, epochFileName), l.epochBuf); err != nil {
		return l.fail(fmt.Errorf("segment: write leader-epoch checkpoint: %w", err))
	}
	return nil
}

// replaceFile replaces a small file atomically: write a temp file, sync
// it, rename it over the old one, sync the folder. A file system out of
// room before the rename leaves the old file as it was and returns an
// error wrapping errKeptOnNoSpace, which the callers that can do with the
// old file (a checkpoint that only lags) take as no failure.
func (l *Log) replaceFile(final string, b []byte) error {
	tmp := final + checkpointTmpExt
	f, err := l.fs.Create(tmp)
	if err != nil {
		if IsNoSpace(err) {
			// No inode or folder block for the temporary file: the old
			// file stands whole.
			return fmt.Errorf("%w: %w", errKeptOnNoSpace, err)
		}
		return err
	}
	if _, err = f.WriteAt(b, 0); err == nil {
		err = f.Datasync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if IsNoSpace(err) {
			// Nothing was renamed: the old file stands whole. The
			// temporary one goes, for the room it holds.
			l.fs.Remove(tmp)
			return fmt.Errorf("%w: %w", errKeptOnNoSpace, err)
		}
		return err
	}
	if err = l.fs.Rename(tmp, final); err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	return err
}

// trimEpochs applies the list's bounds to the log's current extent:
// entries wholly below the log start go (the next entry starts at or
// below it), and with atEnd (truncation, open) entries at or past the end
// (their frames are gone). Retention passes atEnd false: a ring driver's
// appends may be in flight past the core's end, their entries already in
// the list. It rewrites the file when anything went. While the checkpoint
// lags (writeCheckpointMayLag) nothing goes from the start: a crash would
// bring back the log start it records, and the entries above it.
func (l *Log) trimEpochs(atEnd bool) error {
	end, start := l.core.End(), l.core.LogStart()
	n := len(l.epochs)
	for atEnd && n > 0 && l.epochs[n-1].StartOffset >= end {
		n--
	}
	first := 0
	for first+1 < n && l.epochs[first+1].StartOffset <= start && !l.checkpointLags {
		first++
	}
	if first == 0 && n == len(l.epochs) {
		return nil
	}
	next := append([]EpochEntry(nil), l.epochs[first:n]...)
	if !atEnd {
		// Retention only drops entries wholly below the log start: a
		// file that keeps them is still right (open trims it again), so
		// a disk out of room keeps it and the next pass tries again.
		l.epochBuf = encodeEpochs(l.epochBuf[:0], next)
		err := l.replaceFile(filepath.Join(l.dir, epochFileName), l.epochBuf)
		switch {
		case errors.Is(err, errKeptOnNoSpace):
			return nil
		case err != nil:
			return l.fail(fmt.Errorf("segment: write leader-epoch checkpoint: %w", err))
		}
		l.epochs = next
		return nil
	}
	if err := l.writeEpochFile(next); err != nil {
		return err
	}
	l.epochs = next
	return nil
}

// loadEpochs reads the epoch file after recovery, trims it to the log
// recovered, and rebuilds it from frame headers when it is missing or
// corrupt while the log holds frames. The caller holds no lock (Open).
func (l *Log) loadEpochs() error {
	entries, err := l.readEpochFile()
	switch {
	case err == nil:
		l.epochs = entries
		if err := l.trimEpochs(true); err != nil {
			return err
		}
	case !l.hasFrames():
		// No frames: nothing to rebuild; a stale file is replaced with
		// the first epoch appended.
		l.epochs = nil
	default:
		if l.epochs, err = l.rebuildEpochs(); err != nil {
			return err
		}
		// Written at once, so that the next open is fast and an append
		// of a newer epoch finds the file it replaces whole.
		if err := l.writeEpochFile(l.epochs); err != nil {
			return err
		}
	}
	l.leaderEpoch = max(l.latestEpoch(), 0)
	return nil
}

func (l *Log) hasFrames() bool {
	for _, s := range l.core.segs {
		if s.size > 0 {
			return true
		}
	}
	return false
}

// trimBelow drops entries wholly below start.
func trimBelow(entries []EpochEntry, start int64) []EpochEntry {
	first := 0
	for first+1 < len(entries) && entries[first+1].StartOffset <= start {
		first++
	}
	return entries[first:]
}

// readEpochFile reads and decodes the epoch file; any error (missing, too
// large, corrupt) means the list must be rebuilt.
func (l *Log) readEpochFile() ([]EpochEntry, error) {
	f, err := l.fs.Open(filepath.Join(l.dir, epochFileName))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size < epochHeaderSize+epochCRCSize || size > epochFileBytesMax {
		return nil, fmt.Errorf("%w: %d bytes", errEpochFile, size)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return decodeEpochs(b)
}

// rebuildEpochs is the slow path: it reads the 64-byte header of every
// frame of every segment that holds offsets at or after the log start,
// oldest first, and notes where each epoch begins. The work is bounded by the log's frames: one pread of a header
// per frame, at most Size()/FrameHeaderSize of them, no frame body read and
// no CRC computed (recovery has already checked what it walked, and
// trusted segments were synced). It runs only on Open when the file is
// missing or corrupt. Epochs that go back along the log are damage:
// ErrCorrupt.
func (l *Log) rebuildEpochs() ([]EpochEntry, error) {
	var entries []EpochEntry
	from := l.core.LogStart()
	for _, s := range l.core.segs {
		if s.size == 0 || s.next <= from {
			continue
		}
		var err error
		if entries, err = l.rebuildSegmentEpochs(s, from, entries); err != nil {
			return nil, err
		}
	}
	return entries, checkEpochOrder(entries)
}

// rebuildSegmentEpochs adds the epochs of the frames of s that hold
// offsets at or after from (the log start) to entries.
func (l *Log) rebuildSegmentEpochs(s *Segment, from int64, entries []EpochEntry) ([]EpochEntry, error) {
	f := s.Handle.(*segFiles).data
	if f == nil {
		// A trusted segment opened on first use: opened here only for
		// the walk, so that a rebuild of a long log does not hold a
		// descriptor per segment.
		var err error
		if f, err = l.fs.Open(logPath(l.dir, s.base)); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	var hdr [schema.FrameHeaderSize]byte
	for pos := int64(0); pos < s.size; {
		if _, err := f.ReadAt(hdr[:], pos); err != nil {
			return nil, fmt.Errorf("%w: epoch rebuild: segment %d at %d: %v", ErrCorrupt, s.base, pos, err)
		}
		h, err := schema.ParseFrameHeader(hdr[:])
		if err != nil || pos+int64(h.Length) > s.size {
			return nil, fmt.Errorf("%w: epoch rebuild: segment %d at %d: %v", ErrCorrupt, s.base, pos, err)
		}
		n := len(entries)
		switch {
		case h.NextOffset() <= from:
			// Below the log start: no reader sees it, no entry needs it.
		case h.LeaderEpoch < 0 || (n > 0 && h.LeaderEpoch < entries[n-1].Epoch):
			return nil, fmt.Errorf("%w: epoch rebuild: frame at %d has epoch %d after %v", ErrCorrupt, h.BaseOffset, h.LeaderEpoch, entries[max(n-1, 0):])
		case n == 0 || h.LeaderEpoch > entries[n-1].Epoch:
			if n >= EpochEntriesMax {
				return nil, fmt.Errorf("%w: epoch rebuild: %d", ErrTooManyEpochs, n)
			}
			entries = append(entries, EpochEntry{Epoch: h.LeaderEpoch, StartOffset: h.BaseOffset})
		}
		pos += int64(h.Length)
	}
	return entries, nil
}

// CheckEpochs rebuilds the epoch list from the frame headers and checks
// that the log's list names exactly the epochs of its frames: the same
// epochs starting at the same offsets, except that the entry covering the
// log start may start earlier (the frames before it were deleted), and
// no entry at or past the end. Once the cleaner dropped frames (compact.go)
// an epoch may have lost its first frames or all of them, while the list
// keeps it as it was: then every frame's epoch must be the one the list
// gives its base offset. For tests and tools, with no append of a
// ring driver in flight: it reads every frame's header.
func (l *Log) CheckEpochs() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	want, err := l.rebuildEpochs()
	if err != nil {
		return err
	}
	start, end := l.core.LogStart(), l.core.End()
	got := l.epochs
	if err := checkEpochOrder(got); err != nil {
		return err
	}
	if n := len(got); n > 0 && got[n-1].StartOffset >= end {
		return fmt.Errorf("segment: epoch %+v at or past the end %d", got[n-1], end)
	}
	if l.hasGappedSegments() {
		return checkEpochsCover(got, want)
	}
	if len(want) == 0 {
		// No frames at or after the log start: at most the entry that
		// covered it is left.
		if len(got) > 1 {
			return fmt.Errorf("segment: epochs %v for a log with no frames in [%d, %d)", got, start, end)
		}
		return nil
	}
	if len(got) != len(want) {
		return fmt.Errorf("segment: epochs %v, frames have %v", got, want)
	}
	for i := range got {
		if got[i].Epoch != want[i].Epoch || (got[i].StartOffset != want[i].StartOffset && (i > 0 || got[i].StartOffset > want[i].StartOffset)) {
			return fmt.Errorf("segment: epochs %v, frames have %v", got, want)
		}
	}
	return nil
}

// hasGappedSegments reports whether any segment may skip offsets.
func (l *Log) hasGappedSegments() bool {
	for _, s := range l.core.segs {
		if s.gapped {
			return true
		}
	}
	return false
}

// checkEpochsCover checks that the epoch of every frame's first entry in
// want (the epochs of the frames, each with its first frame's offset) is
// the epoch got gives that offset.
func checkEpochsCover(got, want []EpochEntry) error {
	for _, w := range want {
		i := sort.Search(len(got), func(i int) bool { return got[i].StartOffset > w.StartOffset }) - 1
		if i < 0 || got[i].Epoch != w.Epoch {
			return fmt.Errorf("segment: epochs %v do not give offset %d the epoch %d of its frame", got, w.StartOffset, w.Epoch)
		}
	}
	return nil
}
