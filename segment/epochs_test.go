package segment

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/strata-db/strata/schema"
)

// epochTestDir is the partition folder of the epoch tests.
const epochTestDir = "/p"

func openEpochLog(t *testing.T, cfg Config) *Log {
	t.Helper()
	l, err := Open(epochTestDir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendOne appends a one-record frame under the log's leader epoch.
func appendOne(t *testing.T, l *Log, seed uint64) []byte {
	t.Helper()
	f := testFrame(1, 100, int64(seed), seed)
	if _, err := l.Append(f); err != nil {
		t.Fatal(err)
	}
	return f
}

func setEpoch(t *testing.T, l *Log, epoch int32) {
	t.Helper()
	if err := l.SetLeaderEpoch(epoch); err != nil {
		t.Fatal(err)
	}
}

func wantEpochs(t *testing.T, l *Log, want ...EpochEntry) {
	t.Helper()
	if got := l.Epochs(); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("epochs %v, want %v", got, want)
	}
	if err := l.CheckEpochs(); err != nil {
		t.Fatal(err)
	}
}

// fileEpochs decodes the epoch file as it is in the MemFS now.
func fileEpochs(t *testing.T, fs *MemFS) []EpochEntry {
	t.Helper()
	b, ok := fs.FileBytes(filepath.Join(epochTestDir, epochFileName))
	if !ok {
		t.Fatal("no epoch file")
	}
	e, err := decodeEpochs(b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEpochFileRoundTrip(t *testing.T) {
	in := []EpochEntry{{0, 0}, {3, 10}, {7, 1 << 40}}
	b := encodeEpochs(nil, in)
	if len(b) != epochHeaderSize+3*epochEntrySize+epochCRCSize {
		t.Fatalf("%d bytes", len(b))
	}
	out, err := decodeEpochs(b)
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("decoded %v, %v", out, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, err := decodeEpochs(c); err == nil {
			t.Fatalf("flipped byte %d decoded", i)
		}
	}
	if _, err := decodeEpochs(b[:len(b)-1]); err == nil {
		t.Fatal("short file decoded")
	}
	// Out of order entries with a valid CRC are refused too.
	if _, err := decodeEpochs(encodeEpochs(nil, []EpochEntry{{3, 10}, {2, 20}})); err == nil {
		t.Fatal("decreasing epochs decoded")
	}
	if _, err := decodeEpochs(encodeEpochs(nil, []EpochEntry{{2, 10}, {3, 10}})); err == nil {
		t.Fatal("an epoch with no frames decoded")
	}
}

func TestLeaderAppendsStampEpoch(t *testing.T) {
	fs := NewMemFS()
	l := openEpochLog(t, memConfig(fs))
	defer l.Close()
	if l.LatestEpoch() != NoEpoch || len(l.Epochs()) != 0 {
		t.Fatalf("new log has epochs %v", l.Epochs())
	}
	appendOne(t, l, 1) // epoch 0 until one is set
	setEpoch(t, l, 3)
	appendOne(t, l, 2)
	appendOne(t, l, 3)
	setEpoch(t, l, 3) // the same epoch again is no change
	setEpoch(t, l, 5)
	if l.LatestEpoch() != 3 {
		t.Fatalf("latest %d before any frame of epoch 5", l.LatestEpoch())
	}
	appendOne(t, l, 4)
	wantEpochs(t, l, EpochEntry{0, 0}, EpochEntry{3, 1}, EpochEntry{5, 3})
	if got := fileEpochs(t, fs); !reflect.DeepEqual(got, l.Epochs()) {
		t.Fatalf("file holds %v, log %v", got, l.Epochs())
	}
	for i, f := range splitFrames(t, readAll(t, l, 0)) {
		h, _ := schema.ParseFrameHeader(f)
		if want := []int32{0, 3, 3, 5}[i]; h.LeaderEpoch != want || h.BaseOffset != int64(i) {
			t.Fatalf("frame %d: epoch %d base %d, want epoch %d", i, h.LeaderEpoch, h.BaseOffset, want)
		}
	}
}

func TestSetLeaderEpochRefusesLower(t *testing.T) {
	l := openEpochLog(t, memConfig(NewMemFS()))
	defer l.Close()
	setEpoch(t, l, 4)
	appendOne(t, l, 1)
	for _, e := range []int32{3, -1} {
		if err := l.SetLeaderEpoch(e); !errors.Is(err, ErrEpochRegress) {
			t.Fatalf("SetLeaderEpoch(%d): %v", e, err)
		}
	}
	setEpoch(t, l, 6)
	if err := l.SetLeaderEpoch(5); !errors.Is(err, ErrEpochRegress) {
		t.Fatalf("epoch 5 after 6 was set: %v", err)
	}
	if l.LeaderEpoch() != 6 {
		t.Fatalf("leader epoch %d", l.LeaderEpoch())
	}
	// A follower append of a newer epoch leaves the leader's epoch
	// behind: a leader append is refused rather than stamped backwards.
	f := testFrame(1, 50, 0, 9)
	schema.PatchBaseOffset(f, l.End())
	schema.PatchLeaderEpoch(f, 8)
	if _, err := l.AppendReplicated(f); err != nil {
		t.Fatal(err)
	}
	end := l.End()
	if _, err := l.Append(testFrame(1, 50, 0, 10)); !errors.Is(err, ErrEpochRegress) || l.End() != end {
		t.Fatalf("append under epoch 6 after epoch 8: %v, end %d", err, l.End())
	}
	wantEpochs(t, l, EpochEntry{4, 0}, EpochEntry{8, 1})
}

func TestAppendReplicatedRefusedChangesNothing(t *testing.T) {
	fs := NewMemFS()
	l := openEpochLog(t, memConfig(fs))
	defer l.Close()
	replicated := func(base int64, epoch int32, seed uint64) ([]byte, error) {
		f := testFrame(2, 80, 0, seed)
		schema.PatchBaseOffset(f, base)
		schema.PatchLeaderEpoch(f, epoch)
		_, err := l.AppendReplicated(f)
		return f, err
	}
	var want []byte
	for i, e := range []int32{2, 2, 5} {
		f, err := replicated(int64(2*i), e, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, f...)
	}
	wantEpochs(t, l, EpochEntry{2, 0}, EpochEntry{5, 4})
	file, _ := fs.FileBytes(filepath.Join(epochTestDir, epochFileName))
	end, size := l.End(), l.Size()
	for _, c := range []struct {
		base  int64
		epoch int32
		err   error
	}{
		{end - 2, 5, ErrOffsetMismatch}, // a frame the log has
		{end + 1, 5, ErrOffsetMismatch}, // a gap
		{end, 4, ErrEpochRegress},
		{end, -1, ErrEpochRegress},
	} {
		if _, err := replicated(c.base, c.epoch, 99); !errors.Is(err, c.err) {
			t.Fatalf("frame at %d of epoch %d: %v, want %v", c.base, c.epoch, err, c.err)
		}
		after, _ := fs.FileBytes(filepath.Join(epochTestDir, epochFileName))
		if l.End() != end || l.Size() != size || !bytes.Equal(after, file) || l.Err() != nil {
			t.Fatalf("refused frame at %d changed the log: end %d size %d, err %v", c.base, l.End(), l.Size(), l.Err())
		}
	}
	wantEpochs(t, l, EpochEntry{2, 0}, EpochEntry{5, 4})
	if got := readAll(t, l, 0); !bytes.Equal(got, want) {
		t.Fatal("replicated frames not stored as sent")
	}
}

// epochLog builds a log of one-record frames whose epochs are epochs[i]
// for offset i, rolling every rollEvery frames (0: never).
func epochLog(t *testing.T, cfg Config, epochs []int32, rollEvery int) *Log {
	t.Helper()
	l := openEpochLog(t, cfg)
	for i, e := range epochs {
		if e != l.LeaderEpoch() {
			setEpoch(t, l, e)
		}
		appendOne(t, l, uint64(i))
		if rollEvery > 0 && (i+1)%rollEvery == 0 {
			if err := l.Roll(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return l
}

func TestEpochsAfterTruncate(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	l := epochLog(t, cfg, []int32{1, 1, 1, 2, 2, 4, 4, 4}, 3)
	wantEpochs(t, l, EpochEntry{1, 0}, EpochEntry{2, 3}, EpochEntry{4, 5})
	if err := l.Truncate(6); err != nil {
		t.Fatal(err)
	}
	wantEpochs(t, l, EpochEntry{1, 0}, EpochEntry{2, 3}, EpochEntry{4, 5})
	if err := l.Truncate(5); err != nil { // the whole of epoch 4
		t.Fatal(err)
	}
	wantEpochs(t, l, EpochEntry{1, 0}, EpochEntry{2, 3})
	if got := fileEpochs(t, fs); !reflect.DeepEqual(got, l.Epochs()) {
		t.Fatalf("file %v after truncation", got)
	}
	// A follower that truncated takes the leader's epoch 3 at the cut.
	f := testFrame(1, 50, 0, 77)
	schema.PatchBaseOffset(f, 5)
	schema.PatchLeaderEpoch(f, 3)
	if _, err := l.AppendReplicated(f); err != nil {
		t.Fatal(err)
	}
	if err := l.Truncate(0); err != nil {
		t.Fatal(err)
	}
	wantEpochs(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openEpochLog(t, cfg)
	defer l.Close()
	wantEpochs(t, l)
}

func TestEpochsAfterRetention(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	l := epochLog(t, cfg, []int32{1, 1, 2, 2, 3, 3, 3, 3, 5, 6}, 2)
	wantEpochs(t, l, EpochEntry{1, 0}, EpochEntry{2, 2}, EpochEntry{3, 4}, EpochEntry{5, 8}, EpochEntry{6, 9})
	// Offset 5 is in epoch 3's segment [4, 6): epochs 1 and 2 are wholly
	// below; epoch 3 covers the new start and keeps its start offset.
	if err := l.DeleteRecordsBefore(5); err != nil {
		t.Fatal(err)
	}
	wantEpochs(t, l, EpochEntry{3, 4}, EpochEntry{5, 8}, EpochEntry{6, 9})
	if err := l.DeleteRecordsBefore(8); err != nil {
		t.Fatal(err)
	}
	wantEpochs(t, l, EpochEntry{5, 8}, EpochEntry{6, 9})
	if got := fileEpochs(t, fs); !reflect.DeepEqual(got, l.Epochs()) {
		t.Fatalf("file %v after deletion", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openEpochLog(t, cfg)
	defer l.Close()
	wantEpochs(t, l, EpochEntry{5, 8}, EpochEntry{6, 9})
	// Everything deleted: the latest epoch stays, so that a follower
	// still cannot go back past it.
	if err := l.DeleteRecordsBefore(l.End()); err != nil {
		t.Fatal(err)
	}
	if got := l.Epochs(); !reflect.DeepEqual(got, []EpochEntry{{6, 9}}) {
		t.Fatalf("epochs %v after deleting everything", got)
	}
}

func TestEpochsReopen(t *testing.T) {
	epochs := []int32{0, 0, 2, 2, 2, 7, 9, 9, 9, 9, 9, 12}
	want := []EpochEntry{{0, 0}, {2, 2}, {7, 5}, {9, 6}, {12, 11}}
	epochFile := filepath.Join(epochTestDir, epochFileName)
	for _, c := range []struct {
		name    string
		damage  func(fs *MemFS)
		rebuilt bool
	}{
		{"with the file", func(*MemFS) {}, false},
		{"without the file", func(fs *MemFS) { fs.Remove(epochFile) }, true},
		{"with a corrupt file", func(fs *MemFS) {
			f, _ := fs.Open(epochFile)
			f.WriteAt([]byte{0xff}, epochHeaderSize+1)
			f.Close()
		}, true},
		{"with a truncated file", func(fs *MemFS) {
			f, _ := fs.Open(epochFile)
			f.Truncate(epochHeaderSize + 5)
			f.Close()
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := NewMemFS()
			cfg := memConfig(fs)
			l := epochLog(t, cfg, epochs, 4)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// What a clean open reads, to compare the damaged one with.
			readsBefore := fs.Reads
			l = openEpochLog(t, cfg)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			cleanReads := fs.Reads - readsBefore
			c.damage(fs)
			readsBefore = fs.Reads
			l = openEpochLog(t, cfg)
			defer l.Close()
			// The rebuild reads one header per frame on top of a clean
			// open (less the file's own read when its size is wrong).
			extra := fs.Reads - readsBefore - cleanReads
			if frames := int64(len(epochs)); c.rebuilt && (extra < frames-1 || extra > frames) || !c.rebuilt && extra != 0 {
				t.Fatalf("open did %d reads more than a clean one (rebuild %v) for %d frames", extra, c.rebuilt, frames)
			}
			wantEpochs(t, l, want...)
			if got := fileEpochs(t, fs); !reflect.DeepEqual(got, want) {
				t.Fatalf("file %v after open", got)
			}
			if l.LeaderEpoch() != 12 {
				t.Fatalf("leader epoch %d after open, want the latest", l.LeaderEpoch())
			}
		})
	}
}

func TestEpochsRebuildRefusesEpochsGoingBack(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	l := epochLog(t, cfg, []int32{3, 3, 4}, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Offset 1's frame rewritten with an older epoch (outside the CRC):
	// the rebuild must not paper over it.
	data, _ := fs.Open(logPath(epochTestDir, 0))
	var hdr [schema.FrameHeaderSize]byte
	data.ReadAt(hdr[:], 0)
	h, _ := schema.ParseFrameHeader(hdr[:])
	schema.PatchLeaderEpoch(hdr[:], 2)
	data.WriteAt(hdr[:], int64(h.Length))
	data.Datasync()
	data.Close()
	fs.Remove(filepath.Join(epochTestDir, epochFileName))
	if _, err := Open(epochTestDir, cfg); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v", err)
	}
}

// A crash that drops frames of a new epoch drops its entry too, and the
// file is rewritten before anything else is appended: frames of the old
// epoch at the same offsets are then not taken for the lost epoch's.
func TestEpochsAfterCrashDropsLostEpoch(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	cfg.Flush = FlushNever
	l := epochLog(t, cfg, []int32{1, 1, 1}, 0)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	setEpoch(t, l, 2)
	appendOne(t, l, 10)
	appendOne(t, l, 11)
	wantEpochs(t, l, EpochEntry{1, 0}, EpochEntry{2, 3})
	fs.Crash()
	l = openEpochLog(t, cfg)
	if l.End() != 3 {
		t.Fatalf("end %d after the crash", l.End())
	}
	wantEpochs(t, l, EpochEntry{1, 0})
	if got := fileEpochs(t, fs); !reflect.DeepEqual(got, []EpochEntry{{1, 0}}) {
		t.Fatalf("file %v after open", got)
	}
	appendOne(t, l, 12) // epoch 1 at offset 3, where epoch 2 was
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	fs.Crash()
	l = openEpochLog(t, cfg)
	defer l.Close()
	wantEpochs(t, l, EpochEntry{1, 0})
}

// A failure of any step of replacing the epoch file takes the log offline
// like a failed write: the append that needed it is refused, nothing after
// it succeeds, and what was acknowledged before is there after a crash.
func TestEpochFileFailureIsFailStop(t *testing.T) {
	for _, kind := range []faultKind{faultCreate, faultWrite, faultShortWrite, faultSync, faultRename, faultDirSync} {
		t.Run(kind.String(), func(t *testing.T) {
			mem := NewMemFS()
			efs := newErrFS(mem, faultNone, 1)
			cfg := memConfig(efs)
			cfg.Flush = FlushEveryAck
			l := openEpochLog(t, cfg)
			acked := appendOne(t, l, 1)
			setEpoch(t, l, 1)
			efs.arm(kind, 1)
			end := l.End()
			if _, err := l.Append(testFrame(1, 100, 0, 2)); !errors.Is(err, ErrStorageFailed) {
				t.Fatalf("append of a new epoch: %v", err)
			}
			if on := efs.firedOnFile(); filepath.Base(on) != epochFileName+checkpointTmpExt && on != epochTestDir {
				t.Fatalf("the fault hit %q, not the epoch file", on)
			}
			if l.End() != end || !reflect.DeepEqual(l.Epochs(), []EpochEntry{{0, 0}}) {
				t.Fatalf("refused append moved the log: end %d, epochs %v", l.End(), l.Epochs())
			}
			for what, err := range map[string]error{
				"append": func() error { _, err := l.Append(testFrame(1, 10, 0, 3)); return err }(),
				"flush":  l.Flush(),
				"epoch":  l.SetLeaderEpoch(2),
			} {
				if !errors.Is(err, ErrStorageFailed) {
					t.Fatalf("%s after the failure: %v", what, err)
				}
			}
			l.Close()
			mem.Crash()
			efs.disarm()
			l = openEpochLog(t, cfg)
			defer l.Close()
			if got := readAll(t, l, 0); !bytes.Equal(got, acked) {
				t.Fatalf("after the crash the log holds %d bytes, %d acknowledged", len(got), len(acked))
			}
			wantEpochs(t, l, EpochEntry{0, 0})
		})
	}
}
