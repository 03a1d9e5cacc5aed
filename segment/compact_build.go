package segment

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-db/strata/schema"
)

// Cleaned files: a segment's three files with this suffix, written and
// synced by Build, renamed into place by FinishCompaction (compact_swap.go).
const (
	cleanedSuffix = ".cleaned"
	swapSuffix    = ".swap"
)

// errMapTooSmall: the key map cannot take the keys of one frame.
var errMapTooSmall = errors.New("segment: compaction offset map too small for one frame")

// Build reads the job's segments and writes the cleaned ones as .cleaned
// files, synced. It changes nothing of the log: on error the caller calls
// AbortCompaction, which removes what it wrote, and the log goes on as it
// was (a failed write or fdatasync of a .cleaned file only loses that
// file, which nothing serves).
func (j *CompactionJob) Build() error {
	if j.built {
		return fmt.Errorf("segment: compaction job built twice")
	}
	j.built = true
	j.buildErr = j.build()
	return j.buildErr
}

func (j *CompactionJob) build() error {
	m, err := newOffsetMap(j.cfg.OffsetMapBytes)
	if err != nil {
		return err
	}
	w := newFrameRewriter()
	th := newThrottle(j.cfg)
	sc := &segScanner{l: j.l, th: th}
	if err := j.buildMap(m, w, sc); err != nil {
		return err
	}
	j.res.FirstDirty, j.res.CleanedUpTo, j.res.Keys = j.firstDirty, j.mapEnd, m.Len()
	// lastKeptBase is the base of the segment before the one being
	// cleaned once the round's removals are done; none before the first
	// candidate, which is the log's first segment.
	lastKeptBase := int64(-1)
	for i := range j.segs {
		js := &j.segs[i]
		if js.base >= j.mapEnd {
			break
		}
		if err := j.cleanSegment(js, m, w, sc, lastKeptBase); err != nil {
			return err
		}
		if js.outcome != outcomeRemoved {
			lastKeptBase = js.base
		}
	}
	j.res.BytesRead, j.res.BytesWritten, j.res.ThrottledFor = th.read, th.written, th.slept
	return nil
}

// buildMap puts the keys of the dirty section, from firstDirty on, into m,
// a frame at a time, and stops before a frame whose records might not all
// fit: the round then cleans up to there, and the next one goes on.
func (j *CompactionJob) buildMap(m *offsetMap, w *frameRewriter, sc *segScanner) error {
	j.mapEnd = j.firstDirty
	for i := range j.segs {
		js := &j.segs[i]
		if js.next <= j.firstDirty {
			continue
		}
		full := false
		err := sc.scan(js, func(frame []byte, h *schema.FrameHeader) error {
			if h.NextOffset() <= j.firstDirty {
				return nil
			}
			if m.Len()+int(h.RecordCount) > m.limit {
				if j.mapEnd == j.firstDirty {
					return fmt.Errorf("%w: %d records at offset %d, map of %d keys", errMapTooSmall, h.RecordCount, h.BaseOffset, m.limit)
				}
				full = true
				return errStopScan
			}
			if err := w.rd.Reset(frame); err != nil {
				return err
			}
			var v schema.RecordView
			for w.rd.Next(&v) {
				if v.Key != nil && v.Offset >= j.firstDirty && !m.put(v.Key, v.Offset) {
					// Unreachable: room for every record was checked.
					return fmt.Errorf("segment: compaction offset map full at offset %d", v.Offset)
				}
			}
			j.mapEnd = h.NextOffset()
			return nil
		})
		if err != nil {
			return err
		}
		if full {
			return nil
		}
		j.mapEnd = js.next
	}
	return nil
}

