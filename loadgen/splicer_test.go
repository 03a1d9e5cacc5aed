package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The splicer moves exactly the asked ranges of the file, in order: chunks
// larger than its pipe, starting off page boundaries, back to back.
func TestSplicerSendsTheFileByteForByte(t *testing.T) {
	data := make([]byte, 7<<20+333)
	for i := range data {
		data[i] = byte(i ^ i>>9 ^ i>>17)
	}
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	accepted, dialed, err := loopbackPair(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	defer dialed.Close()
	s, err := newSplicer(accepted, int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{1, 4095, 3 << 20, 100_000, 1 << 20, 2<<20 - 7}
	var want []byte
	for _, n := range sizes {
		want = append(want, data[s.offset():s.offset()+int64(n)]...)
		got := make([]byte, n)
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(dialed, got)
			done <- err
		}()
		if err := s.send(n); err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("read %d: %v", n, err)
		}
		if !bytes.Equal(got, want[len(want)-n:]) {
			t.Fatalf("chunk of %d bytes at %d differs", n, s.offset()-int64(n))
		}
	}
	if s.offset() != int64(len(want)) {
		t.Fatalf("offset %d, want %d", s.offset(), len(want))
	}
	// Past the end of the file the splice runs short and says so.
	s.rewind()
	s.off = int64(len(data)) - 10
	go io.Copy(io.Discard, dialed)
	if err := s.send(100); err == nil {
		t.Fatal("a send past the end of the file succeeded")
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
}

func TestCeilingSpliceMovesWhatItReports(t *testing.T) {
	const records, recordSize = 3000, 1024
	stdout, stderr, code := loadgenRun(t, "ceiling", "--mode", "splice",
		"--records", "3000", "--record-size", "1024", "--file-bytes", "1000000",
		"--dir", t.TempDir(), "--json")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	m := lastJSONLine(t, stdout)
	checkConsistent(t, m)
	if md := jsonString(t, m, "mode"); md != "splice" {
		t.Errorf("mode = %q", md)
	}
	if got := jsonInt(t, m, "bytes"); got != records*recordSize {
		t.Errorf("bytes = %d, want %d", got, records*recordSize)
	}
	if got := jsonString(t, m, "stopped_by"); got != "records" {
		t.Errorf("stopped_by = %q, want records", got)
	}
}
