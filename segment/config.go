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
	// allocateStepBytesDefault is how far a segment's files grow at a time
	// (Redpanda's segment_fallocation_step): large enough that fallocate is
	// rare (once per 32 MiB of appends), small enough that an empty or
	// barely used partition does not hold a segment's worth of disk.
	allocateStepBytesDefault = 32 << 20
	// allocateStepBytesMin only has to be positive; a step below a
	// filesystem block still allocates whole blocks, and only costs more
	// fallocate calls. It is the smallest segment, so every segment size
	// can be grown in more than one step.
	allocateStepBytesMin = segmentBytesMin
	// indexAllocateAlignBytes rounds the allocated prefix of an index file
	// up to the largest page size Linux uses (64 KiB on arm64 and ppc64),
	// so that a store through the mapping never faults on a page whose
	// blocks are only partly allocated.
	indexAllocateAlignBytes = 64 << 10
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
	// SegmentBytes is the most data a segment holds: the log rolls to a
	// new segment before a frame would pass it.
	SegmentBytes int64
	// AllocateStepBytes is how far a segment's data file grows at a time:
	// before a write would pass the allocated end, the driver fallocates
	// the next steps (never past SegmentBytes), and the index files'
	// prefixes that entries for that much data can fill. Disk use follows
	// the data: an empty segment holds no blocks. Zero means 32 MiB, or
	// SegmentBytes if that is smaller; a value above SegmentBytes is
	// refused.
	AllocateStepBytes int64
	// SegmentMs rolls a non-empty segment whose first append is this old.
	SegmentMs int64
	// IndexIntervalBytes is how many data bytes lie between offset index
	// entries.
	IndexIntervalBytes int64
	// IndexBytes is the size of the offset index file (sparse: its blocks
	// are allocated with the data's steps); the time index has as many
	// entries. A full index rolls the segment.
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
	if c.AllocateStepBytes == 0 {
		c.AllocateStepBytes = min(allocateStepBytesDefault, c.SegmentBytes)
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
	case c.AllocateStepBytes < min(allocateStepBytesMin, c.SegmentBytes) || c.AllocateStepBytes > c.SegmentBytes:
		return c, fmt.Errorf("segment: AllocateStepBytes %d not in [%d, SegmentBytes %d]", c.AllocateStepBytes, min(allocateStepBytesMin, c.SegmentBytes), c.SegmentBytes)
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

// allocateEnd is the data end a segment's files are allocated to so that
// its data can reach end: whole steps, never past SegmentBytes. No data
// needs no blocks.
func (c *Config) allocateEnd(end int64) int64 {
	if end <= 0 {
		return 0
	}
	step := c.AllocateStepBytes
	return min((end+step-1)/step*step, max(c.SegmentBytes, end))
}

// indexAllocateBytes is the prefix of an index file with entries of
// entrySize bytes that the entries for dataEnd bytes of data can fill. An
// offset entry is made for a frame that starts at least
// IndexIntervalBytes past the last indexed one, and never for the frame at
// position 0; frames are at least a header long; so dataEnd bytes hold
// fewer than dataEnd/max(IndexIntervalBytes, FrameHeaderSize) offset
// entries. The time index has at most one entry per offset entry and the
// closing one. The prefix is aligned up to indexAllocateAlignBytes and
// never past the file.
func (c *Config) indexAllocateBytes(dataEnd int64, entrySize int) int64 {
	if dataEnd <= 0 {
		return 0
	}
	entries := dataEnd/max(c.IndexIntervalBytes, schema.FrameHeaderSize) + 2
	n := (entries*int64(entrySize) + indexAllocateAlignBytes - 1) / indexAllocateAlignBytes * indexAllocateAlignBytes
	return min(n, int64(c.indexEntries()*entrySize))
}

// maxFrameBytes is the largest new frame this log accepts: it must fit a
// segment.
func (c *Config) maxFrameBytes() int {
	return int(min(c.SegmentBytes, schema.MaxFrameBytes))
}

// frameBytesMax is the largest frame any segment may hold. A replicated
// frame may be larger than today's SegmentBytes (the topic lowered it
// after the leader wrote the frame); it goes alone into a segment of its
// own, which it makes larger than SegmentBytes (see ShouldRoll).
const frameBytesMax = min(segmentBytesMax, schema.MaxFrameBytes)
