package segment

import (
	"bytes"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
)

// writeVersions appends rounds of values for keys 0..keys-1, frames of
// perFrame records, and returns what was written.
func writeVersions(t *testing.T, l *Log, compression uint16, keys, rounds, perFrame int, ts int64) []kv {
	t.Helper()
	var written, batch []kv
	for r := 0; r < rounds; r++ {
		for k := 0; k < keys; k++ {
			batch = append(batch, kv{key: key(k), value: []byte{byte(r), byte(k), 'v'}, ts: ts + int64(r)})
			if len(batch) == perFrame {
				written = append(written, appendKeyed(t, l, compression, batch)...)
				batch = nil
			}
		}
	}
	if len(batch) > 0 {
		written = append(written, appendKeyed(t, l, compression, batch)...)
	}
	return written
}

func activeBytes(t *testing.T, fs *MemFS, l *Log) []byte {
	t.Helper()
	bases := l.SegmentBases()
	b, _ := fs.FileBytes(logPath(l.Dir(), bases[len(bases)-1]))
	return b
}

func TestCompactKeepsLatestPerKey(t *testing.T) {
	for _, comp := range []uint16{schema.CompressionNone, schema.CompressionLZ4} {
		fs := NewMemFS()
		now := int64(1000)
		cfg := compactLogConfig(fs, &now)
		l := mustOpen(t, "/p", cfg)
		written := writeVersions(t, l, comp, 10, 8, 3, 100)
		if err := l.Roll(); err != nil {
			t.Fatal(err)
		}
		// More writes into the active segment: the cleaner must leave
		// them alone, superseded or not.
		active := writeVersions(t, l, comp, 3, 2, 3, 900)
		segsBefore := len(l.SegmentBases())
		activeBefore := activeBytes(t, fs, l)
		endBefore := l.End()
		res, err := l.Compact(compactConfig(), now, -1)
		if err != nil {
			t.Fatal(err)
		}
		if res.SegmentsRewritten+res.SegmentsRemoved == 0 || res.RecordsRemoved == 0 {
			t.Fatalf("compression %d: nothing cleaned: %+v", comp, res)
		}
		want := append(latestByKey(written), active...)
		sameRecords(t, "after compaction", readRecords(t, l), want)
		if l.End() != endBefore {
			t.Fatalf("end moved from %d to %d", endBefore, l.End())
		}
		if !bytes.Equal(activeBytes(t, fs, l), activeBefore) {
			t.Fatal("the active segment changed")
		}
		if len(l.SegmentBases()) > segsBefore {
			t.Fatalf("segments grew from %d to %d", segsBefore, len(l.SegmentBases()))
		}
		if comp == schema.CompressionLZ4 {
			for _, f := range splitFrames(t, readAll(t, l, l.LogStart())) {
				h, _ := schema.ParseFrameHeader(f)
				if h.Compression() != schema.CompressionLZ4 {
					t.Fatalf("frame at %d lost its lz4 codec", h.BaseOffset)
				}
				if h.ProducerID != 7 || h.ProducerEpoch != 3 || h.BaseSequence != 11 {
					t.Fatalf("frame at %d lost its producer fields: %+v", h.BaseOffset, h)
				}
			}
		}
		if err := l.CheckConsistency(); err != nil {
			t.Fatal(err)
		}
		// Reading from every offset still works: from an offset that
		// was dropped, the read starts at the next record kept.
		for off := l.LogStart(); off < l.End(); off++ {
			spans, err := l.Read(off, 1, -1)
			if err != nil || len(spans) == 0 || spans[0].NextOffset <= off {
				t.Fatalf("read at %d: %v %v", off, spans, err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, "/p", cfg)
		sameRecords(t, "after reopen", readRecords(t, l), want)
		// Nothing new is dirty: no round is due.
		if res, err := l.Compact(compactConfig(), now, -1); err != nil || res.SegmentsRewritten != 0 {
			t.Fatalf("second round: %+v %v", res, err)
		}
		l.Close()
		// A walk of every segment (the checkpoint lost) accepts the
		// offsets the cleaned segments skip.
		fs.Remove("/p/" + checkpointName)
		l = mustOpen(t, "/p", cfg)
		sameRecords(t, "after a full recovery walk", readRecords(t, l), want)
		l.Close()
	}
}

func TestCompactKeepsKeylessRecords(t *testing.T) {
	fs := NewMemFS()
	now := int64(0)
	l := mustOpen(t, "/p", compactLogConfig(fs, &now))
	defer l.Close()
	var written []kv
	for i := 0; i < 30; i++ {
		written = append(written, appendKeyed(t, l, 0, []kv{
			{key: nil, value: []byte{byte(i)}},
			{key: key(i % 2), value: []byte{byte(i)}},
		})...)
	}
	l.Roll()
	if _, err := l.Compact(compactConfig(), now, -1); err != nil {
		t.Fatal(err)
	}
	got := readRecords(t, l)
	sameRecords(t, "keyless kept", got, latestByKey(written))
	keyless := 0
	for _, r := range got {
		if r.key == nil {
			keyless++
		}
	}
	if keyless != 30 {
		t.Fatalf("%d keyless records left of 30", keyless)
	}
}

func TestCompactTombstonesKeptForDeleteRetention(t *testing.T) {
	fs := NewMemFS()
	now := int64(10_000)
	cfg := compactLogConfig(fs, &now)
	l := mustOpen(t, "/p", cfg)
	defer l.Close()
	cc := compactConfig()
	cc.DeleteRetentionMs = 5000
	var written []kv
	for i := 0; i < 20; i++ {
		written = append(written, appendKeyed(t, l, 0, []kv{{key: key(i % 4), value: []byte("v")}})...)
	}
	// Key 0 is deleted.
	written = append(written, appendKeyed(t, l, 0, []kv{{key: key(0), value: nil}})...)
	l.Roll()
	if _, err := l.Compact(cc, now, -1); err != nil {
		t.Fatal(err)
	}
	tombstoneLeft := func() bool {
		for _, r := range readRecords(t, l) {
			if string(r.key) == string(key(0)) {
				if r.value != nil {
					t.Fatalf("key 0 has a value after its tombstone: %v", r)
				}
				return true
			}
		}
		return false
	}
	if !tombstoneLeft() {
		t.Fatal("the tombstone went at its first cleaning")
	}
	dirty := func() {
		// New dirty data, so that a round is due.
		for i := 0; i < 20; i++ {
			appendKeyed(t, l, 0, []kv{{key: key(1 + i%3), value: []byte("w")}})
		}
		l.Roll()
	}
	dirty()
	now += cc.DeleteRetentionMs - 1
	if _, err := l.Compact(cc, now, -1); err != nil {
		t.Fatal(err)
	}
	if !tombstoneLeft() {
		t.Fatal("the tombstone went before delete.retention.ms passed")
	}
	dirty()
	now++
	res, err := l.Compact(cc, now, -1)
	if err != nil {
		t.Fatal(err)
	}
	if tombstoneLeft() || res.TombstonesRemoved != 1 {
		t.Fatalf("the tombstone stayed past delete.retention.ms: %+v", res)
	}
	_ = written
}

func TestCompactMapBudgetTakesSeveralRounds(t *testing.T) {
	fs := NewMemFS()
	now := int64(0)
	l := mustOpen(t, "/p", compactLogConfig(fs, &now))
	defer l.Close()
	written := writeVersions(t, l, 0, 40, 4, 2, 0)
	l.Roll()
	cc := compactConfig()
	cc.OffsetMapBytes = 12 * offsetMapEntryBytes // ten keys
	rounds := 0
	for ; rounds < 100; rounds++ {
		res, err := l.Compact(cc, now, -1)
		if err != nil {
			t.Fatal(err)
		}
		if res.CleanedUpTo == 0 {
			break
		}
		if res.Keys > 10 {
			t.Fatalf("round %d put %d keys in a map of 10", rounds, res.Keys)
		}
	}
	if rounds < 5 {
		t.Fatalf("%d rounds for 40 keys with a map of 10", rounds)
	}
	sameRecords(t, "after the rounds", readRecords(t, l), latestByKey(written))
}

func TestCompactMinLagAndRatio(t *testing.T) {
	fs := NewMemFS()
	now := int64(100_000)
	l := mustOpen(t, "/p", compactLogConfig(fs, &now))
	defer l.Close()
	written := writeVersions(t, l, 0, 5, 6, 5, now-10)
	l.Roll()
	cc := compactConfig()
	cc.MinCompactionLagMs = 60_000
	if res, err := l.Compact(cc, now, -1); err != nil || res.CleanedUpTo != 0 {
		t.Fatalf("cleaned records younger than min.compaction.lag.ms: %+v %v", res, err)
	}
	sameRecords(t, "lag", readRecords(t, l), written)
	cc.MinCompactionLagMs = 0
	cc.MinCleanableDirtyRatio = 1
	if _, err := l.Compact(cc, now, -1); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "ratio 1 with all dirty", readRecords(t, l), latestByKey(written))
	// Now a small dirty tail: below the ratio, no round, until
	// max.compaction.lag.ms says the oldest dirty record waited enough.
	more := writeVersions(t, l, 0, 1, 1, 1, now)
	l.Roll()
	cc.MinCleanableDirtyRatio = 0.9
	cc.MaxCompactionLagMs = 1000
	if res, err := l.Compact(cc, now+999, -1); err != nil || res.CleanedUpTo != 0 {
		t.Fatalf("round below the ratio: %+v %v", res, err)
	}
	if res, err := l.Compact(cc, now+1000, -1); err != nil || res.CleanedUpTo == 0 {
		t.Fatalf("no round past max.compaction.lag.ms: %+v %v", res, err)
	}
	sameRecords(t, "max lag", readRecords(t, l), latestByKey(append(written, more...)))
}

func TestCompactThrottle(t *testing.T) {
	fs := NewMemFS()
	now := int64(0)
	l := mustOpen(t, "/p", compactLogConfig(fs, &now))
	defer l.Close()
	writeVersions(t, l, 0, 10, 10, 4, 0)
	l.Roll()
	var slept time.Duration
	cc := compactConfig()
	cc.IOBytesPerSecond = 1 << 20
	cc.Sleep = func(d time.Duration) { slept += d }
	start := time.Now()
	res, err := l.Compact(cc, now, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Duration(float64(res.BytesRead+res.BytesWritten) / float64(cc.IOBytesPerSecond) * float64(time.Second))
	if res.BytesRead == 0 || slept < want-time.Since(start) || slept > want+time.Millisecond {
		t.Fatalf("slept %v for %d bytes at %d B/s (want about %v)", slept, res.BytesRead+res.BytesWritten, cc.IOBytesPerSecond, want)
	}
	if res.ThrottledFor != slept {
		t.Fatalf("reported %v throttled, slept %v", res.ThrottledFor, slept)
	}
}

// A reader holding a span of a segment the cleaner replaced keeps reading
// the old bytes through the data file handed to KeepDeletedDataFiles;
// through the log, its span is stale.
func TestCompactOldDataFileStaysReadable(t *testing.T) {
	fs := NewMemFS()
	now := int64(0)
	l := mustOpen(t, "/p", compactLogConfig(fs, &now))
	defer l.Close()
	writeVersions(t, l, 0, 4, 10, 2, 0)
	l.Roll()
	spans, err := l.Read(0, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	old := spans[0]
	oldBytes, err := l.ReadSpans(nil, spans[:1])
	if err != nil {
		t.Fatal(err)
	}
	var kept []File
	l.KeepDeletedDataFiles(func(s *Segment, data File) {
		if s == old.Segment {
			kept = append(kept, data)
		} else {
			data.Close()
		}
	})
	if _, err := l.Compact(compactConfig(), now, -1); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 {
		t.Fatalf("%d data files kept for the replaced segment", len(kept))
	}
	got := make([]byte, old.Len)
	if _, err := kept[0].ReadAt(got, old.Pos); err != nil || !bytes.Equal(got, oldBytes) {
		t.Fatalf("old data file read back %v, differs: %v", err, !bytes.Equal(got, oldBytes))
	}
	kept[0].Close()
	if _, err := l.ReadSpans(nil, spans[:1]); err == nil {
		t.Fatal("a span of the replaced segment still reads through the log")
	}
	if _, err := l.SpanFD(old); err == nil {
		t.Fatal("a span of the replaced segment still gets a descriptor")
	}
}

// The leader-epoch list is not the cleaner's: it keeps every epoch whose
// first offset is at or past the log start, also an epoch all of whose
// frames were dropped, and every frame kept still has the epoch the list
// gives its offset.
func TestCompactKeepsEpochList(t *testing.T) {
	fs := NewMemFS()
	now := int64(0)
	cfg := compactLogConfig(fs, &now)
	l := mustOpen(t, "/p", cfg)
	var written []kv
	for e := int32(0); e < 4; e++ {
		if err := l.SetLeaderEpoch(e); err != nil {
			t.Fatal(err)
		}
		written = append(written, writeVersions(t, l, 0, 3, 3, 1, 0)...)
	}
	// A record of key 9 in epoch 3 that nothing supersedes.
	written = append(written, appendKeyed(t, l, 0, []kv{{key: key(9), value: []byte("last")}})...)
	l.Roll()
	before := l.Epochs()
	if _, err := l.Compact(compactConfig(), now, -1); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "epochs", readRecords(t, l), latestByKey(written))
	for _, e := range l.Epochs() {
		found := false
		for _, b := range before {
			found = found || b == e
		}
		if !found {
			t.Fatalf("epoch list %v after compaction, %v before", l.Epochs(), before)
		}
	}
	if err := l.CheckEpochs(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	fs.Remove("/p/" + epochFileName)
	l = mustOpen(t, "/p", cfg)
	defer l.Close()
	if err := l.CheckEpochs(); err != nil {
		t.Fatalf("rebuilt epoch list: %v", err)
	}
}
