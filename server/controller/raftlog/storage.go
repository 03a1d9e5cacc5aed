package raftlog

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"github.com/strata-db/strata/segment"
	"go.etcd.io/raft/v3"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Defaults for the segment log under the Raft log. Metadata entries are
// small and the log is compacted after every snapshot, so segments are far
// smaller than a data partition's.
const (
	DefaultSegmentBytes = 16 << 20
	DefaultIndexBytes   = 256 << 10
	// loadReadBytes is how much of the log one read on open fetches.
	loadReadBytes = 1 << 20
	logDirName    = "log"
)

// Config says where a voter's Raft state lives.
type Config struct {
	// Dir is the voter's folder; it is created if missing.
	Dir string
	// FS is the filesystem; segment.OSFS when nil.
	FS segment.FS
	// Voters is the static voter set, recorded in every snapshot. It must
	// match the voters of an existing snapshot.
	Voters []uint64
	// SegmentBytes and IndexBytes size the log's segments (defaults above).
	SegmentBytes int64
	IndexBytes   int64
}

// Storage is a voter's durable Raft state and implements raft.Storage.
// Writes (Append, SetHardState, ApplySnapshot, CreateSnapshot, Compact) are
// durable when they return. It is safe for concurrent use, though the node
// calls it from its one goroutine.
type Storage struct {
	mu    sync.Mutex
	fs    segment.FS
	dir   string
	log   *segment.Log
	hs    *pb.HardState
	snap  *pb.Snapshot
	voter []uint64
	// ents[0] is a placeholder holding the index and term of the entry
	// before the first one held; ents[1:] are the entries from FirstIndex.
	ents []*pb.Entry
	// delta maps indexes to log offsets (offset = index - delta) while
	// hasDelta; the log holds no entries of the current history otherwise.
	delta    int64
	hasDelta bool
	frame    []byte
}

var _ raft.Storage = (*Storage)(nil)

// Open opens (creating if needed) the Raft state in cfg.Dir.
func Open(cfg Config) (*Storage, error) {
	if cfg.FS == nil {
		cfg.FS = segment.OSFS{}
	}
	if cfg.SegmentBytes == 0 {
		cfg.SegmentBytes = DefaultSegmentBytes
	}
	if cfg.IndexBytes == 0 {
		cfg.IndexBytes = DefaultIndexBytes
	}
	if len(cfg.Voters) == 0 || len(cfg.Voters) > maxVoters {
		return nil, fmt.Errorf("raftlog: %d voters, want 1 to %d", len(cfg.Voters), maxVoters)
	}
	if err := cfg.FS.MkdirAll(cfg.Dir); err != nil {
		return nil, err
	}
	s := &Storage{fs: cfg.FS, dir: cfg.Dir, voter: slices.Clone(cfg.Voters)}
	slices.Sort(s.voter)
	if err := s.loadFiles(); err != nil {
		return nil, err
	}
	log, err := segment.Open(filepath.Join(cfg.Dir, logDirName), segment.Config{
		FS:             cfg.FS,
		SegmentBytes:   cfg.SegmentBytes,
		IndexBytes:     cfg.IndexBytes,
		SegmentMs:      segment.Unlimited,
		RetentionMs:    segment.Unlimited,
		RetentionBytes: segment.Unlimited,
		// The node syncs once per Ready (Append ends with a Flush), so
		// a Ready's entries share one fdatasync.
		Flush: segment.FlushNever,
	})
	if err != nil {
		return nil, err
	}
	s.log = log
	if err := s.loadLog(); err != nil {
		log.Close()
		return nil, err
	}
	return s, nil
}

// loadFiles reads the hardstate and snapshot files.
func (s *Storage) loadFiles() error {
	b, ok, err := readFileBounded(s.fs, s.dir, snapshotName, maxSnapshotFileBytes)
	if err != nil {
		return err
	}
	if ok {
		if s.snap, err = decodeSnapshot(b); err != nil {
			return err
		}
		got := slices.Sorted(slices.Values(s.snap.GetMetadata().GetConfState().GetVoters()))
		if !slices.Equal(got, s.voter) {
			return fmt.Errorf("raftlog: snapshot voters %v differ from configured voters %v (membership changes are not supported)", got, s.voter)
		}
	} else {
		s.snap = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			Index: new(uint64(0)), Term: new(uint64(0)),
			ConfState: pb.EnsureConfState(&pb.ConfState{Voters: slices.Clone(s.voter)}),
		}}
	}
	b, ok, err = readFileBounded(s.fs, s.dir, hardStateName, hardStateBytes)
	if err != nil {
		return err
	}
	s.hs = &pb.HardState{Term: new(uint64(0)), Vote: new(uint64(0)), Commit: new(uint64(0))}
	if ok {
		if s.hs, err = decodeHardState(b); err != nil {
			return err
		}
	}
	return nil
}

