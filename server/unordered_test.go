package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// modeHandler serves requests whose body is [mode byte][id u32][spans...]
// (spans from byte 8: position and length as little-endian uint64s) and
// answers each with the request itself, followed by its spans of fd:
//
//	'O' ordered, now    'P' ordered, parked
//	'U' unordered, now  'Q' unordered, parked
//
// Parked requests are answered by release, or on a tick once the shard
// drains. With answerNow set, parked modes are answered at once. Without
// a file (fd 0), what follows the id is padding.
type modeHandler struct {
	fd        int
	holds     *holdCount
	parked    []parkedReq // touched on the shard's thread only
	parkedN   atomic.Int64
	answerNow atomic.Bool
}

type parkedReq struct {
	ref   ConnRef
	seq   uint64
	msg   []byte
	files []FileSpan
}

func (h *modeHandler) Serve(sh *Shard, req *Request) {
	b := req.Message[lengthPrefixBytes:]
	mode := b[0]
	if mode == 'U' || mode == 'Q' {
		req.AnswerUnordered()
	}
	var files []FileSpan
	for s := b[8:]; h.fd > 0 && len(s) >= 16; s = s[16:] {
		files = append(files, FileSpan{FD: h.fd, Pos: int64(binary.LittleEndian.Uint64(s)), Len: int64(binary.LittleEndian.Uint64(s[8:]))})
	}
	p := parkedReq{ref: req.Conn, seq: req.Seq, msg: bytes.Clone(req.Message), files: files}
	if (mode == 'P' || mode == 'Q') && !h.answerNow.Load() {
		h.parked = append(h.parked, p)
		h.parkedN.Add(1)
		return
	}
	h.answer(sh, p)
}

func (h *modeHandler) answer(sh *Shard, p parkedReq) {
	h.holds.taken.Add(1)
	sh.RespondFiles(p.ref, p.seq, p.msg, p.files, &countedHold{count: h.holds})
}

// release answers every parked request, in the order they came.
func (h *modeHandler) release(sh *Shard) {
	parked := h.parked
	h.parked = nil
	h.parkedN.Store(0)
	for _, p := range parked {
		h.answer(sh, p)
	}
}

func (h *modeHandler) Tick(sh *Shard, nowMs int64) {
	if sh.Draining() {
		h.release(sh)
	}
}

func modeRequest(mode byte, id int, spans ...[2]int64) []byte {
	b := make([]byte, 8)
	b[0] = mode
	binary.LittleEndian.PutUint32(b[1:], uint32(id))
	for _, s := range spans {
		b = binary.LittleEndian.AppendUint64(b, uint64(s[0]))
		b = binary.LittleEndian.AppendUint64(b, uint64(s[1]))
	}
	return frame(b)
}

