package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// spanHandler answers each request, a list of (position, length) pairs
// as little-endian uint64s, with the request itself followed by those
// ranges of its file, spliced.
type spanHandler struct{ fd int }

func (h spanHandler) Serve(sh *Shard, req *Request) {
	b := req.Message[lengthPrefixBytes:]
	var files []FileSpan
	for ; len(b) >= 16; b = b[16:] {
		files = append(files, FileSpan{FD: h.fd, Pos: int64(binary.LittleEndian.Uint64(b)), Len: int64(binary.LittleEndian.Uint64(b[8:]))})
	}
	sh.RespondFiles(req.Conn, req.Seq, req.Message, files)
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
