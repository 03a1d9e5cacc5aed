package raftlog

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Append makes entries durable: entries that conflict with the log (same
// index, so a new leader overwrote them) are cut off with segment.Log
// Truncate first, then each entry is appended as one frame and the log is
// synced once.
func (s *Storage) Append(entries []*pb.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	base := s.ents[0].GetIndex()
	for len(entries) > 0 && entries[0].GetIndex() <= base {
		entries = entries[1:] // already in the snapshot
	}
	if len(entries) == 0 {
		return nil
	}
	first := entries[0].GetIndex()
	if first > s.lastIndex()+1 {
		return fmt.Errorf("raftlog: append at %d leaves a gap after %d", first, s.lastIndex())
	}
	if first <= s.lastIndex() {
		if err := s.log.Truncate(s.offset(first)); err != nil {
			return fmt.Errorf("raftlog: truncate at index %d: %w", first, err)
		}
		s.ents = s.ents[: first-base : first-base]
	}
	if !s.hasDelta {
		s.delta, s.hasDelta = int64(first)-s.log.End(), true
	}
	for _, e := range entries {
		var err error
		if s.frame, err = appendEntryFrame(s.frame[:0], e); err != nil {
			return err
		}
		off, err := s.log.Append(s.frame)
		if err != nil {
			return fmt.Errorf("raftlog: append entry %d: %w", e.GetIndex(), err)
		}
		if off != s.offset(e.GetIndex()) {
			return fmt.Errorf("raftlog: entry %d landed at offset %d, want %d", e.GetIndex(), off, s.offset(e.GetIndex()))
		}
	}
	if err := s.log.Flush(); err != nil {
		return err
	}
	s.ents = append(s.ents, entries...)
	return nil
}

func (s *Storage) offset(index uint64) int64 { return int64(index) - s.delta }

// SetHardState makes hs durable, replacing the hardstate file when it
// changed.
func (s *Storage) SetHardState(hs *pb.HardState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if raft.IsEmptyHardState(hs) || proto.Equal(hs, s.hs) {
		return nil
	}
	if err := writeFileAtomic(s.fs, s.dir, hardStateName, encodeHardState(hs)); err != nil {
		return fmt.Errorf("raftlog: write hardstate: %w", err)
	}
	s.hs = proto.Clone(hs).(*pb.HardState)
	return nil
}

// ApplySnapshot installs a snapshot received from the leader: the snapshot
// file is replaced first, then the whole log is cut, since raft discards
// every entry when it restores a snapshot. A crash in between is repaired
// on open (the old log does not continue the snapshot and is cut).
func (s *Storage) ApplySnapshot(snap *pb.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := snap.GetMetadata().GetIndex()
	if idx <= s.snap.GetMetadata().GetIndex() {
		return raft.ErrSnapOutOfDate
	}
	if len(snap.GetData()) > MaxSnapshotDataBytes {
		return fmt.Errorf("raftlog: snapshot of %d bytes exceeds %d", len(snap.GetData()), MaxSnapshotDataBytes)
	}
	if err := writeFileAtomic(s.fs, s.dir, snapshotName, encodeSnapshot(snap)); err != nil {
		return fmt.Errorf("raftlog: write snapshot: %w", err)
	}
	s.snap = proto.Clone(snap).(*pb.Snapshot)
	if err := s.log.Truncate(s.log.LogStart()); err != nil {
		return fmt.Errorf("raftlog: discard log for snapshot %d: %w", idx, err)
	}
	s.hasDelta = false
	s.ents = []*pb.Entry{{Index: new(idx), Term: new(snap.GetMetadata().GetTerm())}}
	if s.hs.GetCommit() < idx {
		s.hs.Commit = new(idx)
	}
	return nil
}

// CreateSnapshot records data as the state after applying entry i and makes
// it durable. It does not compact; Compact does.
func (s *Storage) CreateSnapshot(i uint64, data []byte) (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i <= s.snap.GetMetadata().GetIndex() {
		return nil, raft.ErrSnapOutOfDate
	}
	if i > s.lastIndex() {
		return nil, fmt.Errorf("raftlog: snapshot at %d is past the last entry %d", i, s.lastIndex())
	}
	if len(data) > MaxSnapshotDataBytes {
		return nil, fmt.Errorf("raftlog: snapshot of %d bytes exceeds %d", len(data), MaxSnapshotDataBytes)
	}
	snap := &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{
		Index: new(i), Term: new(s.ents[i-s.ents[0].GetIndex()].GetTerm()),
		ConfState: proto.Clone(s.snap.GetMetadata().GetConfState()).(*pb.ConfState),
	}}
	if err := writeFileAtomic(s.fs, s.dir, snapshotName, encodeSnapshot(snap)); err != nil {
		return nil, fmt.Errorf("raftlog: write snapshot: %w", err)
	}
	s.snap = snap
	return snap, nil
}

// Compact drops the entries before i (keeping i's term), in memory and on
// disk, where the log start advances and wholly covered segments are
// deleted. i must not be past the snapshot, so that every dropped entry is
// in it.
func (s *Storage) Compact(i uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := s.ents[0].GetIndex()
	if i <= base {
		return raft.ErrCompacted
	}
	if si := s.snap.GetMetadata().GetIndex(); i > si {
		return fmt.Errorf("raftlog: compact to %d is past the snapshot at %d", i, si)
	}
	k := i - base
	ents := make([]*pb.Entry, 1, uint64(len(s.ents))-k)
	ents[0] = &pb.Entry{Index: new(i), Term: new(s.ents[k].GetTerm())}
	s.ents = append(ents, s.ents[k+1:]...)
	if s.hasDelta {
		if err := s.log.DeleteRecordsBefore(min(s.offset(i+1), s.log.End())); err != nil {
			return fmt.Errorf("raftlog: compact to %d: %w", i, err)
		}
	}
	return nil
}
