package segment

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/strata-db/strata/schema"
)

// Log is the synchronous driver of a Core: it performs the I/O the core
// decides on with plain syscalls. Tests, tools and recovery use it; the
// broker drives the same core from its io_uring shard loop instead. A Log is
// safe for concurrent use; concurrent appends under FlushEveryAck share one
// fdatasync (group commit).
type Log struct {
	mu      sync.Mutex
	cond    sync.Cond
	fs      FS
	dir     string
	cfg     Config
	core    *Core
	plan    ReadPlan
	hdr     [schema.FrameHeaderSize]byte
	frame   []byte // reused buffer for walking frames
	syncing bool
	// dirDirty is set when a segment file was created and the directory
	// entry is not yet durable.
	dirDirty bool
	// checkpointLags: the last checkpoint was kept for lack of room, so
	// the one on disk may record an older log start (trimEpochs).
	checkpointLags bool
	// rolling are the segments rolled (BeginRoll) whose roll has not
	// finished, oldest first: their trim to size may not be durable yet.
	rolling     []*Segment
	lastFlushMs int64
	closed      bool
	// failed is the first storage failure, wrapped in ErrStorageFailed;
	// once set the log is offline (see log_fail.go).
	failed error
	stats  Stats
	// keepDeleted, when set (KeepDeletedDataFiles), takes the open data
	// files of deleted segments instead of their being closed.
	keepDeleted func(s *Segment, data File)
	// epochs is the leader-epoch list (epochs.go), as in its file;
	// leaderEpoch is what Append stamps.
	epochs      []EpochEntry
	leaderEpoch int32
	epochBuf    []byte
	// compacting is set while a compaction job is planned and not
	// finished; cleaner is the cleaner's state, loaded on the first plan
	// (compact_state.go).
	compacting bool
	cleaner    *cleanerState
}

// Stats counts the work a Log did, for tests and tools.
type Stats struct {
	FramesChecked int64 // frames read and CRC-checked by recovery and index rebuilds
	IndexLoads    int64 // closed-segment indexes mapped on first use
	IndexRebuilds int64 // indexes rebuilt from the data
	Truncations   int64 // segments whose torn or corrupt tail recovery cut off
	// CheckpointsKept counts checkpoints not written for lack of room,
	// the old one kept (writeCheckpointMayLag).
	CheckpointsKept int64
}

// segFiles is a segment's open files (the Segment.Handle). Files of trusted
// closed segments are opened on first use.
type segFiles struct {
	data     File
	off, tim File
}

// Open opens (creating if needed) the partition log in dir, recovering it
// if it was not closed cleanly.
func Open(dir string, cfg Config) (*Log, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{fs: cfg.FS, dir: dir, cfg: cfg}
	l.cond.L = &l.mu
	l.core, err = NewCore(cfg, l)
	if err != nil {
		return nil, err
	}
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("segment: open %s: %w", dir, err)
	}
	if err := l.loadEpochs(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("segment: open %s: %w", dir, err)
	}
	l.lastFlushMs = cfg.NowMs()
	return l, nil
}

// Dir is the partition folder.
func (l *Log) Dir() string { return l.dir }

// LogStart, End and RecoveryPoint report the core's offsets.
func (l *Log) LogStart() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.core.LogStart() }

// End is the log end offset: the offset the next append gets.
func (l *Log) End() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.core.End() }

// RecoveryPoint is the offset below which everything is durable.
func (l *Log) RecoveryPoint() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.core.RecoveryPoint() }

// SegmentBases lists the segments' base offsets, oldest first.
func (l *Log) SegmentBases() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int64, 0, len(l.core.segs))
	for _, s := range l.core.segs {
		out = append(out, s.base)
	}
	return out
}

// Size is the total committed data bytes.
func (l *Log) Size() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.core.Size() }

// Stats returns the work counters.
func (l *Log) Stats() Stats { l.mu.Lock(); defer l.mu.Unlock(); return l.stats }

// CheckConsistency runs the core's whole-log check.
func (l *Log) CheckConsistency() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.core.CheckConsistency()
}

// Flush makes everything appended so far durable.
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	return l.syncTo(l.core.End())
}

