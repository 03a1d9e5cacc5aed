// Package segment is one partition's log on disk: segments, their sparse
// indexes, recovery, retention, and the durability policy.
//
// A partition is a folder. Each segment is three files named by the
// segment's base offset (20 zero-padded digits), plus one checkpoint:
//
//	partition/
//	  00000000000000000000.log        frames, back to back, trimmed when closed
//	  00000000000000000000.index      offset index  (mapped, sparse)
//	  00000000000000000000.timeindex  time index    (mapped, sparse)
//	  00000000000000052311.log        the active segment, grown with
//	  00000000000000052311.index        fallocate in AllocateStepBytes steps
//	  00000000000000052311.timeindex
//	  recovery-point                  log start + recovery point, CRC32C
//	  leader-epoch.checkpoint         the leader epochs in the log, CRC32C
//	  cleaner.checkpoint              compaction's progress, CRC32C
//
//	.log:   +---------+---------+---------+-- ... --+---------+000000000000
//	        | frame   | frame   | frame   |         | frame   | zeros (rest
//	        | base=b  | b+n0    | b+n0+n1 |         |         | of the step)
//	        +---------+---------+---------+-- ... --+---------+000000000000
//	        ^0        ^p1                 ^p2
//	.index: (rel(b+n0), p1) (rel(..), p2) ...  one entry per IndexIntervalBytes
//	.timeindex: (maxTs so far, rel(offset after the frame)) at index points,
//	        and a closing entry covering the whole segment
//
//	leader-epoch.checkpoint (little-endian, replaced atomically like the
//	recovery point: temp file, fdatasync, rename, folder fsync):
//	 0      4        8       12             12+12n   16+12n
//	+------+--------+-------+-- n times ---+--------+
//	|magic |version | count | epoch | start| crc32c |   magic "STPE",
//	| u32  |  u32=1 |  u32  |  i32  |  i64 | [0,12+12n)  n <= EpochEntriesMax
//	+------+--------+-------+-------+------+--------+
//
// Leader epochs (epochs.go). Every frame carries the leader epoch it was
// written in. Append stamps the epoch SetLeaderEpoch set (0 until then)
// and refuses one below the latest in the log; AppendReplicated stores a
// follower's frame as the leader sent it, refused (nothing changed) unless
// its base offset is the log end and its epoch at least the latest. The
// log keeps (epoch, first offset) for each epoch it holds, epochs and
// offsets strictly increasing, every start below the end. The first frame
// of a newer epoch has the file replaced before the frame is written, so no
// durable frame's epoch is ever missing from it; a failure doing so takes
// the log offline like any failed write. Truncate, once the cut is durable,
// drops the entries at or past the new end; retention and
// DeleteRecordsBefore drop the entries wholly below the log start (the
// one covering it keeps its start). Open drops entries past the recovered
// end (frames a crash lost) and rewrites the file before anything can be
// appended; a missing or corrupt file with frames in the log is rebuilt by
// reading every frame's header from the log start (one 64-byte pread per
// frame, no body, no CRC: the slow path, bounded by the log's frames).
//
// Frames are the schema package's frames; this package only ever reads
// their 64-byte headers (and checks their CRC during recovery), except
// the cleaner, below, the one place that decodes and re-encodes them.
//
// Compaction (compact*.go; cleanup.policy=compact, or compact,delete
// with retention as well). A round keeps, in the closed segments it
// cleans, the latest record of every key; the active segment is never
// touched. It reads only segments that are closed, durable (below the
// recovery point), wholly below the upper offset its caller passes (the
// high watermark: a record a follower may still truncate must never
// supersede one) and older than min.compaction.lag.ms (the segment's
// newest record). It runs when the dirty bytes (segments from the first
// dirty offset on) are at least min.cleanable.dirty.ratio of the
// cleanable bytes, or when the oldest dirty record is older than
// max.compaction.lag.ms.
//
//   - The key map holds, for each key of the dirty section, the offset of
//     its latest record, as a 16-byte hash (SHA-256's first half) and an
//     8-byte offset in one table of a fixed byte budget (Kafka's dedupe
//     buffer), full at 90% of its slots. The map is filled a frame at a
//     time from the first dirty offset; when the next frame's records
//     might not fit, the round cleans up to there and the next round goes
//     on from there.
//
//   - Every candidate segment from the log's first up to the map's end is
//     filtered: a record is dropped when the map holds a later offset for
//     its key; a tombstone (null value) is also dropped once its segment
//     was first cleaned whole at least delete.retention.ms ago; a record
//     without a key is always kept (it has nothing to be superseded by;
//     Kafka refuses keyless records at produce for a compacted topic, and
//     the broker does the same).
//
//   - Offsets never change. A cleaned frame keeps its whole header (base
//     offset, leader epoch, attributes, record count, timestamps, producer
//     fields); it holds fewer records, each with its own offset and
//     timestamp deltas; its CRC is computed again. The record count stays
//     the frame's offset span. An uncompressed body that lost most of its
//     records is padded with an unreferenced zero vector up to that count
//     of bytes (the frame check bounds records by body bytes); an lz4 body
//     is recompressed with lz4, or, when that would be too short for its
//     record count, stored uncompressed with the codec bits cleared.
//
//   - A frame that keeps no record is dropped, so a cleaned segment skips
//     the offsets it held; a segment that keeps no frame is removed, its
//     offsets joining the segment before it (the first segment's moves
//     the log start). The offset index names real frame starts as before.
//     Only segments recorded as cleaned may skip offsets: elsewhere a
//     frame that does not start at the previous frame's next offset, or
//     frames that stop short of the next segment, are damage, as before.
//     Reads from a skipped offset start at the next frame kept; a
//     truncation at one cuts after the frames below it.
//
//   - Cleaned segments are written as B.log.cleaned, B.index.cleaned and
//     B.timeindex.cleaned (B the segment's base, unchanged), synced, then
//     swapped: the indexes renamed to .swap, folder fsync, B.log.cleaned
//     renamed to B.log.swap (the commit), folder fsync, the three .swap
//     files renamed over the old ones, folder fsync. Open finishes a swap
//     whose B.log.swap exists and undoes one whose does not, before it
//     lists the segments, so a crash at any step leaves the old segment
//     or the new one. A removed segment loses its indexes, then its data
//     file (the commit). The swapped-out segment's open data file goes to
//     the KeepDeletedDataFiles callback, so that answers still splicing
//     from it send the old bytes; its spans are stale for the log.
//
//   - A failed write or fdatasync of a cleaned file fails only the round:
//     its files are removed and the log is as it was. A failed rename or
//     folder fsync of the swap, or of the cleaner checkpoint, takes the
//     log offline (fail-stop): the folder's state is unknown until Open
//     resolves it.
//
//   - The cleaner's I/O can be throttled to a number of bytes a second.
//
//     cleaner.checkpoint (little-endian, replaced atomically like the
//     recovery point):
//     0      4        8            16      20             20+16n  24+16n
//     +------+--------+------------+-------+-- n times --+--------+
//     |magic |version | firstDirty | count | base | at   | crc32c |  "STCL",
//     | u32  |  u32=1 |    i64     |  u32  | i64  | i64  | [0,20+16n)
//     +------+--------+------------+-------+------+------+--------+
//
// firstDirty: every record below it was in a round's map. (base, at): the
// segment at base may skip offsets, and was first cleaned whole at time
// at (ms; 0: not yet). A round writes the file before its swaps, with an
// entry for every segment they may leave skipping offsets, and after
// them, with the new firstDirty and times; a truncation takes back what
// it cut. A file behind the swaps only makes the cleaner read again and
// keep tombstones longer.
//
// The package has two layers. Core is sans-IO, in the style of etcd raft: it
// decides where each frame goes (AppendPlan), what a read returns (ReadPlan,
// which asks for frame headers one at a time so any driver can fetch them),
// what a roll, truncation or retention removes, and what is durable; it makes
// no syscalls and has no clock. Log is the synchronous driver over a small FS
// interface, with OSFS (pwrite, fdatasync, fallocate, mmap) and MemFS, an
// in-memory filesystem that can simulate a crash. The broker drives the same
// Core from its io_uring shard loop; Segment.Handle carries the driver's open
// files so every span leads to a file descriptor and a position.
//
// Recovery on open lists the folder; closed segments wholly below the
// checkpointed recovery point are trusted (size from the directory listing,
// indexes mapped on first use); every other segment is walked frame by frame
// from its last index entry at or before the recovery point, checking length
// bounds, header, CRC and offset contiguity, and the log ends at the first
// frame that fails. The tail past it is cut and allocated again to the step
// that holds the data, so it reads as zeros and can never be mistaken for
// data. Segments grow in steps as data arrives (core_grow.go), so an empty
// partition holds almost no blocks.
//
// See docs/storage.md for the full description.
package segment
