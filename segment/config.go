package segment

import (
	"fmt"
	"math"
	"time"

	"github.com/strata-db/strata/schema"
)

// Limits and defaults. Positions are stored as uint32 in the offset index,
// so a segment can never be larger than segmentBytesMax.
const (
	segmentBytesDefault       = 1 << 30
	segmentBytesMax           = 1 << 31
	segmentBytesMin           = schema.FrameHeaderSize * 2
	segmentMsDefault          = 7 * 24 * 3600 * 1000
	indexIntervalBytesDefault = 4096
	indexBytesDefault         = 10 << 20
	indexEntriesMin           = 2
	retentionMsDefault        = 7 * 24 * 3600 * 1000
	relOffsetMax              = math.MaxUint32
)

// Unlimited switches off a retention bound or the age roll.
const Unlimited = -1

type flushKind uint8

const (
	flushEveryAck flushKind = iota
	flushInterval
	flushNever
)

// FlushPolicy says when appended data is made durable.
type FlushPolicy struct {
	kind       flushKind
	intervalMs int64
}

// FlushEveryAck makes every append durable (fdatasync) before it is
// acknowledged; concurrent appends share one sync (group commit). It is the
// zero value and the default.
var FlushEveryAck = FlushPolicy{kind: flushEveryAck}

// FlushNever leaves durability to the page cache and to replication; data is
// synced only on roll, on Flush and on Close.
var FlushNever = FlushPolicy{kind: flushNever}

// FlushIntervalMs syncs when an append finds the last sync at least n ms old.
func FlushIntervalMs(n int64) FlushPolicy { return FlushPolicy{kind: flushInterval, intervalMs: n} }

func (p FlushPolicy) String() string {
	switch p.kind {
	case flushEveryAck:
		return "every-ack"
	case flushInterval:
		return fmt.Sprintf("interval-%dms", p.intervalMs)
	default:
		return "never"
	}
}

// Config configures one partition's log. Zero fields take their defaults;
// Unlimited (-1) switches off SegmentMs, RetentionMs and RetentionBytes.
type Config struct {
	// SegmentBytes is the size each data file is preallocated to, and the
	// size at which the log rolls to a new segment.
	SegmentBytes int64
	// SegmentMs rolls a non-empty segment whose first append is this old.
	SegmentMs int64
	// IndexIntervalBytes is how many data bytes lie between offset index
	// entries.
	IndexIntervalBytes int64
	// IndexBytes is the preallocated size of the offset index file; the
	// time index has as many entries. A full index rolls the segment.
	IndexBytes int64
	// RetentionMs deletes closed segments whose newest timestamp is older.
	RetentionMs int64
	// RetentionBytes deletes the oldest closed segments while the log is
	// larger.
	RetentionBytes int64
	Flush          FlushPolicy
	// FS is the filesystem the synchronous driver uses; OSFS by default.
	FS FS
	// NowMs is the clock of the synchronous driver (the core has none). It
	// defaults to the wall clock.
	NowMs func() int64
}

func (c Config) withDefaults() (Config, error) {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = segmentBytesDefault
	}
	if c.SegmentMs == 0 {
		c.SegmentMs = segmentMsDefault
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = indexIntervalBytesDefault
	}
	if c.IndexBytes == 0 {
		c.IndexBytes = indexBytesDefault
	}
	if c.RetentionMs == 0 {
		c.RetentionMs = retentionMsDefault
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = Unlimited
	}
	if c.FS == nil {
		c.FS = OSFS{}
	}
	if c.NowMs == nil {
		c.NowMs = func() int64 { return time.Now().UnixMilli() }
	}
	switch {
	case c.SegmentBytes < segmentBytesMin || c.SegmentBytes > segmentBytesMax:
		return c, fmt.Errorf("segment: SegmentBytes %d not in [%d, %d]", c.SegmentBytes, segmentBytesMin, segmentBytesMax)
	case c.SegmentMs < Unlimited:
		return c, fmt.Errorf("segment: SegmentMs %d is negative", c.SegmentMs)
	case c.IndexIntervalBytes < 1:
		return c, fmt.Errorf("segment: IndexIntervalBytes %d is not positive", c.IndexIntervalBytes)
	case c.IndexBytes < indexEntriesMin*offsetEntrySize || c.IndexBytes > segmentBytesMax:
		return c, fmt.Errorf("segment: IndexBytes %d not in [%d, %d]", c.IndexBytes, indexEntriesMin*offsetEntrySize, segmentBytesMax)
	case c.RetentionMs < Unlimited, c.RetentionBytes < Unlimited:
		return c, fmt.Errorf("segment: retention %d ms / %d bytes is negative", c.RetentionMs, c.RetentionBytes)
	case c.Flush.kind == flushInterval && c.Flush.intervalMs < 0:
		return c, fmt.Errorf("segment: flush interval %d ms is negative", c.Flush.intervalMs)
	}
	return c, nil
}

// indexEntries is how many entries each index file of a segment holds.
func (c *Config) indexEntries() int { return int(c.IndexBytes / offsetEntrySize) }

// maxFrameBytes is the largest frame this log accepts: it must fit a segment.
func (c *Config) maxFrameBytes() int {
	return int(min(c.SegmentBytes, schema.MaxFrameBytes))
}
