package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The swap. For each rewritten segment at base B, with its three cleaned
// files B.log.cleaned, B.index.cleaned, B.timeindex.cleaned written and
// synced by Build:
//
//  1. rename B.index.cleaned -> B.index.swap, B.timeindex.cleaned ->
//     B.timeindex.swap; fsync the folder.
//  2. rename B.log.cleaned -> B.log.swap; fsync the folder. This rename
//     is the commit point: from here on the cleaned segment is the log's.
//  3. rename B.index.swap -> B.index, B.timeindex.swap -> B.timeindex,
//     B.log.swap -> B.log (each replacing the old file); fsync the folder.
//
// Opening the folder (removeCleaningLeftovers, before the segments are
// listed) finishes or undoes a swap a crash interrupted: with B.log.swap
// present, step 2 was durable, and so were step 1's renames before it, so
// the cleaned files are whole and synced: it renames whichever .swap files
// remain into place (step 3). Without it, nothing of B was replaced: it
// removes B's .cleaned and .swap files, and B's old files are untouched.
// So a crash at any step leaves B's old segment or its new one, never a
// mix of the two, never neither.
//
// A segment none of whose records were kept is removed instead: its
// index files, then its data file (the commit), then a folder fsync. A
// crash between leaves its data file without indexes, which are rebuilt
// from it on first use: the old segment, whole.
//
// The swapped-out segment leaves the core at once (ReplaceSegment: reads
// planned before it fail with ErrStaleRead, as after retention), and its
// open data file goes to the KeepDeletedDataFiles callback, so that
// answers still splicing from it read the old bytes until they let go.
//
// A failure of any rename or folder fsync takes the log offline
// (fail-stop, log_fail.go): the folder's state is then unknown, and
// opening it again resolves it by the rules above.

// FinishCompaction swaps in the segments Build cleaned and records the
// round. It refuses with ErrCompactionStale, removing the cleaned files,
// when the log was truncated or lost segments since the job was planned:
// the key map may then hold offsets of records that are gone.
func (l *Log) FinishCompaction(j *CompactionJob) (CompactionResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if j.l != l || !l.compacting {
		return CompactionResult{}, fmt.Errorf("segment: compaction job not planned on this log")
	}
	l.waitSync()
	if !j.built || j.buildErr != nil || l.usable() != nil || l.core.gen != j.gen {
		l.abortLocked(j)
		if err := l.usable(); err != nil {
			return CompactionResult{}, err
		}
		if !j.built || j.buildErr != nil {
			return CompactionResult{}, fmt.Errorf("segment: compaction job not built: %v", j.buildErr)
		}
		return CompactionResult{}, ErrCompactionStale
	}
	l.compacting = false
	startBefore := l.core.LogStart()
	// Every segment a swap may leave skipping offsets is recorded first.
	prevKept := int64(-1)
	for i := range j.segs {
		js := &j.segs[i]
		switch {
		case js.outcome == outcomeRewritten:
			l.markGapped(js.base)
		case js.outcome == outcomeRemoved && prevKept >= 0:
			l.markGapped(prevKept)
		}
		if js.outcome != outcomeRemoved {
			prevKept = js.base
		}
	}
	if err := l.writeCleanerState(); err != nil {
		return CompactionResult{}, err
	}
	for i := range j.segs {
		js := &j.segs[i]
		var err error
		switch js.outcome {
		case outcomeRewritten:
			err = l.swapCleaned(js)
		case outcomeRemoved:
			err = l.removeCleanedAway(js)
		}
		if err != nil {
			// Undo nothing: a swap under way is finished or undone by
			// the next open, the later segments' files are removed then.
			return CompactionResult{}, err
		}
		j.res.RecordsRemoved += js.dropped
		j.res.TombstonesRemoved += js.tombs
		if js.base < j.mapEnd && js.next <= j.mapEnd && js.outcome != outcomeRemoved {
			if at := l.cleaner.cleanedAt[js.base]; at == 0 {
				l.cleaner.cleanedAt[js.base] = j.nowMs
			}
		}
	}
	l.cleaner.firstDirty = max(l.cleaner.firstDirty, j.mapEnd)
	if err := l.writeCleanerState(); err != nil {
		return CompactionResult{}, err
	}
	if l.core.LogStart() != startBefore {
		if err := l.writeCheckpoint(); err != nil {
			return CompactionResult{}, err
		}
		if err := l.trimEpochs(false); err != nil {
			return CompactionResult{}, err
		}
	}
	return j.res, nil
}

