// Package raftlog is the durable storage of one controller voter's Raft
// state: it implements raft.Storage for go.etcd.io/raft/v3 over three things
// in one folder, all written through segment.FS so that tests can run on
// segment.MemFS and crash it.
//
//	dir/
//	  log/        a segment.Log: one frame per Raft entry, body = the entry
//	  hardstate   term, vote, commit; replaced atomically
//	  snapshot    index, term, voters, metadata state; replaced atomically
//
// The metadata log is a log like any other, so the Raft log is a
// segment.Log: each entry is one frame holding one record whose body is the
// protobuf encoding of the raftpb.Entry. Entry index and log offset differ
// by a constant (delta) for as long as the log holds entries: truncating
// conflicting entries (segment.Log.Truncate) and appending their
// replacements keeps offsets consecutive, and compaction
// (DeleteRecordsBefore) only moves the log start. When a snapshot from the
// leader replaces the whole log, the log is cut to empty and the next
// append fixes a new delta. On open the delta is read back from the first
// frame, since every body carries its own index.
//
// Reads are served from an in-memory copy of the entries after the latest
// snapshot (the metadata log is small and is snapshotted every few thousand
// entries), so raft's Storage calls never touch the disk.
package raftlog