// syncTo returns once everything below target is durable. One caller at a
// time runs fdatasync, with the lock released so that appends go on; the
// sync covers everything written when it began, and every waiter it covers
// returns without a sync of its own (group commit). A failed sync fails the
// log: its waiters, and every caller after them, get the sticky error and
// never a retried sync.
func (l *Log) syncTo(target int64) error {
	for l.core.RecoveryPoint() < target {
		if err := l.usable(); err != nil {
			return err
		}
		if l.syncing {
			l.cond.Wait()
			continue
		}
		l.syncing = true
		upto := l.core.End()
		gen := l.core.gen
		f := l.core.Active().Handle.(*segFiles).data
		dirty := l.dirDirty
		l.dirDirty = false
		l.mu.Unlock()
		err := f.Datasync()
		if err == nil && dirty {
			err = l.fs.SyncDir(l.dir)
		}
		l.mu.Lock()
		l.syncing = false
		l.cond.Broadcast()
		if err != nil {
			return l.fail(fmt.Errorf("segment: sync to offset %d: %w", upto, err))
		}
		if gen == l.core.gen {
			l.core.Flushed(upto)
		}
	}
	return nil
}

// waitSync waits until no sync is running, before operations that remove
// or close files. The lock is released meanwhile, so the caller checks
// usable afterwards: the sync may have failed.
func (l *Log) waitSync() {
	for l.syncing {
		l.cond.Wait()
	}
}

// roll closes the active segment and starts a new one at the log end. The
// closed segment is trimmed and synced at once, so that the recovery point
// can move past it and recovery never walks it again.
func (l *Log) roll() error {
	old, err := l.beginRoll()
	if err != nil {
		return err
	}
	for _, f := range old.Handle.(*segFiles).syncFiles() {
		if err := f.Datasync(); err != nil {
			return l.fail(fmt.Errorf("segment: sync segment %d: %w", old.base, err))
		}
	}
	return l.finishRoll(old)
}

// beginRoll creates the next segment's files, rolls the core and trims the
// old segment's data file to its size. The old segment's files still have
// to be synced before finishRoll.
func (l *Log) beginRoll() (*Segment, error) {
	base := l.core.End()
	files, off, tim, err := l.createSegment(base)
	if err != nil {
		if IsNoSpace(err) {
			// A full file system (no block for the folder's entries, no
			// inode) changed nothing: the new files are gone again and
			// the active segment stands, so the roll can be tried again
			// once there is room instead of taking the log offline.
			return nil, err
		}
		return nil, l.fail(err)
	}
	old, _, err := l.core.Roll(off, tim, files)
	if err != nil {
		files.close()
		l.removeSegmentFiles(base)
		return nil, err
	}
	l.dirDirty = true
	l.rolling = append(l.rolling, old)
	if err := old.Handle.(*segFiles).data.Truncate(old.size); err != nil {
		return nil, l.fail(fmt.Errorf("segment: trim segment %d: %w", old.base, err))
	}
	return old, nil
}

// finishRoll runs once the old segment's files are synced: it makes the new
// segment's directory entry durable, moves the recovery point past the old
// segment and records it in the checkpoint.
func (l *Log) finishRoll(old *Segment) error {
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("segment: sync folder after rolling segment %d: %w", old.base, err))
	}
	l.dirDirty = false
	if len(l.rolling) == 0 || l.rolling[0] != old {
		return fmt.Errorf("segment: finish roll of segment %d out of the order rolls began", old.base)
	}
	l.rolling[0] = nil
	l.rolling = l.rolling[1:]
	l.core.Flushed(old.next)
	return l.writeCheckpointMayLag()
}

// syncFiles are the files a roll syncs: data, offset index, time index.
func (files *segFiles) syncFiles() []File { return []File{files.data, files.off, files.tim} }

// createSegment creates a segment's three files and maps its indexes. No
// blocks are allocated: the data file is empty and the index files are
// sparse until the first append grows the segment (see core_grow.go).
func (l *Log) createSegment(base int64) (*segFiles, []byte, []byte, error) {
	files := &segFiles{}
	fail := func(err error) (*segFiles, []byte, []byte, error) {
		files.close()
		l.removeSegmentFiles(base)
		return nil, nil, nil, fmt.Errorf("segment: create segment %d: %w", base, err)
	}
	var err error
	if files.data, err = l.fs.Create(logPath(l.dir, base)); err != nil {
		return fail(err)
	}
	var off, tim []byte
	if files.off, off, err = l.createIndex(indexPath(l.dir, base), offsetEntrySize); err != nil {
		return fail(err)
	}
	if files.tim, tim, err = l.createIndex(timeIndexPath(l.dir, base), timeEntrySize); err != nil {
		return fail(err)
	}
	return files, off, tim, nil
}

