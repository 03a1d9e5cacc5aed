package segment

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/strata-db/strata/schema"
)

// TestOpenManySegmentsIsLazy opens a partition of 5,000 closed segments below
// the recovery point and checks that no closed segment's data is walked and
// no closed segment's index is mapped until a read needs it.
func TestOpenManySegmentsIsLazy(t *testing.T) {
	const segments = 5000
	fs := NewMemFS()
	cfg := memConfig(fs)
	dir := "/many"
	if err := fs.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, segments)
	write := func(name string, b []byte) {
		f, err := fs.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
		f.Datasync()
		f.Close()
	}
	for i := range segments {
		f := testFrame(1, 40, int64(i), uint64(i))
		schema.PatchBaseOffset(f, int64(i))
		frames[i] = f
		write(logPath(dir, int64(i)), f)
		// The index files of a cleanly closed segment: no offset entries
		// (one frame) and the final time entry covering the segment.
		write(indexPath(dir, int64(i)), make([]byte, cfg.IndexBytes))
		tim := make([]byte, cfg.IndexBytes/offsetEntrySize*timeEntrySize)
		putTimeEntry(tim, 0, int64(i), 1)
		write(timeIndexPath(dir, int64(i)), tim)
	}
	write(filepath.Join(dir, checkpointName), checkpoint{logStart: 0, recoveryPoint: segments}.AppendTo(nil))
	// A log Strata wrote has its epoch file; without it Open would take
	// the slow path and read every frame's header (see epochs_test.go).
	write(filepath.Join(dir, epochFileName), encodeEpochs(nil, []EpochEntry{{Epoch: 0, StartOffset: 0}}))
	if err := fs.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	readsBefore, mapsBefore := fs.Reads, fs.MapsOpened
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st := l.Stats()
	if st.FramesChecked > 1 || st.IndexLoads != 0 {
		t.Fatalf("open walked %d frames and loaded %d indexes", st.FramesChecked, st.IndexLoads)
	}
	if reads, maps := fs.Reads-readsBefore, fs.MapsOpened-mapsBefore; reads > 8 || maps > 2 {
		t.Fatalf("open did %d reads and %d maps for %d segments", reads, maps, segments)
	}
	if l.End() != segments || len(l.SegmentBases()) != segments {
		t.Fatalf("end %d with %d segments", l.End(), len(l.SegmentBases()))
	}
	for _, off := range []int64{1234, 4321} {
		spans, err := l.Read(off, 1, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.ReadSpans(nil, spans)
		if err != nil || !bytes.Equal(b, frames[off]) {
			t.Fatalf("read %d: %v", off, err)
		}
	}
	if st := l.Stats(); st.IndexLoads != 2 || st.IndexRebuilds != 0 {
		t.Fatalf("two reads loaded %d indexes, rebuilt %d", st.IndexLoads, st.IndexRebuilds)
	}
	spans, err := l.ReadByTime(2500, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := l.ReadSpans(nil, spans); err != nil || !bytes.Equal(b, frames[2500]) {
		t.Fatalf("read by time 2500: %v", err)
	}
}
