package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/raft/v3/raftpb"
)

// After the handshake (handshake.go) each message travels as a
// length-prefixed frame; a frame of length 0 is a keepalive that carries
// no message, sent by a writer with nothing to say so that the reader's
// idle deadline does not close a healthy connection:
//
//	frame = length:u32 (little-endian) message:[length]   (protobuf raftpb.Message)
const (
	lengthBytes = 4
	// MaxMessageBytes bounds one message: a snapshot of the largest
	// metadata state plus room for the envelope.
	MaxMessageBytes = 1<<30 + 1<<20
	// readChunkBytes is how much buffer a read grows by at a time, so
	// that a peer announcing a huge length makes us allocate only as fast
	// as it actually sends bytes.
	readChunkBytes = 1 << 20
)

// appendMessage appends the frame of m to dst.
func appendMessage(dst []byte, m *pb.Message) ([]byte, error) {
	body, err := proto.Marshal(m)
	if err != nil {
		return dst, err
	}
	if len(body) > MaxMessageBytes {
		return dst, fmt.Errorf("transport: message of %d bytes exceeds %d", len(body), MaxMessageBytes)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...), nil
}

// appendKeepalive appends an empty frame to dst.
func appendKeepalive(dst []byte) []byte {
	return binary.LittleEndian.AppendUint32(dst, 0)
}

// readMessage reads one frame from r, refusing a length over maxBytes
// before reading the body. A keepalive returns no message and no error.
func readMessage(r *bufio.Reader, buf *bytes.Buffer, maxBytes int) (*pb.Message, error) {
	var hdr [lengthBytes]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int64(binary.LittleEndian.Uint32(hdr[:]))
	if n > int64(maxBytes) {
		return nil, fmt.Errorf("transport: message of %d bytes exceeds %d", n, maxBytes)
	}
	if n == 0 {
		return nil, nil
	}
	buf.Reset()
	for left := n; left > 0; {
		step := min(left, readChunkBytes)
		buf.Grow(int(step))
		if _, err := io.CopyN(buf, r, step); err != nil {
			return nil, err
		}
		left -= step
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(buf.Bytes(), m); err != nil {
		return nil, fmt.Errorf("transport: decode message: %w", err)
	}
	return m, nil
}