// cleanSegment filters one segment's frames through the map. A segment
// that loses nothing is left as it is; one that keeps nothing is removed
// (unless its offsets could not then join the segment before it: a
// segment spans at most relOffsetMax offsets); any other gets .cleaned
// files.
func (j *CompactionJob) cleanSegment(js *jobSegment, m *offsetMap, w *frameRewriter, sc *segScanner, lastKeptBase int64) error {
	removeTombstones := js.cleanedAtMs != 0 && j.nowMs-js.cleanedAtMs >= j.cfg.DeleteRetentionMs
	keep := func(v *schema.RecordView) bool {
		if v.Key == nil {
			// Keyless records are kept: no later record can supersede
			// them (the broker is to refuse them at produce for a
			// compacted topic, as Kafka does).
			return true
		}
		if latest := m.get(v.Key); latest > v.Offset {
			js.dropped++
			return false
		}
		if v.Value == nil && removeTombstones {
			js.dropped++
			js.tombs++
			return false
		}
		return true
	}
	out := &cleanedWriter{l: j.l, base: js.base, next: js.next, dataMax: js.size, th: sc.th}
	defer out.closeFiles()
	err := sc.scan(js, func(frame []byte, h *schema.FrameHeader) error {
		kept, err := w.rewrite(frame, keep)
		if err != nil {
			return err
		}
		if kept != nil {
			return out.add(kept)
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case js.dropped == 0:
		js.outcome = outcomeUntouched
		return out.discard()
	case out.size == 0 && (lastKeptBase < 0 || js.next-lastKeptBase <= relOffsetMax):
		js.outcome = outcomeRemoved
		j.res.SegmentsRemoved++
		return out.discard()
	case out.size == 0:
		js.outcome, js.dropped, js.tombs = outcomeUntouched, 0, 0
		return out.discard()
	}
	if err := out.finish(); err != nil {
		return err
	}
	js.outcome, js.newSize, js.newMaxTs = outcomeRewritten, out.size, out.seg.maxTsMs
	j.res.SegmentsRewritten++
	j.res.BytesBefore += js.size
	j.res.BytesAfter += out.size
	return nil
}

var errStopScan = errors.New("segment: stop scan")

// segScanner reads a closed segment's frames in order through a file of
// its own, checking each (length bound, header, CRC, offsets increasing).
type segScanner struct {
	l     *Log
	th    *throttle
	hdr   [schema.FrameHeaderSize]byte
	frame []byte
}

func (sc *segScanner) scan(js *jobSegment, fn func(frame []byte, h *schema.FrameHeader) error) error {
	f, err := sc.l.fs.Open(logPath(sc.l.dir, js.base))
	if err != nil {
		return err
	}
	defer f.Close()
	// Any frame a segment may hold: segment.bytes may have been lowered
	// since this one was written.
	maxFrame := schema.MaxFrameBytes
	expect := js.base
	for pos := int64(0); pos < js.size; {
		if _, err := f.ReadAt(sc.hdr[:], pos); err != nil {
			return fmt.Errorf("%w: cleaner: segment %d position %d: %v", ErrCorrupt, js.base, pos, err)
		}
		n, err := schema.PeekFrameLength(sc.hdr[:], maxFrame)
		if err != nil || pos+int64(n) > js.size {
			return fmt.Errorf("%w: cleaner: segment %d position %d: %v", ErrCorrupt, js.base, pos, err)
		}
		if cap(sc.frame) < n {
			sc.frame = make([]byte, n)
		}
		buf := sc.frame[:n]
		if _, err := f.ReadAt(buf, pos); err != nil {
			return fmt.Errorf("%w: cleaner: segment %d position %d: %v", ErrCorrupt, js.base, pos, err)
		}
		sc.th.did(&sc.th.read, int64(n))
		h, err := schema.CheckFrame(buf)
		if err != nil || h.BaseOffset < expect || h.NextOffset() > js.next {
			return fmt.Errorf("%w: cleaner: segment %d position %d: frame at %d after %d: %v", ErrCorrupt, js.base, pos, h.BaseOffset, expect, err)
		}
		if err := fn(buf, &h); err != nil {
			if errors.Is(err, errStopScan) {
				return nil
			}
			return err
		}
		pos += int64(n)
		expect = h.NextOffset()
	}
	return nil
}

// throttle holds a round's I/O to IOBytesPerSecond: after each read or
// write it sleeps until the bytes so far could have moved at that rate.
type throttle struct {
	rate          int64
	sleep         func(time.Duration)
	start         time.Time
	read, written int64
	slept         time.Duration
}

func newThrottle(cfg CompactionConfig) *throttle {
	return &throttle{rate: cfg.IOBytesPerSecond, sleep: cfg.Sleep, start: time.Now()}
}

func (t *throttle) did(counter *int64, n int64) {
	*counter += n
	if t.rate <= 0 {
		return
	}
	due := time.Duration(float64(t.read+t.written) / float64(t.rate) * float64(time.Second))
	if wait := due - time.Since(t.start) - t.sleptUnseen(); wait > 0 {
		t.sleep(wait)
		t.slept += wait
	}
}

// sleptUnseen is sleep time the clock has not shown: none with time.Sleep
// (the clock moved), all of it with a test's sleeper that returns at once.
// Counting the larger of the two keeps a fake sleeper from being asked
// for the same wait twice.
func (t *throttle) sleptUnseen() time.Duration {
	return max(0, t.slept-time.Since(t.start))
}
