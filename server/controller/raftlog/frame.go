package raftlog

import (
	"fmt"

	"github.com/strata-db/strata/schema"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/raft/v3/raftpb"
)

// MaxEntryBytes bounds one encoded Raft entry: it must fit one frame.
const MaxEntryBytes = schema.MaxFrameBytes - schema.FrameHeaderSize

// appendEntryFrame appends one frame holding entry as its single record:
// the 64-byte header, then the protobuf encoding of the entry as the body.
// The segment log patches the base offset on append.
func appendEntryFrame(dst []byte, e *pb.Entry) ([]byte, error) {
	body, err := proto.Marshal(e)
	if err != nil {
		return dst, fmt.Errorf("raftlog: encode entry %d: %w", e.GetIndex(), err)
	}
	if len(body) == 0 || len(body) > MaxEntryBytes {
		return dst, fmt.Errorf("raftlog: entry %d encodes to %d bytes, not in [1, %d]", e.GetIndex(), len(body), MaxEntryBytes)
	}
	start := len(dst)
	dst = schema.AppendFrameHeader(dst, &schema.FrameHeader{RecordCount: 1}, len(body))
	dst = append(dst, body...)
	schema.SealFrame(dst[start:])
	return dst, nil
}

// decodeEntryFrames decodes the checked frames in b (as ReadSpans returns
// them), each one entry, appending the entries and their offsets.
func decodeEntryFrames(b []byte, ents []*pb.Entry, offsets []int64) ([]*pb.Entry, []int64, error) {
	for len(b) > 0 {
		h, err := schema.CheckFrame(b)
		if err != nil {
			return ents, offsets, fmt.Errorf("raftlog: %w", err)
		}
		if h.RecordCount != 1 {
			return ents, offsets, fmt.Errorf("raftlog: frame at offset %d holds %d records, want 1", h.BaseOffset, h.RecordCount)
		}
		e := &pb.Entry{}
		if err := proto.Unmarshal(b[schema.FrameHeaderSize:h.Length], e); err != nil {
			return ents, offsets, fmt.Errorf("raftlog: entry at offset %d: %w", h.BaseOffset, err)
		}
		ents = append(ents, e)
		offsets = append(offsets, h.BaseOffset)
		b = b[h.Length:]
	}
	return ents, offsets, nil
}
