package segment

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func corruptConfig() Config {
	return Config{SegmentBytes: 4096, IndexIntervalBytes: 256, IndexBytes: 256, Flush: FlushNever,
		SegmentMs: Unlimited, RetentionMs: Unlimited}
}

// buildLog writes a few segments of frames into dir, closes the log and
// returns the frames in order.
func buildLog(t *testing.T, dir string) [][]byte {
	t.Helper()
	l, err := Open(dir, corruptConfig())
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for i := 0; i < 60; i++ {
		f := testFrame(uint32(1+i%4), 50+(i*37)%400, int64(1000+i), uint64(i))
		if _, err := l.Append(f); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return frames
}

// readChecked reads the whole log; a read may fail only with ErrCorrupt, and
// every frame served must be an original frame, in order.
func readChecked(t *testing.T, l *Log, frames [][]byte) (served int, err error) {
	t.Helper()
	off := l.LogStart()
	for off < l.End() {
		spans, err := l.Read(off, 1<<20, -1)
		if err != nil {
			return served, err
		}
		b, err := l.ReadSpans(nil, spans)
		if err != nil {
			return served, err
		}
		for _, f := range splitFrames(t, b) {
			if served >= len(frames) || !bytes.Equal(f, frames[served]) {
				t.Fatalf("served frame %d differs from the original", served)
			}
			served++
		}
		off = spans[len(spans)-1].NextOffset
	}
	return served, nil
}

func flipByte(t *testing.T, name string, at int64) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x5a
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// frameFile returns the data file and position holding frame k.
func frameFile(t *testing.T, dir string, frames [][]byte, k int) (string, int64) {
	t.Helper()
	l, err := Open(dir, corruptConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var off int64
	for _, f := range frames[:k] {
		off += int64(f[28]) // recordCount is small; low byte suffices
	}
	spans, err := l.Read(off, 1, -1)
	if err != nil || len(spans) != 1 {
		t.Fatalf("locate frame %d: %v", k, err)
	}
	return logPath(dir, spans[0].Segment.Base()), spans[0].Pos
}

func TestCorruptTailTruncatedOnFullRecovery(t *testing.T) {
	for _, mode := range []string{"flip", "chop"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			frames := buildLog(t, dir)
			const k = 23
			name, pos := frameFile(t, dir, frames, k)
			if mode == "flip" {
				flipByte(t, name, pos+100)
			} else if err := os.Truncate(name, pos+70); err != nil {
				t.Fatal(err)
			}
			// Without the checkpoint nothing is trusted: every frame is
			// walked and the log ends at the first bad one.
			os.Remove(filepath.Join(dir, checkpointName))
			l, err := Open(dir, corruptConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			served, err := readChecked(t, l, frames)
			if err != nil || served != k {
				t.Fatalf("served %d frames (%v), want the %d before the damage", served, err, k)
			}
			if l.Stats().Truncations == 0 && mode == "flip" {
				t.Fatalf("no truncation recorded")
			}
			// The log goes on from the cut.
			f := testFrame(1, 10, 5, 99)
			base, err := l.Append(f)
			if err != nil || base != l.End()-1 {
				t.Fatalf("append after repair: %d, %v", base, err)
			}
		})
	}
}

func TestCorruptTrustedSegmentNeverServed(t *testing.T) {
	dir := t.TempDir()
	frames := buildLog(t, dir)
	name, pos := frameFile(t, dir, frames, 3)
	flipByte(t, name, pos+80)
	l, err := Open(dir, corruptConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served, err := readChecked(t, l, frames)
	if !errors.Is(err, ErrCorrupt) || served > 3 {
		t.Fatalf("served %d frames, err %v; want ErrCorrupt at frame 3", served, err)
	}
}

func TestCorruptIndexesRebuilt(t *testing.T) {
	cases := map[string]func(name string){
		"garbage": func(name string) {
			b, _ := os.ReadFile(name)
			for i := range b {
				b[i] = byte(i*7 + 1)
			}
			os.WriteFile(name, b, 0o644)
		},
		"oddsize": func(name string) { os.Truncate(name, 13) },
		"missing": func(name string) { os.Remove(name) },
		"decreasing": func(name string) {
			b, _ := os.ReadFile(name)
			copy(b[0:8], []byte{200, 0, 0, 0, 200, 0, 0, 0})
			copy(b[8:16], []byte{100, 0, 0, 0, 100, 0, 0, 0})
			os.WriteFile(name, b, 0o644)
		},
	}
	for what, damage := range cases {
		t.Run(what, func(t *testing.T) {
			dir := t.TempDir()
			frames := buildLog(t, dir)
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), indexSuffix) || strings.HasSuffix(e.Name(), timeIndexSuffix) {
					damage(filepath.Join(dir, e.Name()))
				}
			}
			l, err := Open(dir, corruptConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if served, err := readChecked(t, l, frames); err != nil || served != len(frames) {
				t.Fatalf("served %d of %d frames: %v", served, len(frames), err)
			}
			for ts := int64(990); ts < 1070; ts += 7 {
				spans, err := l.ReadByTime(ts, 1, -1)
				if err != nil {
					t.Fatal(err)
				}
				want := min(max(ts-1000, 0), int64(len(frames)))
				if want == int64(len(frames)) {
					if len(spans) != 0 {
						t.Fatalf("time %d found a frame", ts)
					}
					continue
				}
				b, err := l.ReadSpans(nil, spans)
				if err != nil || !bytes.Equal(b, frames[want]) {
					t.Fatalf("time %d: wrong frame (%v)", ts, err)
				}
			}
			if l.Stats().IndexRebuilds == 0 {
				t.Fatalf("no index rebuilt")
			}
			if err := l.CheckConsistency(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCorruptCheckpoint(t *testing.T) {
	dir := t.TempDir()
	frames := buildLog(t, dir)
	flipByte(t, filepath.Join(dir, checkpointName), 10)
	l, err := Open(dir, corruptConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if st := l.Stats(); st.FramesChecked != int64(len(frames)) {
		t.Fatalf("bad checkpoint: walked %d frames, want all %d", st.FramesChecked, len(frames))
	}
	if served, err := readChecked(t, l, frames); err != nil || served != len(frames) {
		t.Fatalf("served %d of %d frames: %v", served, len(frames), err)
	}
}

// outsideCRC reports header bytes that no check covers: the leader epoch,
// patched in place by design. (The reserved byte 7 is outside the CRC too,
// but the header check insists it is zero.)
func outsideCRC(i int) bool { return i >= 12 && i < 16 }

// TestCorruptRandom flips random bytes anywhere in the folder (except the
// header bytes that the frame format leaves unchecked)
// and checks that open either fails with an error or serves only original
// frames, in order.
func TestCorruptRandom(t *testing.T) {
	pristine := t.TempDir()
	frames := buildLog(t, pristine)
	ents, _ := os.ReadDir(pristine)
	r := rand.New(rand.NewPCG(7, 39))
	for trial := 0; trial < 40; trial++ {
		dir := t.TempDir()
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(pristine, e.Name()))
			os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
		}
		for flips := 1 + r.IntN(3); flips > 0; flips-- {
			e := ents[r.IntN(len(ents))]
			name := filepath.Join(dir, e.Name())
			b, _ := os.ReadFile(name)
			if len(b) == 0 {
				continue
			}
			at := r.IntN(len(b))
			if strings.HasSuffix(e.Name(), logSuffix) {
				orig, _ := os.ReadFile(filepath.Join(pristine, e.Name()))
				if _, pos := frameAt(orig, at); outsideCRC(at - pos) {
					continue
				}
			}
			b[at] ^= byte(1 + r.IntN(255))
			os.WriteFile(name, b, 0o644)
		}
		if r.IntN(2) == 0 {
			os.Remove(filepath.Join(dir, checkpointName))
		}
		l, err := Open(dir, corruptConfig())
		if err != nil {
			continue
		}
		if _, err := readChecked(t, l, frames); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("trial %d: read failed without ErrCorrupt: %v", trial, err)
		}
		l.Close()
	}
}

// frameAt returns the index and start of the frame of a pristine data file
// that holds byte at.
func frameAt(b []byte, at int) (int, int) {
	pos, i := 0, 0
	for pos+4 <= len(b) {
		n := int(b[pos]) | int(b[pos+1])<<8 | int(b[pos+2])<<16 | int(b[pos+3])<<24
		if n <= 0 || pos+n > len(b) || at < pos+n {
			break
		}
		pos += n
		i++
	}
	return i, pos
}

// TestChoppedTrustedSegment cuts a trusted segment's data file at a frame
// boundary: its last frames are gone without a torn frame to notice, and a
// read must say so (the index rebuild or the read plan notices the offsets
// stop short) instead of skipping to the next segment's offsets.
func TestChoppedTrustedSegment(t *testing.T) {
	dir := t.TempDir()
	frames := buildLog(t, dir)
	name, pos := frameFile(t, dir, frames, 2)
	if err := os.Truncate(name, pos); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, corruptConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served, err := readChecked(t, l, frames)
	if !errors.Is(err, ErrCorrupt) || served > 2 {
		t.Fatalf("served %d frames, err %v; want at most 2 then ErrCorrupt", served, err)
	}
}

// TestChoppedSegmentWithoutIndexEntries chops a trusted segment that has no
// offset index entries, so its index loads cleanly and only the read plan
// can notice that the frames stop short of the segment's offsets.
func TestChoppedSegmentWithoutIndexEntries(t *testing.T) {
	fs := NewMemFS()
	cfg := memConfig(fs)
	cfg.IndexIntervalBytes = 1 << 20
	l, err := Open("/c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for i := 0; i < 8; i++ {
		f := testFrame(1, 100, int64(i), uint64(i))
		if _, err := l.Append(f); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
		if i == 3 {
			l.Roll()
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	w, _ := fs.Open(logPath("/c", 0))
	w.Truncate(int64(2 * len(frames[0])))
	w.Close()
	l, err = Open("/c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	spans, err := l.Read(1, 1<<20, -1)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read across the chopped end: %d spans, %v", len(spans), err)
	}
	spans, err = l.Read(2, 1<<20, -1)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a chopped offset: %d spans, %v", len(spans), err)
	}
	if spans, err := l.Read(4, 1<<20, -1); err != nil || len(spans) != 1 || spans[0].FirstOffset != 4 {
		t.Fatalf("read of the intact segment: %v, %v", spans, err)
	}
}
