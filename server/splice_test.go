package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// spanHandler answers each request, a list of (position, length) pairs
// as little-endian uint64s, with the request itself followed by those
// ranges of its file, spliced.
// With holds set, each answer's hold counts itself out there when
// released, and its release is checked to happen once.
type spanHandler struct {
	fd    int
	holds *holdCount
}

func (h spanHandler) Serve(sh *Shard, req *Request) {
	b := req.Message[lengthPrefixBytes:]
	var files []FileSpan
	for ; len(b) >= 16; b = b[16:] {
		files = append(files, FileSpan{FD: h.fd, Pos: int64(binary.LittleEndian.Uint64(b)), Len: int64(binary.LittleEndian.Uint64(b[8:]))})
	}
	var hold FileHold = noHold{}
	if h.holds != nil {
		h.holds.taken.Add(1)
		hold = &countedHold{count: h.holds}
	}
	sh.RespondFiles(req.Conn, req.Seq, req.Message, files, hold)
}

// holdCount counts the holds a spanHandler gave out and got back.
type holdCount struct{ taken, released, twice atomic.Int64 }

type countedHold struct {
	count *holdCount
	done  bool
}

func (h *countedHold) Release() {
	if h.done {
		h.count.twice.Add(1)
	}
	h.done = true
	h.count.released.Add(1)
}

// waitTaken waits until the handler has given out n holds (answered n
// requests).
func (c *holdCount) waitTaken(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.taken.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d answers given, want %d", c.taken.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitHolds waits until every hold given out was released, once.
func (c *holdCount) waitHolds(t *testing.T, taken int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.taken.Load() != taken || c.released.Load() != taken {
		if time.Now().After(deadline) {
			t.Fatalf("holds: %d taken (want %d), %d released", c.taken.Load(), taken, c.released.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if n := c.twice.Load(); n > 0 {
		t.Fatalf("%d holds released twice", n)
	}
}

func spanRequest(spans [][2]int64) []byte {
	var b []byte
	for _, s := range spans {
		b = binary.LittleEndian.AppendUint64(b, uint64(s[0]))
		b = binary.LittleEndian.AppendUint64(b, uint64(s[1]))
	}
	return frame(b)
}

// spanFile writes size bytes of a position-dependent pattern.
func spanFile(t *testing.T, size int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i ^ i>>8 ^ i>>16)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "spans"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f, data
}

// TestSpliceSpansByteForByte sends answers whose spans start and end off
// page boundaries, are larger and smaller than a pipe, and number more
// than one chain holds, several answers pipelined on one connection: each
// comes back whole and in order.
func TestSpliceSpansByteForByte(t *testing.T) {
	f, data := spanFile(t, 9<<20+12345)
	s := startServer(t, spanHandler{fd: int(f.Fd())}, 2)
	c := dial(t, s)
	var answers [][][2]int64
	for i := 0; i < 4; i++ {
		var spans [][2]int64
		pos := int64(i*977 + 3)
		for j := 0; j < 2*spliceChainPairsMax+3; j++ {
			n := int64((j*104729 + i*7919) % (3 << 20))
			if pos+n > int64(len(data)) {
				pos = int64(j * 4099 % 5000)
			}
			spans = append(spans, [2]int64{pos, n})
			pos += n + int64(j%3)*333
		}
		answers = append(answers, spans)
		if _, err := c.Write(spanRequest(spans)); err != nil {
			t.Fatal(err)
		}
	}
	for i, spans := range answers {
		msg, err := readFrame(c)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if !bytes.Equal(frame(msg), spanRequest(spans)) {
			t.Fatalf("answer %d: envelope is not its request's", i)
		}
		for j, sp := range spans {
			got := make([]byte, sp[1])
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("answer %d span %d: %v", i, j, err)
			}
			if !bytes.Equal(got, data[sp[0]:sp[0]+sp[1]]) {
				t.Fatalf("answer %d span %d (%d bytes at %d): bytes differ", i, j, sp[1], sp[0])
			}
		}
	}
}

// TestSpliceShortFileEndsOnlyItsConnection asks for a span running past
// the file's end: the connection gets the bytes the file has and is then
// closed, since its stream can no longer be framed; another connection is
// served throughout.
func TestSpliceShortFileEndsOnlyItsConnection(t *testing.T) {
	f, data := spanFile(t, 3<<20+100)
	s := startServer(t, spanHandler{fd: int(f.Fd())}, 1)
	bad, good := dial(t, s), dial(t, s)
	start := int64(1<<20 + 5)
	if _, err := bad.Write(spanRequest([][2]int64{{start, 4 << 20}})); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(bad); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(bad)
	if err != nil {
		t.Fatalf("reading to the close: %v", err)
	}
	if !bytes.Equal(rest, data[start:]) {
		t.Fatalf("got %d bytes before the close, want the file's %d from %d", len(rest), int64(len(data))-start, start)
	}
	// The chain stopped at the short file -> pipe splice and what that
	// moved went out by itself.
	if n := s.Shards()[0].Stats().SpliceChainsStopped.Load(); n != 1 {
		t.Fatalf("%d splice chains stopped, want 1", n)
	}
	req := spanRequest([][2]int64{{7, 1 << 20}})
	if _, err := good.Write(req); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(good); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1<<20)
	if _, err := io.ReadFull(good, got); err != nil || !bytes.Equal(got, data[7:7+1<<20]) {
		t.Fatalf("the other connection: %v", err)
	}
}

// noHold is the hold of files that outlive the test's server.
type noHold struct{}

func (noHold) Release() {}

// TestSpliceReleasesHoldsOnce checks that an answer's hold on its files is
// released once in every way an answer ends: sent whole; queued behind
// another answer when its connection closes; in the middle of splicing
// when its client goes away; and answered to a connection already gone.
// A hold released early would let a partition close segment files that
// chains still to be issued name by descriptor.
func TestSpliceReleasesHoldsOnce(t *testing.T) {
	f, data := spanFile(t, 8<<20)
	holds := &holdCount{}
	s := startServer(t, spanHandler{fd: int(f.Fd()), holds: holds}, 1)

	c := dial(t, s)
	if _, err := c.Write(spanRequest([][2]int64{{5, 3 << 20}})); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(c); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3<<20)
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data[5:5+3<<20]) {
		t.Fatalf("whole answer: %v", err)
	}
	holds.waitHolds(t, 1)

	// Two answers of 8 MiB each to a client that reads nothing: the
	// first stalls mid-splice on a full socket, the second waits its
	// turn. Closing the client ends both.
	stalled := dial(t, s)
	req := spanRequest([][2]int64{{0, 8 << 20}})
	if _, err := stalled.Write(append(append([]byte{}, req...), req...)); err != nil {
		t.Fatal(err)
	}
	holds.waitTaken(t, 3)
	if n := holds.released.Load(); n != 1 {
		t.Fatalf("%d holds released while their answers are unsent, want only the first answer's", n)
	}
	stalled.Close()
	holds.waitHolds(t, 3)
}

