package segment

import (
	"bytes"
	"os"
	"testing"
)

// TestBeginFinishRoll drives a roll the way a ring driver does: BeginRoll,
// sync the files it returns, FinishRoll; then a crash keeps every frame.
func TestBeginFinishRoll(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	cfg.SegmentBytes = 1 << 16
	cfg.Flush = FlushNever
	l, err := Open("/h", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.BeginRoll(); err == nil {
		t.Fatal("BeginRoll of an empty segment succeeded")
	}
	var want []byte
	for i := 0; i < 5; i++ {
		f := testFrame(2, 200, int64(i), uint64(i))
		if _, err := l.Append(f); err != nil {
			t.Fatal(err)
		}
		want = append(want, f...)
	}
	end := l.End()
	old, files, err := l.BeginRoll()
	if err != nil {
		t.Fatal(err)
	}
	if !old.Closed() || old.Next() != end || len(files) != 3 {
		t.Fatalf("old segment closed %v next %d (end %d), %d files to sync", old.Closed(), old.Next(), end, len(files))
	}
	if bases := l.SegmentBases(); len(bases) != 2 || bases[1] != end {
		t.Fatalf("segments %v after roll at %d", bases, end)
	}
	if l.RecoveryPoint() >= end {
		t.Fatalf("recovery point %d moved before FinishRoll", l.RecoveryPoint())
	}
	f, err := l.DataFile(old)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("DataFile read %v, bytes equal %v", err, bytes.Equal(got, want))
	}
	for _, x := range files {
		if err := x.Datasync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.FinishRoll(old); err != nil {
		t.Fatal(err)
	}
	if l.RecoveryPoint() != end {
		t.Fatalf("recovery point %d after FinishRoll, want %d", l.RecoveryPoint(), end)
	}
	fs.Crash()
	l2, err := Open("/h", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.End() != end {
		t.Fatalf("end %d after crash, want %d", l2.End(), end)
	}
	if got := readAll(t, l2, 0); !bytes.Equal(got, want) {
		t.Fatalf("after crash read %d bytes, want %d", len(got), len(want))
	}
}

func TestFlushPolicyIntervalMs(t *testing.T) {
	if ms, ok := FlushIntervalMs(25).IntervalMs(); !ok || ms != 25 {
		t.Fatalf("interval policy: %d %v", ms, ok)
	}
	for _, p := range []FlushPolicy{FlushEveryAck, FlushNever} {
		if _, ok := p.IntervalMs(); ok {
			t.Fatalf("%v reports an interval", p)
		}
	}
}

// TestKeepDeletedDataFiles deletes segments by retention on real files
// with KeepDeletedDataFiles set: the log hands over the data files of the
// deleted segments instead of closing them, their files are gone from the folder at once, and the handed file still reads the
// deleted segment's bytes until the driver closes it.
func TestKeepDeletedDataFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := memConfig(OSFS{})
	cfg.RetentionBytes = 4096
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type kept struct {
		base int64
		data File
	}
	var handed []kept
	l.KeepDeletedDataFiles(func(s *Segment, data File) { handed = append(handed, kept{s.Base(), data}) })
	var first []byte
	for i := 0; i < 12; i++ {
		f := testFrame(2, 1500, int64(i), uint64(i))
		if _, err := l.Append(f); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = f
		}
	}
	bases := l.SegmentBases()
	if len(bases) < 4 {
		t.Fatalf("segments %v: want several to delete", bases)
	}
	if err := l.ApplyRetention(0); err != nil {
		t.Fatal(err)
	}
	if len(handed) == 0 || handed[0].base != bases[0] {
		t.Fatalf("handed %v of deleted segments, first base %d", handed, bases[0])
	}
	for _, k := range handed {
		if _, err := os.Stat(logPath(dir, k.base)); !os.IsNotExist(err) {
			t.Fatalf("segment %d's data file is still in the folder: %v", k.base, err)
		}
	}
	got := make([]byte, len(first))
	if _, err := handed[0].data.ReadAt(got, 0); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("the handed file of the deleted segment reads %v, same bytes %v", err, bytes.Equal(got, first))
	}
	for _, k := range handed {
		if err := k.data.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRetentionBelowLimit: retention bounded by a limit (a replicated
// partition's high watermark) keeps every segment that reaches past it,
// however far the log is over its bounds, and drops the rest once the
// limit moves up.
func TestRetentionBelowLimit(t *testing.T) {
	dir := t.TempDir()
	cfg := memConfig(OSFS{})
	cfg.RetentionBytes = 4096
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 12; i++ {
		if _, err := l.Append(testFrame(2, 1500, int64(i), uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	bases := l.SegmentBases()
	if len(bases) < 4 {
		t.Fatalf("segments %v: want several past the size bound", bases)
	}
	// The limit inside the first segment: nothing is wholly below it.
	if err := l.ApplyRetentionBelow(0, bases[1]-1); err != nil {
		t.Fatal(err)
	}
	if got := l.SegmentBases(); len(got) != len(bases) || l.LogStart() != bases[0] {
		t.Fatalf("limit %d: segments %v, log start %d; want all of %v kept", bases[1]-1, got, l.LogStart(), bases)
	}
	// The limit at the second segment's base: only the first may go.
	if err := l.ApplyRetentionBelow(0, bases[1]); err != nil {
		t.Fatal(err)
	}
	if got := l.SegmentBases(); len(got) != len(bases)-1 || l.LogStart() != bases[1] {
		t.Fatalf("limit %d: segments %v, log start %d; want the first dropped", bases[1], got, l.LogStart())
	}
	// No limit: down to the size bound.
	if err := l.ApplyRetention(0); err != nil {
		t.Fatal(err)
	}
	if got := l.SegmentBases(); len(got) >= len(bases)-1 {
		t.Fatalf("without a limit: segments %v, want fewer than %d", got, len(bases)-1)
	}
}