// createIndex creates (or recreates, zeroed) an index file at its configured
// size, sparse (ftruncate: no blocks until they are allocated by a growth or
// allocateIndexes), and maps it.
func (l *Log) createIndex(name string, entrySize int) (File, []byte, error) {
	f, err := l.fs.Create(name)
	if err != nil {
		return nil, nil, err
	}
	size := l.cfg.indexEntries() * entrySize
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, nil, err
	}
	m, err := f.Map(size)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, m, nil
}

// grow allocates a growth of a segment's files synchronously, each range
// from the start of its file (fallocate skips blocks already allocated), and
// records it in the core. Its error is a storage failure for the caller to
// take the log offline with.
func (l *Log) grow(g *Growth) error {
	s := g.Segment
	files := s.Handle.(*segFiles)
	data, err := l.dataFile(s)
	if err != nil {
		return fmt.Errorf("segment: allocate segment %d: %w", s.base, err)
	}
	for _, a := range [...]struct {
		f File
		r ByteRange
	}{{data, g.Data}, {files.off, g.OffsetIndex}, {files.tim, g.TimeIndex}} {
		if a.r.Empty() {
			continue
		}
		if err := a.f.Allocate(a.r.To); err != nil {
			return fmt.Errorf("segment: allocate segment %d for %d bytes of data: %w", s.base, g.Target, err)
		}
	}
	l.core.Grown(g)
	return nil
}

// allocateIndexes allocates the prefixes of a segment's index files that
// the entries for dataEnd bytes of data can fill, before a recovery walk or
// an index rebuild writes entries into their mappings.
func (l *Log) allocateIndexes(files *segFiles, dataEnd int64) error {
	if err := files.off.Allocate(l.cfg.indexAllocateBytes(dataEnd, offsetEntrySize)); err != nil {
		return err
	}
	return files.tim.Allocate(l.cfg.indexAllocateBytes(dataEnd, timeEntrySize))
}

func (files *segFiles) close() error {
	var err error
	for _, f := range []*File{&files.data, &files.off, &files.tim} {
		if *f != nil {
			if cerr := (*f).Close(); err == nil {
				err = cerr
			}
			*f = nil
		}
	}
	return err
}

func (l *Log) removeSegmentFiles(base int64) error {
	var err error
	for _, p := range []string{logPath(l.dir, base), indexPath(l.dir, base), timeIndexPath(l.dir, base)} {
		if rerr := l.fs.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	return err
}

// dataFile returns a segment's open data file, opening it on first use.
func (l *Log) dataFile(s *Segment) (File, error) {
	files := s.Handle.(*segFiles)
	if files.data == nil {
		if s.retired {
			return nil, fmt.Errorf("%w: segment %d was replaced by its cleaned version", ErrStaleRead, s.base)
		}
		f, err := l.fs.Open(logPath(l.dir, s.base))
		if err != nil {
			return nil, err
		}
		files.data = f
	}
	return files.data, nil
}

// writeCheckpoint replaces the recovery-point file atomically: write a temp
// file, sync it, rename it over the old one, sync the directory.
//
// Recovery starts walking the active segment from its last index entry at or
// before the checkpointed recovery point, and takes the running max
// timestamp from the time index there; mapped pages are written back in no
// particular order, so both index files are synced first, making every entry
// below the recovery point durable in both.
//
// While a roll is unfinished (a ring driver's syncs of the old segment are
// in flight, and a deletion or retention pass checkpoints meanwhile), the
// recorded recovery point stays at or below the old segment's base: an
// earlier group sync may have made all its frames durable, but not its trim
// to size, and a checkpoint past it would have recovery trust the segment
// with its allocated length, zeros and all.
func (l *Log) writeCheckpoint() error { return l.checkpoint(false) }

// writeCheckpointMayLag is writeCheckpoint where a checkpoint behind the
// log is still right: after a roll, a deletion or retention, at open and
// at close. Its recovery point and log start only lag, so recovery walks
// more and a DeleteRecordsBefore inside a segment is undone by a crash.
// There a file system out of room (before the rename) keeps the old
// checkpoint rather than taking the log offline: a full disk must not
// stop a log for good (docs/storage.md, "A full disk"), and retention,
// which frees room, writes one. The next checkpoint catches up.
func (l *Log) writeCheckpointMayLag() error { return l.checkpoint(true) }

func (l *Log) checkpoint(mayLag bool) error {
	ck := checkpoint{logStart: l.core.LogStart(), recoveryPoint: l.core.RecoveryPoint()}
	if len(l.rolling) > 0 {
		ck.recoveryPoint = min(ck.recoveryPoint, l.rolling[0].base)
	}
	if a := l.core.Active(); a != nil {
		if files, ok := a.Handle.(*segFiles); ok {
			for _, f := range []File{files.off, files.tim} {
				if f == nil {
					continue
				}
				if err := f.Datasync(); err != nil {
					return l.fail(fmt.Errorf("segment: sync index of segment %d: %w", a.base, err))
				}
			}
		}
	}
	if err := l.replaceFile(filepath.Join(l.dir, checkpointName), ck.AppendTo(nil)); err != nil {
		if mayLag && errors.Is(err, errKeptOnNoSpace) {
			l.stats.CheckpointsKept++
			l.checkpointLags = true
			return nil
		}
		return l.fail(fmt.Errorf("segment: write checkpoint: %w", err))
	}
	l.checkpointLags = false
	return nil
}

// closeDropped closes the files of a segment the core no longer holds:
// the driver closes the data file once no reader names its descriptor
// (KeepDeletedDataFiles); the indexes go now (nothing outside the log uses
// them).
func (l *Log) closeDropped(s *Segment) {
	files := s.Handle.(*segFiles)
	if l.keepDeleted != nil && files.data != nil {
		data := files.data
		files.data = nil
		files.close()
		l.keepDeleted(s, data)
		return
	}
	files.close()
}

// deleteSegments closes and deletes the files of segments the core dropped,
// then records the new log start.
func (l *Log) deleteSegments(removed []*Segment) error {
	var err error
	for _, s := range removed {
		l.closeDropped(s)
		if rerr := l.removeSegmentFiles(s.base); err == nil {
			err = rerr
		}
	}
	if len(removed) > 0 && err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		return l.fail(fmt.Errorf("segment: delete segments: %w", err))
	}
	return l.writeCheckpointMayLag()
}

