package segment

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-db/strata/schema"
)

// Compaction (cleanup.policy=compact) keeps the latest record of every key;
// see the package documentation for the format and the rules. A round has
// three steps, so that the long part runs off the thread that owns the log:
//
//	job, _ := l.PlanCompaction(cfg, nowMs, hw) // under the log's lock: what to clean
//	err := job.Build()                      // any goroutine: reads closed segments, writes .cleaned files
//	res, err := l.FinishCompaction(job)     // under the lock: the crash-safe swap
//
// Compact runs the three in a row.

// CompactionConfig holds a compacted topic's cleaner settings, with Kafka's
// names and defaults.
type CompactionConfig struct {
	// MinCleanableDirtyRatio (min.cleanable.dirty.ratio, 0.5): a round
	// runs when the dirty bytes (not yet cleaned) are at least this share
	// of the cleanable bytes.
	MinCleanableDirtyRatio float64
	// MinCompactionLagMs (min.compaction.lag.ms, 0): a segment whose
	// newest record is younger stays uncleaned, and so do those after it.
	MinCompactionLagMs int64
	// MaxCompactionLagMs (max.compaction.lag.ms, Unlimited): a round runs
	// whatever the ratio once the oldest dirty record is this old.
	MaxCompactionLagMs int64
	// DeleteRetentionMs (delete.retention.ms, 24 h): a tombstone stays
	// this long after the segment holding it was first cleaned whole.
	DeleteRetentionMs int64
	// OffsetMapBytes is the key map's budget (Kafka's dedupe buffer),
	// 24 bytes a key; a dirty section with more keys is cleaned over
	// several rounds. Zero means 16 MiB.
	OffsetMapBytes int64
	// IOBytesPerSecond throttles what a round reads and writes; zero
	// means no throttle.
	IOBytesPerSecond int64
	// Sleep is what the throttle waits with; time.Sleep by default.
	Sleep func(time.Duration)
}

const (
	minCleanableDirtyRatioDefault = 0.5
	deleteRetentionMsDefault      = 24 * 3600 * 1000
	offsetMapBytesDefault         = 16 << 20
)

func (c CompactionConfig) withDefaults() (CompactionConfig, error) {
	if c.MinCleanableDirtyRatio == 0 {
		c.MinCleanableDirtyRatio = minCleanableDirtyRatioDefault
	}
	if c.MaxCompactionLagMs == 0 {
		c.MaxCompactionLagMs = Unlimited
	}
	if c.DeleteRetentionMs == 0 {
		c.DeleteRetentionMs = deleteRetentionMsDefault
	}
	if c.OffsetMapBytes == 0 {
		c.OffsetMapBytes = offsetMapBytesDefault
	}
	if c.Sleep == nil {
		c.Sleep = time.Sleep
	}
	switch {
	case c.MinCleanableDirtyRatio < 0 || c.MinCleanableDirtyRatio > 1:
		return c, fmt.Errorf("segment: min.cleanable.dirty.ratio %v not in [0, 1]", c.MinCleanableDirtyRatio)
	case c.MinCompactionLagMs < 0:
		return c, fmt.Errorf("segment: min.compaction.lag.ms %d is negative", c.MinCompactionLagMs)
	case c.MaxCompactionLagMs < Unlimited || c.MaxCompactionLagMs == 0:
		return c, fmt.Errorf("segment: max.compaction.lag.ms %d is not positive", c.MaxCompactionLagMs)
	case c.MaxCompactionLagMs != Unlimited && c.MaxCompactionLagMs < c.MinCompactionLagMs:
		return c, fmt.Errorf("segment: max.compaction.lag.ms %d below min.compaction.lag.ms %d", c.MaxCompactionLagMs, c.MinCompactionLagMs)
	case c.DeleteRetentionMs < 0:
		return c, fmt.Errorf("segment: delete.retention.ms %d is negative", c.DeleteRetentionMs)
	case c.IOBytesPerSecond < 0:
		return c, fmt.Errorf("segment: cleaner I/O throttle %d bytes/s is negative", c.IOBytesPerSecond)
	}
	return c, nil
}

// ErrCompactionBusy: a compaction job is already planned and not finished.
var ErrCompactionBusy = errors.New("segment: a compaction round is already in progress")

// ErrCompactionStale: the log changed (truncation, retention, deletion)
// while the job was built; nothing was swapped, plan again.
var ErrCompactionStale = errors.New("segment: log changed while the compaction round was built")

// CompactionResult says what a round did.
type CompactionResult struct {
	FirstDirty        int64 // the dirty section started here
	CleanedUpTo       int64 // and the round cleaned it up to here
	Keys              int   // keys in the offset map
	SegmentsRewritten int
	SegmentsRemoved   int // segments none of whose records were kept
	RecordsRemoved    int64
	TombstonesRemoved int64
	BytesBefore       int64 // data bytes of the rewritten segments, before
	BytesAfter        int64 // and after
	BytesRead         int64
	BytesWritten      int64
	ThrottledFor      time.Duration
}

// CompactionJob is one planned round. Build may run on any goroutine; the
// job holds only the names and sizes of closed segments, whose files no
// one else writes, and touches none of the log's state.
type CompactionJob struct {
	l          *Log
	cfg        CompactionConfig
	nowMs      int64
	gen        uint64
	firstDirty int64
	segs       []jobSegment // candidates, oldest first: every closed, durable, lag-allowed segment
	mapEnd     int64
	built      bool
	buildErr   error
	res        CompactionResult
}

