package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// expectedChunks models how the ceiling cuts a run of total bytes into
// chunks: chunk bytes at most, and in consume mode (fileBytes > 0) never past
// the end of the file.
func expectedChunks(total, chunk, fileBytes int64) int64 {
	var n, sent, off int64
	for sent < total {
		c := min(chunk, total-sent)
		if fileBytes > 0 {
			if off == fileBytes {
				off = 0
			}
			c = min(c, fileBytes-off)
			off += c
		}
		sent += c
		n++
	}
	return n
}

func TestCeilingProduceWritesWhatItReports(t *testing.T) {
	dir := t.TempDir()
	const records, recordSize = 3000, 1000
	stdout, stderr, code := loadgenRun(t, "ceiling", "--mode", "produce",
		"--records", "3000", "--record-size", "1000", "--batch-bytes", "64KiB",
		"--dir", dir, "--keep", "--json")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr is not a terminal, yet got output:\n%s", stderr)
	}
	m := lastJSONLine(t, stdout)
	checkConsistent(t, m)
	if w, md := jsonString(t, m, "workload"), jsonString(t, m, "mode"); w != "ceiling" || md != "produce" {
		t.Errorf("workload/mode = %s/%s, want ceiling/produce", w, md)
	}
	if got := jsonInt(t, m, "records"); got != records {
		t.Errorf("records = %d, want %d", got, records)
	}
	wantBytes := int64(records * recordSize)
	if got := jsonInt(t, m, "bytes"); got != wantBytes {
		t.Errorf("bytes = %d, want %d", got, wantBytes)
	}
	// 64KiB rounded down to whole 1000-byte records.
	if got := jsonInt(t, m, "chunk_bytes"); got != 65000 {
		t.Errorf("chunk_bytes = %d, want 65000", got)
	}
	if got, want := jsonInt(t, m, "latency_samples"), expectedChunks(wantBytes, 65000, 0); got != want {
		t.Errorf("latency_samples = %d, want one per chunk = %d", got, want)
	}
	if got := jsonString(t, m, "stopped_by"); got != "records" {
		t.Errorf("stopped_by = %q, want records", got)
	}
	if got := jsonString(t, m, "durability"); !strings.Contains(got, "page cache") {
		t.Errorf("durability = %q, want page cache only", got)
	}

	// The receiver wrote exactly what was reported, and the bytes are the
	// records the sender sent.
	path := jsonString(t, m, "file_path")
	if filepath.Dir(path) != dir {
		t.Errorf("file %s is not in --dir %s", path, dir)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != wantBytes || jsonInt(t, m, "file_bytes") != wantBytes {
		t.Errorf("file holds %d bytes, file_bytes %d, want %d", len(data), jsonInt(t, m, "file_bytes"), wantBytes)
	}
	record := make([]byte, recordSize)
	fillRecords(record, recordSize)
	for i := 0; i < records; i++ {
		if !bytes.Equal(data[i*recordSize:(i+1)*recordSize], record) {
			t.Fatalf("record %d in the file differs from what was sent", i)
		}
	}

	for _, want := range []string{"ceiling produce", "records", "3000", "MB/s", "p99.9", "page cache"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCeilingProduceRemovesFileAndSyncs(t *testing.T) {
	dir := t.TempDir()
	const fsyncEvery = 1 << 20
	stdout, stderr, code := loadgenRun(t, "ceiling", "--mode", "produce",
		"--records", "3000", "--record-size", "1KiB", "--fsync-every-bytes", "1MiB",
		"--dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	m := lastJSONLine(t, stdout)
	checkConsistent(t, m)
	bytesMoved := jsonInt(t, m, "bytes")
	if bytesMoved != 3000*1024 || jsonInt(t, m, "file_bytes") != bytesMoved {
		t.Errorf("bytes %d, file_bytes %d, want both %d", bytesMoved, jsonInt(t, m, "file_bytes"), 3000*1024)
	}
	// One fdatasync per fsyncEvery bytes received, at most, plus the final one.
	syncs := jsonInt(t, m, "fdatasyncs")
	if syncs < 1 || syncs > bytesMoved/fsyncEvery+1 {
		t.Errorf("fdatasyncs = %d, want 1..%d", syncs, bytesMoved/fsyncEvery+1)
	}
	if got := jsonString(t, m, "durability"); !strings.Contains(got, "fdatasync every 1048576 bytes") {
		t.Errorf("durability = %q", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("data file left behind without --keep: %v", entries)
	}
}

func TestCeilingConsumeRepeatsTheFile(t *testing.T) {
	dir := t.TempDir()
	// 3500 records of 1KiB over a file of 1000000 bytes, which rounds down
	// to 976 whole records: the run wraps around the file three times and
	// chunks are cut at its end.
	const records, recordSize, fileBytes = 3500, 1024, 976 * 1024
	stdout, stderr, code := loadgenRun(t, "ceiling", "--mode", "consume",
		"--records", "3500", "--record-size", "1024", "--file-bytes", "1000000",
		"--batch-bytes", "256KiB", "--dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr is not a terminal, yet got output:\n%s", stderr)
	}
	m := lastJSONLine(t, stdout)
	checkConsistent(t, m)
	if md := jsonString(t, m, "mode"); md != "consume" {
		t.Errorf("mode = %q", md)
	}
	wantBytes := int64(records * recordSize)
	if got := jsonInt(t, m, "bytes"); got != wantBytes {
		t.Errorf("bytes = %d, want %d", got, wantBytes)
	}
	if got := jsonInt(t, m, "file_bytes"); got != fileBytes {
		t.Errorf("file_bytes = %d, want %d", got, fileBytes)
	}
	if got, want := jsonInt(t, m, "latency_samples"), expectedChunks(wantBytes, 256<<10, fileBytes); got != want {
		t.Errorf("latency_samples = %d, want one per chunk = %d", got, want)
	}
	if got := jsonString(t, m, "stopped_by"); got != "records" {
		t.Errorf("stopped_by = %q, want records", got)
	}
	for _, want := range []string{"ceiling consume", "sendfile", "3500", "MB/s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("data file left behind without --keep: %v", entries)
	}
}

func TestCeilingConsumeStopsOnDuration(t *testing.T) {
	stdout, stderr, code := loadgenRun(t, "ceiling", "--mode", "consume",
		"--duration", "100ms", "--file-bytes", "2MiB", "--record-size", "4KiB",
		"--dir", t.TempDir(), "--json")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	m := lastJSONLine(t, stdout)
	checkConsistent(t, m)
	if got := jsonString(t, m, "stopped_by"); got != "duration" {
		t.Errorf("stopped_by = %q, want duration", got)
	}
	if jsonInt(t, m, "bytes") == 0 {
		t.Error("nothing moved in 100ms")
	}
}

func TestCeilingWithoutJSONPrintsOnlyTheSummary(t *testing.T) {
	stdout, stderr, code := loadgenRun(t, "ceiling", "--mode", "produce",
		"--records", "100", "--dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if strings.Contains(stdout, "{") {
		t.Errorf("JSON printed without --json:\n%s", stdout)
	}
	if !strings.Contains(stdout, "ceiling produce") || !strings.Contains(stdout, "records") {
		t.Errorf("summary missing:\n%s", stdout)
	}
}
