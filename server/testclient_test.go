package server

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// testDeadline bounds every test request: each send moves the
// connection's deadline to testDeadline from then, so a long test of many
// requests on one connection (thousands of acks=all produces on a loaded
// machine under the race detector) is bounded per request, not as a whole.
var testDeadline = 60 * time.Second

// testClient speaks the wire protocol to a broker for tests: one request
// at a time, or many pipelined with send/recv.
type testClient struct {
	t    testing.TB
	conn net.Conn
	enc  *schema.Encoder
	corr int32
}

func newTestClient(t testing.TB, addr string) *testClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testDeadline))
	return &testClient{t: t, conn: c, enc: schema.NewEncoder()}
}

// send writes one request and returns its correlation id.
func (c *testClient) send(m *fb.MessageT) int32 {
	c.t.Helper()
	c.corr++
	b := c.enc.Encode(&schema.EnvelopeHeader{CorrelationID: c.corr, ClientID: "test"}, m)
	c.conn.SetDeadline(time.Now().Add(testDeadline))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
	return c.corr
}

// recv reads one answer: the envelope and, for a fetch, its trailing bytes.
func (c *testClient) recv() (*fb.EnvelopeT, []byte) {
	c.t.Helper()
	env, trailing, err := c.tryRecv()
	if err != nil {
		c.t.Fatal(err)
	}
	return env, trailing
}

func (c *testClient) tryRecv() (*fb.EnvelopeT, []byte, error) { return readAnswer(c.conn) }

// readAnswer reads one answer from r: the envelope and, for a fetch, its
// trailing bytes.
func readAnswer(r io.Reader) (*fb.EnvelopeT, []byte, error) {
	var p [4]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return nil, nil, err
	}
	n := binary.LittleEndian.Uint32(p[:])
	if n > schema.EnvelopeBytesMax {
		return nil, nil, fmt.Errorf("answer of %d bytes", n)
	}
	msg := make([]byte, 4+n)
	copy(msg, p[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, nil, err
	}
	var env schema.Envelope
	if err := env.DecodeResponse(msg); err != nil {
		return nil, nil, err
	}
	var trailing []byte
	if env.MessageType() == fb.MessageFetchResponse {
		fr, _ := env.FetchResponse()
		tb, err := schema.FetchTrailingBytes(&fr, 0)
		if err != nil {
			return nil, nil, err
		}
		trailing = make([]byte, tb)
		if _, err := io.ReadFull(r, trailing); err != nil {
			return nil, nil, err
		}
	}
	return env.UnPack(), trailing, nil
}

func (c *testClient) call(m *fb.MessageT) (*fb.EnvelopeT, []byte) {
	c.t.Helper()
	corr := c.send(m)
	env, tr := c.recv()
	if env.CorrelationId != corr {
		c.t.Fatalf("answer for correlation %d, want %d", env.CorrelationId, corr)
	}
	return env, tr
}

func (c *testClient) createTopic(name string, partitions int32, configs ...*fb.TopicConfigT) fb.ErrorCode {
	c.t.Helper()
	env, _ := c.call(&fb.MessageT{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{
		Topics: []*fb.CreatableTopicT{{Name: name, NumPartitions: partitions, ReplicationFactor: -1, Configs: configs}}}})
	r := env.Message.Value.(*fb.CreateTopicsResponseT)
	return r.Topics[0].ErrorCode
}

// batch builds a sealed frame of records "key-i" / "value-i" for i in
// [from, from+n).
func batch(t testing.TB, from, n int, tsMs int64) []byte {
	t.Helper()
	b, err := schema.NewBatchBuilder(schema.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		if err := b.Append(&schema.Record{Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte(fmt.Sprintf("value-%d", i)), TimestampMs: tsMs}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func produceMsg(acks fb.Acks, topic string, partition int32, frames []byte) *fb.MessageT {
	return &fb.MessageT{Type: fb.MessageProduceRequest, Value: &fb.ProduceRequestT{Acks: acks, Topics: []*fb.ProduceTopicT{
		{Name: topic, Partitions: []*fb.ProducePartitionT{{Partition: partition, Frames: frames}}}}}}
}

func fetchMsg(topic string, partition int32, offset int64, maxWaitMs, minBytes int32) *fb.MessageT {
	return &fb.MessageT{Type: fb.MessageFetchRequest, Value: &fb.FetchRequestT{ReplicaId: -1, MaxWaitMs: maxWaitMs, MinBytes: minBytes, MaxBytes: 64 << 20,
		Topics: []*fb.FetchTopicT{{Name: topic, Partitions: []*fb.FetchPartitionT{{Partition: partition, FetchOffset: offset, PartitionMaxBytes: 16 << 20, CurrentLeaderEpoch: -1, LogStartOffset: -1}}}}}}
}

// records decodes every record of the frames in b.
func records(t testing.TB, b []byte) []schema.RecordView {
	t.Helper()
	var out []schema.RecordView
	var br schema.BatchReader
	for len(b) > 0 {
		n, err := schema.PeekFrameLength(b, schema.MaxFrameBytes)
		if err != nil || n > len(b) {
			t.Fatalf("trailing bytes hold no whole frame: %v", err)
		}
		if err := br.Reset(b[:n]); err != nil {
			t.Fatal(err)
		}
		var v schema.RecordView
		for br.Next(&v) {
			out = append(out, schema.RecordView{Offset: v.Offset, TimestampMs: v.TimestampMs,
				Key: append([]byte(nil), v.Key...), Value: append([]byte(nil), v.Value...)})
		}
		b = b[n:]
	}
	return out
}
