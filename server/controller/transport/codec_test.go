package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/raft/v3/raftpb"
)

func TestMessageRoundTripAndLengthBound(t *testing.T) {
	m := &pb.Message{Type: pb.MsgApp.Enum(), To: new(uint64(2)), From: new(uint64(1)), Term: new(uint64(3)),
		Entries: []*pb.Entry{{Index: new(uint64(7)), Term: new(uint64(3)), Data: []byte("batch")}}}
	b, err := appendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	got, err := readMessage(bufio.NewReader(bytes.NewReader(b)), &buf, MaxMessageBytes)
	if err != nil || !proto.Equal(got, m) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	// A length over the bound is refused before any body is read.
	huge := binary.LittleEndian.AppendUint32(nil, 1<<31)
	if _, err := readMessage(bufio.NewReader(bytes.NewReader(huge)), &buf, MaxMessageBytes); err == nil {
		t.Fatal("accepted a frame longer than the bound")
	}
	// A truncated body and garbage are errors, not panics.
	if _, err := readMessage(bufio.NewReader(bytes.NewReader(b[:len(b)-1])), &buf, MaxMessageBytes); err == nil {
		t.Fatal("accepted a truncated frame")
	}
	bad := binary.LittleEndian.AppendUint32(nil, 3)
	bad = append(bad, 0xff, 0xff, 0xff)
	if _, err := readMessage(bufio.NewReader(bytes.NewReader(bad)), &buf, MaxMessageBytes); err == nil {
		t.Fatal("accepted garbage")
	}
}

// FuzzReadMessage reads frames from arbitrary bytes as a connection's
// reader does after the handshake: no input panics, a frame over the
// bound is refused, and whatever decodes encodes back to a frame.
func FuzzReadMessage(f *testing.F) {
	good, _ := appendMessage(nil, &pb.Message{Type: pb.MsgApp.Enum(), To: new(uint64(2)), From: new(uint64(1)),
		Entries: []*pb.Entry{{Index: new(uint64(1)), Data: []byte("x")}}})
	f.Add(good)
	f.Add(appendKeepalive(good))
	f.Add(binary.LittleEndian.AppendUint32(nil, 1<<31))
	f.Add([]byte{3, 0, 0, 0, 0xff, 0xff, 0xff})
	const maxBytes = 1 << 16
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		var buf bytes.Buffer
		for {
			m, err := readMessage(r, &buf, maxBytes)
			if err != nil {
				return
			}
			if m == nil {
				continue
			}
			if _, err := appendMessage(nil, m); err != nil {
				t.Fatalf("decoded %v does not encode: %v", m, err)
			}
		}
	})
}
