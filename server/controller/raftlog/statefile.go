package raftlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	pb "go.etcd.io/raft/v3/raftpb"
)

// The two small files, little-endian like the frame, each ending in a
// CRC32C of everything before it so that a torn or foreign file is refused:
//
//	hardstate = "STHS" version:u8 term:u64 vote:u64 commit:u64 crc:u32
//	snapshot  = "STSN" version:u8 index:u64 term:u64
//	            voters:u32 (id:u64)* dataLen:u64 data crc:u32
const (
	hardStateName   = "hardstate"
	snapshotName    = "snapshot"
	fileVersion     = 0
	hardStateBytes  = 4 + 1 + 8 + 8 + 8 + 4
	snapHeaderBytes = 4 + 1 + 8 + 8 + 4
	crcBytes        = 4
	// maxVoters bounds the voter list of a snapshot file; a controller
	// quorum has a handful of voters.
	maxVoters = 64
	// MaxSnapshotDataBytes bounds the state a snapshot carries (the
	// metadata package refuses larger snapshots too).
	MaxSnapshotDataBytes = 1 << 30
	maxSnapshotFileBytes = snapHeaderBytes + maxVoters*8 + 8 + MaxSnapshotDataBytes + crcBytes
)

var (
	hardStateMagic = [4]byte{'S', 'T', 'H', 'S'}
	snapshotMagic  = [4]byte{'S', 'T', 'S', 'N'}
	castagnoli     = crc32.MakeTable(crc32.Castagnoli)
)

func encodeHardState(hs *pb.HardState) []byte {
	b := make([]byte, 0, hardStateBytes)
	b = append(b, hardStateMagic[:]...)
	b = append(b, fileVersion)
	b = binary.LittleEndian.AppendUint64(b, hs.GetTerm())
	b = binary.LittleEndian.AppendUint64(b, hs.GetVote())
	b = binary.LittleEndian.AppendUint64(b, hs.GetCommit())
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeHardState(b []byte) (*pb.HardState, error) {
	if len(b) != hardStateBytes {
		return nil, fmt.Errorf("raftlog: hardstate is %d bytes, want %d", len(b), hardStateBytes)
	}
	if err := checkHeader(b, hardStateMagic); err != nil {
		return nil, fmt.Errorf("raftlog: hardstate: %w", err)
	}
	return &pb.HardState{
		Term:   new(binary.LittleEndian.Uint64(b[5:])),
		Vote:   new(binary.LittleEndian.Uint64(b[13:])),
		Commit: new(binary.LittleEndian.Uint64(b[21:])),
	}, nil
}

// checkHeader checks magic, version and the trailing CRC.
func checkHeader(b []byte, magic [4]byte) error {
	if len(b) < 5+crcBytes || !bytes.Equal(b[:4], magic[:]) {
		return fmt.Errorf("bad magic")
	}
	if b[4] != fileVersion {
		return fmt.Errorf("version %d, want %d", b[4], fileVersion)
	}
	body := b[:len(b)-crcBytes]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(body):]) {
		return fmt.Errorf("CRC mismatch")
	}
	return nil
}

func encodeSnapshot(s *pb.Snapshot) []byte {
	md := s.GetMetadata()
	voters := md.GetConfState().GetVoters()
	b := make([]byte, 0, snapHeaderBytes+8*len(voters)+8+len(s.GetData())+crcBytes)
	b = append(b, snapshotMagic[:]...)
	b = append(b, fileVersion)
	b = binary.LittleEndian.AppendUint64(b, md.GetIndex())
	b = binary.LittleEndian.AppendUint64(b, md.GetTerm())
	b = binary.LittleEndian.AppendUint32(b, uint32(len(voters)))
	for _, v := range voters {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s.GetData())))
	b = append(b, s.GetData()...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeSnapshot(b []byte) (*pb.Snapshot, error) {
	if len(b) < snapHeaderBytes+8+crcBytes {
		return nil, fmt.Errorf("raftlog: snapshot file of %d bytes is too short", len(b))
	}
	if err := checkHeader(b, snapshotMagic); err != nil {
		return nil, fmt.Errorf("raftlog: snapshot: %w", err)
	}
	body := b[5 : len(b)-crcBytes]
	index := binary.LittleEndian.Uint64(body)
	term := binary.LittleEndian.Uint64(body[8:])
	n := binary.LittleEndian.Uint32(body[16:])
	body = body[20:]
	if n > maxVoters || uint64(len(body)) < uint64(n)*8+8 {
		return nil, fmt.Errorf("raftlog: snapshot lists %d voters in %d bytes", n, len(body))
	}
	voters := make([]uint64, n)
	for i := range voters {
		voters[i] = binary.LittleEndian.Uint64(body[8*i:])
	}
	body = body[8*n:]
	dataLen := binary.LittleEndian.Uint64(body)
	body = body[8:]
	if dataLen != uint64(len(body)) {
		return nil, fmt.Errorf("raftlog: snapshot data length %d, file holds %d", dataLen, len(body))
	}
	return &pb.Snapshot{
		Data: bytes.Clone(body),
		Metadata: &pb.SnapshotMetadata{
			Index:     new(index),
			Term:      new(term),
			ConfState: pb.EnsureConfState(&pb.ConfState{Voters: voters}),
		},
	}, nil
}
