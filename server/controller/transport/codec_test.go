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