// DeleteRecordsBefore advances the log start to offset and deletes the
// closed segments wholly below it.
func (l *Log) DeleteRecordsBefore(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waitSync()
	if err := l.usable(); err != nil {
		return err
	}
	removed, err := l.core.DeleteRecordsBefore(offset)
	if err != nil {
		return err
	}
	if err := l.deleteSegments(removed); err != nil {
		return err
	}
	// After the checkpoint: until the new log start is durable the
	// entries below it may still be needed.
	return l.trimEpochs(false)
}

// ApplyRetention deletes closed segments past the time and size bounds.
func (l *Log) ApplyRetention(nowMs int64) error {
	return l.ApplyRetentionBelow(nowMs, math.MaxInt64)
}

// ApplyRetentionBelow is ApplyRetention bounded to segments wholly below
// limit (Core.ApplyRetentionBelow).
func (l *Log) ApplyRetentionBelow(nowMs, limit int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waitSync()
	if err := l.usable(); err != nil {
		return err
	}
	removed, rerr := l.core.ApplyRetentionBelow(nowMs, limit)
	if err := l.deleteSegments(removed); err != nil {
		return err
	}
	if err := l.trimEpochs(false); err != nil {
		return err
	}
	return rerr
}

// Close syncs everything, records the recovery point and closes the files.
// A failed log only closes its files, and returns its failure: nothing is
// synced or checkpointed after a storage error.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.waitSync()
	err := l.failed
	if err == nil {
		err = l.syncTo(l.core.End())
	}
	if err == nil {
		f := l.core.Active().Handle.(*segFiles)
		for _, x := range []File{f.off, f.tim} {
			if serr := x.Datasync(); serr != nil {
				err = l.fail(fmt.Errorf("segment: sync index of segment %d: %w", l.core.Active().base, serr))
				break
			}
		}
	}
	if err == nil {
		err = l.writeCheckpointMayLag()
	}
	l.closed = true
	l.cond.Broadcast()
	if cerr := l.closeFiles(); err == nil {
		err = cerr
	}
	return err
}

func (l *Log) closeFiles() error {
	var err error
	for _, s := range l.core.segs {
		if f, ok := s.Handle.(*segFiles); ok {
			if cerr := f.close(); err == nil {
				err = cerr
			}
		}
	}
	return err
}

// Roll closes the active segment and starts a new one, if the active one
// holds any data (tools and tests; appends roll by themselves).
func (l *Log) Roll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if l.core.Active().size == 0 {
		return nil
	}
	return l.roll()
}