// readModeAnswer reads one answer: its envelope and the span bytes behind
// it, which must equal the file's. It returns the answer's mode and id.
func readModeAnswer(r io.Reader, file []byte) (byte, int, error) {
	env, err := readFrame(r)
	if err != nil {
		return 0, 0, err
	}
	if len(env) < 8 {
		return 0, 0, fmt.Errorf("answer of %d bytes", len(env))
	}
	mode, id := env[0], int(binary.LittleEndian.Uint32(env[1:]))
	for s := env[8:]; file != nil && len(s) >= 16; s = s[16:] {
		pos, n := binary.LittleEndian.Uint64(s), binary.LittleEndian.Uint64(s[8:])
		got := make([]byte, n)
		if _, err := io.ReadFull(r, got); err != nil {
			return 0, 0, err
		}
		if !bytes.Equal(got, file[pos:pos+n]) {
			return 0, 0, fmt.Errorf("answer %d (%c): span at %d of %d bytes differs: another answer's bytes inside it", id, mode, pos, n)
		}
	}
	return mode, id, nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestUnorderedAnswerOvertakesParked: behind a parked request, unordered
// answers go out at once while ordered ones keep waiting their turn; an
// unordered request parked holds back no ordered answer behind it.
func TestUnorderedAnswerOvertakesParked(t *testing.T) {
	h := &modeHandler{holds: &holdCount{}}
	s := startServer(t, h, 1)
	sh := s.Shards()[0]
	c := dial(t, s)
	expect := func(want ...int) {
		t.Helper()
		for _, w := range want {
			_, id, err := readModeAnswer(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if id != w {
				t.Fatalf("answer %d came where %d was due (want %v)", id, w, want)
			}
		}
	}
	var wire []byte
	for i, m := range []byte{'P', 'U', 'O', 'U'} {
		wire = append(wire, modeRequest(m, i)...)
	}
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	expect(1, 3)
	onShard(t, sh, h.release)
	expect(0, 2)

	wire = nil
	for i, m := range []byte{'Q', 'O', 'O'} {
		wire = append(wire, modeRequest(m, 4+i)...)
	}
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	expect(5, 6)
	onShard(t, sh, h.release)
	expect(4)
	h.holds.waitHolds(t, 7)
}

// TestUnorderedFileAnswersDoNotInterleave pipelines ordered and unordered
// answers with spliced file spans of several MiB (many chains each) on one
// connection: every answer arrives whole, its spans byte for byte right
// behind its envelope, and the ordered ones in order. Released late, the
// unordered ones all come while the ordered stream waits on a parked
// request; released at once, the two streams mix on the wire.
func TestUnorderedFileAnswersDoNotInterleave(t *testing.T) {
	for _, late := range []bool{true, false} {
		t.Run(fmt.Sprintf("release_late=%v", late), func(t *testing.T) {
			testUnorderedFileAnswers(t, late)
		})
	}
}

func testUnorderedFileAnswers(t *testing.T, releaseLate bool) {
	f, data := spanFile(t, 8<<20)
	h := &modeHandler{fd: int(f.Fd()), holds: &holdCount{}}
	s := startServer(t, h, 1)
	sh := s.Shards()[0]
	c := dial(t, s)
	const n = 60
	var wire []byte
	unordered := 0
	for i := range n {
		span := [2]int64{int64(i * 4099 % (4 << 20)), int64(1<<20 + i*12345)}
		switch i % 5 {
		case 0:
			wire = append(wire, modeRequest('P', i)...)
		case 1:
			wire = append(wire, modeRequest('U', i, span, [2]int64{7, 1000})...)
			unordered++
		case 2:
			wire = append(wire, modeRequest('O', i, span)...)
		case 3:
			wire = append(wire, modeRequest('U', i)...)
			unordered++
		case 4:
			wire = append(wire, modeRequest('O', i)...)
		}
	}
	werr := make(chan error, 1)
	go func() { _, err := c.Write(wire); werr <- err }()
	seen := map[int]bool{}
	read := 0
	if releaseLate {
		for range unordered {
			mode, id, err := readModeAnswer(c, data)
			if err != nil {
				t.Fatal(err)
			}
			if mode != 'U' || seen[id] {
				t.Fatalf("answer %d (%c) came while the ordered stream waits, or twice", id, mode)
			}
			seen[id] = true
			read++
		}
	}
	if releaseLate {
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the parked requests", func() bool { return h.parkedN.Load() == n/5 })
	onShard(t, sh, h.release)
	nextOrdered := 0
	for ; read < n; read++ {
		mode, id, err := readModeAnswer(c, data)
		if err != nil {
			t.Fatal(err)
		}
		if mode == 'U' {
			if seen[id] {
				t.Fatalf("unordered answer %d twice", id)
			}
			seen[id] = true
			continue
		}
		for nextOrdered%5 == 1 || nextOrdered%5 == 3 {
			nextOrdered++
		}
		if id != nextOrdered {
			t.Fatalf("ordered answer %d came where %d was due", id, nextOrdered)
		}
		nextOrdered++
	}
	if len(seen) != unordered {
		t.Fatalf("%d unordered answers, want %d", len(seen), unordered)
	}
	if !releaseLate {
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
	}
	h.holds.waitHolds(t, n)
}

// openConn finds the shard's one open accepted connection.
func openConn(sh *Shard) *conn {
	for _, c := range sh.conns {
		if c != nil && c.state == connOpen {
			return c
		}
	}
	return nil
}

// TestUnorderedCapPausesReceiving: a client that keeps unordered requests
// parked up to the cap gets no more of its requests served, and its
// receive pauses once it has buffered more; answering lets the rest in.
func TestUnorderedCapPausesReceiving(t *testing.T) {
	h := &modeHandler{holds: &holdCount{}}
	s := startServer(t, h, 1)
	sh := s.Shards()[0]
	c := dial(t, s)
	const extra = 300 // 300 KiB beyond the cap: more than pendingBytesMax
	total := unorderedPerConnMax + extra
	var wire []byte
	for i := range total {
		req := modeRequest('Q', i)
		req = append(req, make([]byte, 1024)...) // padding: the handler has no file
		binary.LittleEndian.PutUint32(req, uint32(len(req)-lengthPrefixBytes))
		wire = append(wire, req...)
	}
	werr := make(chan error, 1)
	go func() { _, err := c.Write(wire); werr <- err }()
	paused := false
	waitFor(t, "the receive to pause at the cap", func() bool {
		onShard(t, sh, func(sh *Shard) {
			if cn := openConn(sh); cn != nil {
				paused = cn.recvPaused
			}
		})
		return paused
	})
	if got := h.parkedN.Load(); got != unorderedPerConnMax {
		t.Fatalf("%d unordered requests served, want the cap %d", got, unorderedPerConnMax)
	}
	h.answerNow.Store(true)
	onShard(t, sh, h.release)
	seen := make([]bool, total)
	for range total {
		_, id, err := readModeAnswer(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if id >= total || seen[id] {
			t.Fatalf("answer %d out of range or twice", id)
		}
		seen[id] = true
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	h.holds.waitHolds(t, int64(total))
}

// TestUnorderedAnsweredBeforeDrainCloses: a stopping shard waits for a
// parked unordered request (which its handler answers once it sees the
// drain), sends the answer, then closes the connection and stops.
func TestUnorderedAnsweredBeforeDrainCloses(t *testing.T) {
	f, data := spanFile(t, 1<<20)
	h := &modeHandler{fd: int(f.Fd()), holds: &holdCount{}}
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 1, Handler: h, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	wire := append(modeRequest('Q', 0, [2]int64{100, 300_000}), modeRequest('O', 1)...)
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	if _, id, err := readModeAnswer(c, data); err != nil || id != 1 {
		t.Fatalf("ordered answer: %d, %v", id, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()
	if _, id, err := readModeAnswer(c, data); err != nil || id != 0 {
		t.Fatalf("unordered answer at the drain: %d, %v", id, err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after its last answer the connection gave %v, want EOF", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	h.holds.waitHolds(t, 2)
}
