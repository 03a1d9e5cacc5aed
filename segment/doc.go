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
// their 64-byte headers (and checks their CRC during recovery).
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
