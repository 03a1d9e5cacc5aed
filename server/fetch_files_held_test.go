package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// TestDeletedTopicServesFetchInFlight deletes a topic while a fetch
// answer from it is stalled mid-splice on a client that is not reading,
// then makes the broker open new descriptors (connections, another
// topic's segments). The stalled answer still arrives whole and byte for
// byte: the partition closes its segment files only once the answer is
// done, and its folder goes then. Created again, the topic is served.
func TestDeletedTopicServesFetchInFlight(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, 2)
	t.Cleanup(func() { b.Stop() }) // after the clients close (cleanups run last first)
	addr := b.Addr().String()
	admin := newTestClient(t, addr)
	if code := admin.createTopic("doomed", 1); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	// 24 MiB of records, more than loopback socket buffers hold.
	const frames, perFrame, valueBytes = 30, 200, 4 << 10
	var want [][]byte
	for f := 0; f < frames; f++ {
		bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perFrame; i++ {
			v := bytes.Repeat([]byte{byte(len(want))}, valueBytes)
			binary.LittleEndian.PutUint64(v, uint64(len(want)))
			want = append(want, v)
			if err := bb.Append(&schema.Record{Value: v}); err != nil {
				t.Fatal(err)
			}
		}
		frame, err := bb.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		env, _ := admin.call(produceMsg(fb.AcksAll, "doomed", 0, frame))
		if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("produce: %v", r.ErrorCode)
		}
	}

	reader := newTestClient(t, addr)
	m := fetchMsg("doomed", 0, 0, 0, 0)
	m.Value.(*fb.FetchRequestT).Topics[0].Partitions[0].PartitionMaxBytes = 64 << 20
	reader.send(m)
	// Read the envelope only: the spans stall in the socket behind it.
	var prefix [4]byte
	if _, err := io.ReadFull(reader.conn, prefix[:]); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 4+binary.LittleEndian.Uint32(prefix[:]))
	copy(msg, prefix[:])
	if _, err := io.ReadFull(reader.conn, msg[4:]); err != nil {
		t.Fatal(err)
	}
	var env schema.Envelope
	if err := env.DecodeResponse(msg); err != nil {
		t.Fatal(err)
	}
	fr, err := env.FetchResponse()
	if err != nil {
		t.Fatal(err)
	}
	trailingBytes, err := schema.FetchTrailingBytes(&fr, 0)
	if err != nil {
		t.Fatal(err)
	}

	denv, _ := admin.call(&fb.MessageT{Type: fb.MessageDeleteTopicsRequest, Value: &fb.DeleteTopicsRequestT{TopicNames: []string{"doomed"}}})
	if code := denv.Message.Value.(*fb.DeleteTopicsResponseT).Topics[0].ErrorCode; code != fb.ErrorCodeNone {
		t.Fatalf("delete: %v", code)
	}
	// New descriptors, which would take the numbers of closed segment
	// files: connections, and the files of another topic's log.
	for i := 0; i < 20; i++ {
		newTestClient(t, addr).call(&fb.MessageT{Type: fb.MessageApiVersionsRequest, Value: &fb.ApiVersionsRequestT{}})
	}
	if code := admin.createTopic("bystander", 4); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	for p := int32(0); p < 4; p++ {
		admin.call(produceMsg(fb.AcksAll, "bystander", p, batch(t, 0, 10, 1)))
	}
	partDir := partitionDir(dir, "doomed", 0)
	if _, err := os.Stat(partDir); err != nil {
		t.Fatalf("the deleted partition's folder went while a fetch still sends from it: %v", err)
	}

	trailing := make([]byte, trailingBytes)
	if _, err := io.ReadFull(reader.conn, trailing); err != nil {
		t.Fatalf("the stalled answer after the deletion: %v", err)
	}
	got := records(t, trailing)
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Offset != int64(i) || !bytes.Equal(r.Value, want[i]) {
			t.Fatalf("record %d: offset %d, value differs", i, r.Offset)
		}
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(partDir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleted partition's folder is still there after its last fetch")
		}
		time.Sleep(5 * time.Millisecond)
	}

	if code := admin.createTopic("doomed", 1); code != fb.ErrorCodeNone {
		t.Fatalf("create again: %v", code)
	}
	for {
		env, _ := admin.call(produceMsg(fb.AcksAll, "doomed", 0, batch(t, 0, 1, 1)))
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode == fb.ErrorCodeNone {
			if r.BaseOffset != 0 {
				t.Fatalf("the topic created again starts at %d", r.BaseOffset)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce to the topic created again: %v", r.ErrorCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
