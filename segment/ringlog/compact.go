package ringlog

import (
	"github.com/strata-db/strata/segment"
)

// Compaction on the ring. Planning and the swap change the log's segments
// and run on the shard's thread like retention (synchronously: a few
// renames and folder fsyncs per cleaned segment); the long part, Build,
// which reads closed segments and writes the cleaned files through its
// own descriptors, runs on any goroutine, while the shard goes on
// appending and serving:
//
//	job, err := l.PlanCompaction(cfg, nowMs, highWatermark) // shard
//	go func() { done <- job.Build() }()                    // elsewhere
//	res, err := l.FinishCompaction(job)                    // shard, after Build returned
//
// A retention pass, deletion or truncation while Build runs makes
// FinishCompaction refuse with segment.ErrCompactionStale (plan again).
// The data files of swapped-out segments go to the KeepDeletedDataFiles
// callback, like those of deleted segments, so answers still splicing from
// them send the old bytes.

// PlanCompaction plans a compaction round (segment.Log.PlanCompaction);
// nil when none is due.
func (l *Log) PlanCompaction(cfg segment.CompactionConfig, nowMs, highWatermark int64) (*segment.CompactionJob, error) {
	if err := l.usable(); err != nil {
		return nil, err
	}
	j, err := l.sync.PlanCompaction(cfg, nowMs, highWatermark)
	return j, l.storageFailed(err)
}

// FinishCompaction swaps in what the job's Build cleaned
// (segment.Log.FinishCompaction). It refuses with ErrBusy, keeping the
// job, while a roll's syncs are in flight, as retention does; the frame
// table drops the frames of the segments it replaced.
func (l *Log) FinishCompaction(j *segment.CompactionJob) (segment.CompactionResult, error) {
	if err := l.usable(); err != nil {
		l.sync.AbortCompaction(j)
		return segment.CompactionResult{}, err
	}
	if l.rollSyncInFlight() {
		return segment.CompactionResult{}, ErrBusy
	}
	res, err := l.sync.FinishCompaction(j)
	l.hot.dropRetired()
	l.hot.trim(l.core.LogStart())
	return res, l.storageFailed(err)
}

// AbortCompaction drops a planned job and its cleaned files.
func (l *Log) AbortCompaction(j *segment.CompactionJob) { l.sync.AbortCompaction(j) }

// dropRetired drops the frames of segments the cleaner replaced, and
// every frame before them (the table stays contiguous in offsets): only
// closed segments are cleaned, so this drops no frame of the active one.
func (t *hotTable) dropRetired() {
	last := -1
	for i := 0; i < t.n; i++ {
		if t.at(i).seg.Retired() {
			last = i
		}
	}
	for ; last >= 0; last-- {
		*t.at(0) = hotFrame{}
		t.first++
		t.n--
	}
}
