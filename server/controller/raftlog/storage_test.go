package raftlog

import (
	"testing"

	"github.com/strata-db/strata/segment"

	pb "go.etcd.io/raft/v3/raftpb"
)

func ents(term, from, to uint64) []*pb.Entry {
	var out []*pb.Entry
	for i := from; i <= to; i++ {
		out = append(out, &pb.Entry{Term: new(term), Index: new(i), Type: pb.EntryNormal.Enum(), Data: []byte{byte(i), byte(term)}})
	}
	return out
}

func open(t *testing.T, fs segment.FS) *Storage {
	t.Helper()
	s, err := Open(Config{Dir: "/r", FS: fs, Voters: []uint64{1, 2, 3}, SegmentBytes: 512, IndexBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func expect(t *testing.T, s *Storage, first, last uint64, terms map[uint64]uint64) {
	t.Helper()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("range [%d, %d], want [%d, %d]", f, l, first, last)
	}
	for i, want := range terms {
		got, err := s.Term(i)
		if err != nil || got != want {
			t.Fatalf("term(%d) = %d, %v; want %d", i, got, err, want)
		}
	}
	es, err := s.Entries(first, last+1, 1<<30)
	if err != nil || uint64(len(es)) != last-first+1 {
		t.Fatalf("entries [%d, %d]: %d, %v", first, last, len(es), err)
	}
}

// The index/offset mapping survives truncation of conflicting entries,
// compaction and a snapshot that replaces the log, across crashes that
// keep only synced data.
func TestStorageSurvivesTruncateCompactSnapshotAndCrash(t *testing.T) {
	fs := segment.NewMemFS()
	s := open(t, fs)
	if err := s.Append(ents(1, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ents(2, 6, 8)); err != nil { // overwrite 6..10 with 6..8
		t.Fatal(err)
	}
	if err := s.SetHardState(&pb.HardState{Term: new(uint64(2)), Vote: new(uint64(1)), Commit: new(uint64(7))}); err != nil {
		t.Fatal(err)
	}
	fs.Crash()
	s = open(t, fs)
	expect(t, s, 1, 8, map[uint64]uint64{5: 1, 6: 2, 8: 2})
	if hs := s.HardState(); hs.GetCommit() != 7 || hs.GetVote() != 1 {
		t.Fatalf("hardstate %v", hs)
	}
	if _, err := s.CreateSnapshot(7, []byte("state@7")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ents(2, 9, 60)); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(7); err != nil {
		t.Fatal(err)
	}
	expect(t, s, 8, 60, map[uint64]uint64{7: 2, 60: 2})
	if start, _, segs := s.LogRange(); start == 0 || segs < 2 {
		t.Fatalf("log start %d, %d segments: want a compacted, multi-segment log", start, segs)
	}
	fs.Crash()
	s = open(t, fs)
	expect(t, s, 8, 60, map[uint64]uint64{7: 2, 60: 2})
	if err := s.Append(ents(3, 40, 41)); err != nil { // conflict after compaction
		t.Fatal(err)
	}
	fs.Crash()
	s = open(t, fs)
	expect(t, s, 8, 41, map[uint64]uint64{39: 2, 40: 3, 41: 3})
	snap := &pb.Snapshot{Data: []byte("state@100"), Metadata: &pb.SnapshotMetadata{
		Index: new(uint64(100)), Term: new(uint64(4)), ConfState: pb.EnsureConfState(&pb.ConfState{Voters: []uint64{1, 2, 3}}),
	}}
	if err := s.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ents(4, 101, 103)); err != nil {
		t.Fatal(err)
	}
	fs.Crash()
	s = open(t, fs)
	expect(t, s, 101, 103, map[uint64]uint64{100: 4, 103: 4})
	got, _ := s.Snapshot()
	if string(got.GetData()) != "state@100" {
		t.Fatalf("snapshot data %q", got.GetData())
	}
	if hs := s.HardState(); hs.GetCommit() != 100 {
		t.Fatalf("commit %d, want it raised to the snapshot index 100", hs.GetCommit())
	}
	s.Close()
}

func TestStorageRefusesOtherVotersAndCorruptFiles(t *testing.T) {
	fs := segment.NewMemFS()
	s := open(t, fs)
	s.Append(ents(1, 1, 3))
	s.CreateSnapshot(2, []byte("x"))
	s.Close()
	if _, err := Open(Config{Dir: "/r", FS: fs, Voters: []uint64{1, 2}}); err == nil {
		t.Fatal("opened with other voters than the snapshot's")
	}
	b, _ := fs.FileBytes("/r/snapshot")
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, err := decodeSnapshot(c); err == nil {
			t.Fatalf("decoded a snapshot with byte %d flipped", i)
		}
	}
	for n := range b {
		if _, err := decodeSnapshot(b[:n]); err == nil {
			t.Fatalf("decoded a snapshot cut to %d bytes", n)
		}
	}
}