// jobSegment is a candidate segment as it was at planning.
type jobSegment struct {
	seg         *Segment
	base, next  int64 // next: its offset range's end (the next segment's base)
	size        int64
	cleanedAtMs int64 // 0: never cleaned whole
	// What Build made of it.
	outcome  cleanOutcome
	newSize  int64
	newMaxTs int64
	dropped  int64
	tombs    int64
}

type cleanOutcome uint8

const (
	outcomeUntouched cleanOutcome = iota // not reached by the map, or nothing to drop
	outcomeRewritten                     // its .cleaned files are ready
	outcomeRemoved                       // no record kept: the segment goes
)

// PlanCompaction decides whether a round is due and, if so, returns the
// job (nil, nil when none is). Only one job is planned at a time.
//
// upperOffset bounds what the round reads (pass the high watermark; -1
// for the log end): a record past it may still be truncated away (a
// follower's truncation to its leader's log), and a record the cleaner
// dropped because a later one superseded it must never come back without
// that later one. Only segments wholly below it are candidates.
func (l *Log) PlanCompaction(cfg CompactionConfig, nowMs, upperOffset int64) (*CompactionJob, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := newOffsetMap(cfg.OffsetMapBytes); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return nil, err
	}
	if l.compacting {
		return nil, ErrCompactionBusy
	}
	if err := l.loadCleanerState(); err != nil {
		return nil, err
	}
	c := l.core
	j := &CompactionJob{l: l, cfg: cfg, nowMs: nowMs, gen: c.gen}
	j.firstDirty = max(l.cleaner.firstDirty, c.segs[0].base)
	// Candidates: closed, wholly durable (a round never reads data that
	// a crash could still take back), and old enough for the lag; and no
	// more than the cleaner's checkpoint has entries for (each may need
	// one, see compact_state.go).
	entries := len(l.cleaner.cleanedAt)
	for _, s := range c.segs[:len(c.segs)-1] {
		if _, has := l.cleaner.cleanedAt[s.base]; !has {
			if entries >= cleanerEntriesMax {
				break
			}
			entries++
		}
		if s.next > c.recoveryPoint || (upperOffset >= 0 && s.next > upperOffset) ||
			(len(l.rolling) > 0 && s.base >= l.rolling[0].base) {
			break
		}
		if err := c.ensureIndex(s); err != nil {
			return nil, err
		}
		if cfg.MinCompactionLagMs > 0 && s.maxTsMs > nowMs-cfg.MinCompactionLagMs {
			break
		}
		j.segs = append(j.segs, jobSegment{seg: s, base: s.base, next: s.next, size: s.size,
			cleanedAtMs: l.cleaner.cleanedAt[s.base]})
	}
	var clean, dirty int64
	firstDirtyIdx := -1
	for i := range j.segs {
		if j.segs[i].next <= j.firstDirty {
			clean += j.segs[i].size
		} else {
			if firstDirtyIdx < 0 {
				firstDirtyIdx = i
			}
			dirty += j.segs[i].size
		}
	}
	if firstDirtyIdx < 0 || dirty == 0 {
		return nil, nil
	}
	due := float64(dirty) >= cfg.MinCleanableDirtyRatio*float64(clean+dirty)
	if !due && cfg.MaxCompactionLagMs != Unlimited {
		first, err := l.firstFrameTimestamp(j.segs[firstDirtyIdx].seg, j.firstDirty)
		if err != nil {
			return nil, err
		}
		due = first <= nowMs-cfg.MaxCompactionLagMs
	}
	if !due {
		return nil, nil
	}
	l.compacting = true
	return j, nil
}

// firstFrameTimestamp is the first timestamp of the first frame of s at
// or after offset: the oldest dirty record, for max.compaction.lag.ms.
func (l *Log) firstFrameTimestamp(s *Segment, offset int64) (int64, error) {
	if err := l.core.StartRead(&l.plan, max(offset, s.base), 1, -1); err != nil {
		return 0, err
	}
	spans, err := l.runPlan()
	if err != nil || len(spans) == 0 {
		return 0, err
	}
	f, err := l.dataFile(spans[0].Segment)
	if err != nil {
		return 0, err
	}
	if _, err := f.ReadAt(l.hdr[:], spans[0].Pos); err != nil {
		return 0, fmt.Errorf("%w: segment %d position %d: %v", ErrCorrupt, s.base, spans[0].Pos, err)
	}
	h, err := schema.ParseFrameHeader(l.hdr[:])
	if err != nil {
		return 0, err
	}
	return h.FirstTimestampMs, nil
}

// Compact plans, builds and finishes one round; it returns a zero result
// when none is due.
func (l *Log) Compact(cfg CompactionConfig, nowMs, upperOffset int64) (CompactionResult, error) {
	j, err := l.PlanCompaction(cfg, nowMs, upperOffset)
	if err != nil || j == nil {
		return CompactionResult{}, err
	}
	if err := j.Build(); err != nil {
		l.AbortCompaction(j)
		return CompactionResult{}, err
	}
	return l.FinishCompaction(j)
}
