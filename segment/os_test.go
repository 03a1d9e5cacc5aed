package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOSLayout(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 8192, IndexIntervalBytes: 512, IndexBytes: 1024, RetentionMs: Unlimited}
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := 0; i < 40; i++ {
		f := testFrame(3, 400, int64(i), uint64(i))
		if _, err := l.Append(f); err != nil {
			t.Fatal(err)
		}
		want = append(want, f...)
	}
	bases := l.SegmentBases()
	if len(bases) < 2 {
		t.Fatalf("segments %v", bases)
	}
	for i, b := range bases {
		st, err := os.Stat(filepath.Join(dir, baseName(b)+logSuffix))
		if err != nil {
			t.Fatal(err)
		}
		// The active segment is preallocated; closed ones are trimmed.
		if last := i == len(bases)-1; last && st.Size() != cfg.SegmentBytes || !last && st.Size() >= cfg.SegmentBytes {
			t.Fatalf("segment %d (last %v) is %d bytes", b, last, st.Size())
		}
		ist, err := os.Stat(filepath.Join(dir, baseName(b)+indexSuffix))
		if err != nil || ist.Size() != cfg.IndexBytes {
			t.Fatalf("index of %d: %v", b, err)
		}
	}
	if name := baseName(bases[1]) + logSuffix; len(name) != 24 {
		t.Fatalf("segment file name %q", name)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := readAll(t, l, 0); !bytes.Equal(got, want) {
		t.Fatalf("reopen read %d bytes, want %d", len(got), len(want))
	}
}

func TestAppendRejectsBadFrames(t *testing.T) {
	fs := NewMemFS()
	l, err := Open("/bad", memConfig(fs))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	good := testFrame(1, 20, 0, 1)
	bad := append([]byte(nil), good...)
	bad[70] ^= 1
	for name, f := range map[string][]byte{
		"empty":    nil,
		"short":    good[:10],
		"crc":      bad,
		"trailing": append(append([]byte(nil), good...), 0),
		"torn":     good[:len(good)-1],
	} {
		if _, err := l.Append(f); err == nil {
			t.Fatalf("%s frame accepted", name)
		}
	}
	if _, err := l.Append(testFrame(1, 5000, 0, 2)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame larger than a segment: %v", err)
	}
	if l.End() != 0 {
		t.Fatalf("rejected frames moved the end to %d", l.End())
	}
	if _, err := Open("/bad2", Config{FS: fs, SegmentBytes: 10}); err == nil {
		t.Fatalf("tiny segment size accepted")
	}
}