// lateHandler hands each request to the test, which answers it later.
type lateHandler chan Request

func (h lateHandler) Serve(sh *Shard, req *Request) { h <- Request{Conn: req.Conn, Seq: req.Seq} }

func TestSpliceReleasesHoldOfAnswerToClosedConnection(t *testing.T) {
	f, _ := spanFile(t, 1<<20)
	late := make(lateHandler, 1)
	s := startServer(t, late, 1)
	c := dial(t, s)
	if _, err := c.Write(frame([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	req := <-late
	c.Close()
	sh := s.Shards()[0]
	deadline := time.Now().Add(20 * time.Second)
	for sh.Stats().Closed.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the connection was not closed")
		}
		time.Sleep(time.Millisecond)
	}
	holds := &holdCount{}
	holds.taken.Add(1)
	hold := &countedHold{count: holds}
	if err := sh.Post(func(sh *Shard) {
		sh.RespondFiles(req.Conn, req.Seq, frame([]byte("y")), []FileSpan{{FD: int(f.Fd()), Len: 1 << 20}}, hold)
	}); err != nil {
		t.Fatal(err)
	}
	holds.waitHolds(t, 1)
}

// TestStopClosesConnectionsThatDoNotRead stops a server while a client
// that reads nothing has an answer stalled mid-splice and another queued:
// after the drain wait the stop closes that connection instead of waiting
// for ever, and the answers' holds are released.
func TestStopClosesConnectionsThatDoNotRead(t *testing.T) {
	f, _ := spanFile(t, 8<<20)
	holds := &holdCount{}
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: spanHandler{fd: int(f.Fd()), holds: holds},
		DrainWaitMax: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := spanRequest([][2]int64{{0, 8 << 20}})
	if _, err := c.Write(append(append([]byte{}, req...), req...)); err != nil {
		t.Fatal(err)
	}
	holds.waitTaken(t, 2)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	holds.waitHolds(t, 2)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the stalled connection was not closed: %v", err)
	}
}

// TestStalledReaderClosedAfterIdleMax: a client that stops reading in the
// middle of an answer makes no progress, and after the idle limit its
// connection is closed and the answer's hold on its files released,
// while the server keeps running.
func TestStalledReaderClosedAfterIdleMax(t *testing.T) {
	f, _ := spanFile(t, 8<<20)
	holds := &holdCount{}
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: spanHandler{fd: int(f.Fd()), holds: holds},
		ConnIdleMax: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	c := dial(t, s)
	if _, err := c.Write(spanRequest([][2]int64{{0, 8 << 20}})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Shards()[0].Stats().Closed.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled connection is still open")
		}
		time.Sleep(time.Millisecond)
	}
	holds.waitHolds(t, 1)
}