func (l *Log) markGapped(base int64) {
	if _, ok := l.cleaner.cleanedAt[base]; !ok {
		l.cleaner.cleanedAt[base] = 0
	}
}

// AbortCompaction drops a planned job and the files its Build wrote.
func (l *Log) AbortCompaction(j *CompactionJob) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if j.l == l && l.compacting {
		l.abortLocked(j)
	}
}

func (l *Log) abortLocked(j *CompactionJob) {
	for i := range j.segs {
		l.removeCleaned(j.segs[i].base)
	}
	l.compacting = false
}

// swapCleaned runs the swap of one segment (see above) and hands the core
// the cleaned segment.
func (l *Log) swapCleaned(js *jobSegment) error {
	b := js.base
	names := [...]string{indexPath(l.dir, b), timeIndexPath(l.dir, b), logPath(l.dir, b)}
	fail := func(step string, err error) error {
		return l.fail(fmt.Errorf("segment: compaction swap of segment %d, %s: %w", b, step, err))
	}
	for _, n := range names[:2] {
		if err := l.fs.Rename(cleanedPath(n), n+swapSuffix); err != nil {
			return fail("rename index", err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fail("sync folder", err)
	}
	if err := l.fs.Rename(cleanedPath(names[2]), names[2]+swapSuffix); err != nil {
		return fail("commit", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fail("sync folder after commit", err)
	}
	for _, n := range names {
		if err := l.fs.Rename(n+swapSuffix, n); err != nil {
			return fail("rename into place", err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fail("sync folder after swap", err)
	}
	old, err := l.core.ReplaceSegment(js.seg, js.newSize, &segFiles{})
	if err != nil {
		return l.fail(err)
	}
	l.retireFiles(old)
	return nil
}

// removeCleanedAway removes a segment none of whose records were kept.
func (l *Log) removeCleanedAway(js *jobSegment) error {
	b := js.base
	for _, n := range []string{indexPath(l.dir, b), timeIndexPath(l.dir, b), logPath(l.dir, b)} {
		if err := l.fs.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return l.fail(fmt.Errorf("segment: compaction removal of segment %d: %w", b, err))
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("segment: compaction removal of segment %d, sync folder: %w", b, err))
	}
	old, err := l.core.ReplaceSegment(js.seg, 0, nil)
	if err != nil {
		return l.fail(err)
	}
	l.retireFiles(old)
	return nil
}

// retireFiles closes a swapped-out segment's files, handing its open data
// file to the KeepDeletedDataFiles callback when there is one.
func (l *Log) retireFiles(old *Segment) {
	files := old.Handle.(*segFiles)
	if l.keepDeleted != nil && files.data != nil {
		data := files.data
		files.data = nil
		files.close()
		l.keepDeleted(old, data)
		return
	}
	files.close()
}

// removeCleaningLeftovers finishes or undoes the swaps a crash interrupted
// (see above), before the folder's segments are listed.
func (l *Log) removeCleaningLeftovers() error {
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	committed := make(map[string]bool) // segment name prefix -> B.log.swap exists
	for _, e := range ents {
		if base, ok := strings.CutSuffix(e.Name, logSuffix+swapSuffix); ok {
			committed[base] = true
		}
	}
	changed := false
	for _, e := range ents {
		name := e.Name
		var stem, kind string
		switch {
		case strings.HasSuffix(name, cleanedSuffix):
			stem, kind = strings.TrimSuffix(name, cleanedSuffix), cleanedSuffix
		case strings.HasSuffix(name, swapSuffix):
			stem, kind = strings.TrimSuffix(name, swapSuffix), swapSuffix
		default:
			continue
		}
		base, _, ok := parseSegmentName(stem)
		if !ok {
			continue
		}
		changed = true
		full := filepath.Join(l.dir, name)
		if kind == swapSuffix && committed[baseName(base)] {
			if err := l.fs.Rename(full, filepath.Join(l.dir, stem)); err != nil {
				return err
			}
			continue
		}
		// Uncommitted (or a .cleaned file left after its commit, which
		// the order of the steps rules out): the old files stand.
		if err := l.fs.Remove(full); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if changed {
		return l.fs.SyncDir(l.dir)
	}
	return nil
}