// loadLog reads every entry in the segment log and keeps those after the
// snapshot. A log that does not continue the snapshot (a crash between
// writing a snapshot from the leader and cutting the old log) is cut to
// empty, as raft itself discarded it.
func (s *Storage) loadLog() error {
	si, st := s.snap.GetMetadata().GetIndex(), s.snap.GetMetadata().GetTerm()
	s.ents = []*pb.Entry{{Index: new(si), Term: new(st)}}
	var ents []*pb.Entry
	var offsets []int64
	var buf []byte
	for off := s.log.LogStart(); off < s.log.End(); {
		spans, err := s.log.Read(off, loadReadBytes, -1)
		if err != nil {
			return err
		}
		if len(spans) == 0 {
			break
		}
		if buf, err = s.log.ReadSpans(buf[:0], spans); err != nil {
			return err
		}
		if ents, offsets, err = decodeEntryFrames(buf, ents, offsets); err != nil {
			return err
		}
		off = spans[len(spans)-1].NextOffset
	}
	for i := range ents {
		if i > 0 && (ents[i].GetIndex() != ents[i-1].GetIndex()+1 || ents[i].GetTerm() < ents[i-1].GetTerm()) {
			return fmt.Errorf("raftlog: entry %d (term %d) follows entry %d (term %d)",
				ents[i].GetIndex(), ents[i].GetTerm(), ents[i-1].GetIndex(), ents[i-1].GetTerm())
		}
	}
	if len(ents) > 0 {
		first, last := ents[0].GetIndex(), ents[len(ents)-1].GetIndex()
		joins := first <= si+1 && last >= si
		if joins && si >= first && ents[si-first].GetTerm() != st {
			joins = false
		}
		if !joins {
			if err := s.log.Truncate(s.log.LogStart()); err != nil {
				return err
			}
		} else {
			s.delta, s.hasDelta = int64(first)-offsets[0], true
			s.ents = append(s.ents, ents[si+1-first:]...)
		}
	}
	// The snapshot is committed by definition; a hardstate written before
	// it may lag behind.
	if s.hs.GetCommit() < si {
		s.hs.Commit = new(si)
	}
	if s.hs.GetCommit() > s.lastIndex() {
		return fmt.Errorf("raftlog: commit index %d is past the last entry %d", s.hs.GetCommit(), s.lastIndex())
	}
	return nil
}

// Close closes the segment log.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Close()
}

// InitialState implements raft.Storage.
func (s *Storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.hs).(*pb.HardState), proto.Clone(s.snap.GetMetadata().GetConfState()).(*pb.ConfState), nil
}

// HardState returns the last saved hard state.
func (s *Storage) HardState() *pb.HardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.hs).(*pb.HardState)
}

func (s *Storage) firstIndex() uint64 { return s.ents[0].GetIndex() + 1 }
func (s *Storage) lastIndex() uint64  { return s.ents[0].GetIndex() + uint64(len(s.ents)) - 1 }

// Entries implements raft.Storage.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo < s.firstIndex() {
		return nil, raft.ErrCompacted
	}
	if hi > s.lastIndex()+1 || lo > hi {
		return nil, raft.ErrUnavailable
	}
	base := s.ents[0].GetIndex()
	src := s.ents[lo-base : hi-base]
	out := make([]*pb.Entry, 0, len(src))
	var size uint64
	for _, e := range src {
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := s.ents[0].GetIndex()
	if i < base {
		return 0, raft.ErrCompacted
	}
	if i > s.lastIndex() {
		return 0, raft.ErrUnavailable
	}
	return s.ents[i-base].GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastIndex(), nil
}

// FirstIndex implements raft.Storage.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstIndex(), nil
}

// Snapshot implements raft.Storage.
func (s *Storage) Snapshot() (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, nil
}

// LogRange reports the segment log's start and end offsets and the number
// of segments, for tests and tools.
func (s *Storage) LogRange() (start, end int64, segments int) {
	return s.log.LogStart(), s.log.End(), len(s.log.SegmentBases())
}
