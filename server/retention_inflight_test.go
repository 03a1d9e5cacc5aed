package server

import (
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

const (
	// inFlightRetentionBytes is the in-flight test's retention.bytes, and
	// what its stalled answer asks for: more than loopback socket buffers
	// and a splice pipe hold, so most of its spans wait in the broker.
	inFlightRetentionBytes = 24 << 20
	// inFlightReadBufferBytes is the stalled reader's socket receive
	// buffer, kept small so that the answer stalls in the broker.
	inFlightReadBufferBytes = 64 << 10
	// inFlightConnections are the connections opened while the answer
	// stalls: descriptors that would take the numbers of segment files
	// closed too early.
	inFlightConnections = 20
)

// TestRetentionServesAnswersInFlight stalls a fetch answer of the oldest
// 24 MiB of a topic (retention.bytes 24 MiB, 1 MiB segments) on a reader
// that reads its envelope only, then feeds 28 MiB more, so that retention
// deletes every segment the answer's spans lie in while they wait to be
// sent: the segments' files leave the folder at once, the log start moves
// past the answer, and their data files stay open (unlinked) while the
// answer holds them. New descriptors are opened meanwhile (new segments,
// connections). The stalled answer then arrives whole, byte for byte, and
// the deleted files close once it is done, although a consumer reads the
// partition all the while (holds are per segment, so reads of the live
// segments do not keep deleted ones open).
func TestRetentionServesAnswersInFlight(t *testing.T) {
	dir := t.TempDir()
	b := startRetentionBroker(t, dir)
	addr := b.Addr().String()
	c := newTestClient(t, addr)
	if code := c.createTopic("held", 1, topicConfigs("segment.bytes="+strconv.Itoa(retentionSegmentBytes),
		"retention.bytes="+strconv.Itoa(inFlightRetentionBytes))...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	f := &feeder{t: t, c: c, topic: "held"}
	f.feed(inFlightRetentionBytes-retentionSegmentBytes, nowMs())
	partDir := partitionDir(dir, "held", 0)
	oldest, _ := partitionFiles(t, partDir)
	if logStart(t, c, "held") != 0 || len(oldest) < 2 {
		t.Fatalf("before the stall: log start %d, segments %v", logStart(t, c, "held"), oldest)
	}

	reader := newTestClient(t, addr)
	if err := reader.conn.(*net.TCPConn).SetReadBuffer(inFlightReadBufferBytes); err != nil {
		t.Fatal(err)
	}
	m := fetchMsg("held", 0, 0, 0, 0)
	m.Value.(*fb.FetchRequestT).Topics[0].Partitions[0].PartitionMaxBytes = inFlightRetentionBytes
	reader.send(m)
	fr, trailingBytes := readEnvelopeOnly(t, reader)
	var part fb.FetchPartitionResponse
	var topic fb.FetchTopicResponse
	fr.Topics(&topic, 0)
	topic.Partitions(&part, 0)
	answerEnd := part.NextFetchOffset()
	if part.ErrorCode() != fb.ErrorCodeNone || answerEnd <= 0 {
		t.Fatalf("stalled answer: %v, next offset %d", part.ErrorCode(), answerEnd)
	}

	consumerStop := make(chan struct{})
	consumed := make(chan consumerReport, 1)
	go consumeFromOldest(addr, "held", consumerStop, consumed)
	defer func() {
		select {
		case <-consumerStop:
		default:
			close(consumerStop)
		}
	}()

	// Retention deletes every segment the answer lies in.
	f.feed(inFlightRetentionBytes+4*retentionSegmentBytes, nowMs())
	deadline := time.Now().Add(retentionWait)
	for logStart(t, c, "held") < answerEnd {
		if time.Now().After(deadline) {
			t.Fatalf("log start %d, still below the stalled answer's end %d", logStart(t, c, "held"), answerEnd)
		}
		time.Sleep(retentionPoll)
	}
	now, _ := partitionFiles(t, partDir)
	for _, name := range oldest {
		if slices.Contains(now, name) {
			t.Fatalf("segment %s is still in the folder after retention deleted it", name)
		}
	}
	if n := deletedFilesOpen(t, partDir); n == 0 {
		t.Fatal("no deleted segment file is open while an answer from it stalls: it was closed under the answer")
	}
	for i := 0; i < inFlightConnections; i++ {
		newTestClient(t, addr).call(&fb.MessageT{Type: fb.MessageApiVersionsRequest, Value: &fb.ApiVersionsRequestT{}})
	}
	f.feed(2*retentionSegmentBytes, nowMs()) // more segments: new files

	trailing := make([]byte, trailingBytes)
	if _, err := io.ReadFull(reader.conn, trailing); err != nil {
		t.Fatalf("the stalled answer after retention: %v", err)
	}
	next, err := checkAnswer(0, trailing)
	if err != nil {
		t.Fatalf("the stalled answer after retention: %v", err)
	}
	if next != answerEnd {
		t.Fatalf("the stalled answer holds offsets to %d, its envelope says %d", next, answerEnd)
	}

	// The consumer keeps reading the live segments; the deleted ones
	// close all the same.
	for deletedFilesOpen(t, partDir) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d deleted segment files still open after the answer that held them", deletedFilesOpen(t, partDir))
		}
		time.Sleep(retentionPoll)
	}
	close(consumerStop)
	if rep := <-consumed; rep.err != nil {
		t.Fatal(rep.err)
	}
}

// readEnvelopeOnly reads a fetch answer's envelope and leaves its frames
// in the socket; it returns the answer and how many bytes of frames follow.
func readEnvelopeOnly(t *testing.T, c *testClient) (*fb.FetchResponse, int64) {
	t.Helper()
	var prefix [4]byte
	if _, err := io.ReadFull(c.conn, prefix[:]); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 4+binary.LittleEndian.Uint32(prefix[:]))
	copy(msg, prefix[:])
	if _, err := io.ReadFull(c.conn, msg[4:]); err != nil {
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
	n, err := schema.FetchTrailingBytes(&fr, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &fr, int64(n)
}
