package segment

import (
	"fmt"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

// compactModel is the log as a list of records, with what the cleaner may
// and may not do to it.
type compactModel struct {
	recs     []kv
	appendAt map[int64]int64 // offset -> time appended
	end      int64
}

func (m *compactModel) truncate(end int64) {
	k := sort.Search(len(m.recs), func(i int) bool { return m.recs[i].offset >= end })
	m.recs = m.recs[:k]
	m.end = end
}

// check holds the log to the model: every record the log serves at or
// past the log start is one the model has, unchanged; every keyless
// record and every key's latest record is there, but for a tombstone
// older than delete.retention.ms.
func (m *compactModel) check(t *rapid.T, l *Log, nowMs, deleteRetentionMs int64) {
	if l.End() != m.end {
		t.Fatalf("end %d, model %d", l.End(), m.end)
	}
	start := l.LogStart()
	byOffset := make(map[int64]kv, len(m.recs))
	for _, r := range m.recs {
		byOffset[r.offset] = r
	}
	got := make(map[int64]bool)
	for _, r := range readRecords(t, l) {
		if r.offset < start {
			continue
		}
		w, ok := byOffset[r.offset]
		if !ok || !recordsEqual([]kv{r}, []kv{w}) {
			t.Fatalf("the log holds %v, the model %v (found %v)", r, w, ok)
		}
		got[r.offset] = true
	}
	for _, r := range latestByKey(m.recs) {
		if r.offset < start || got[r.offset] {
			continue
		}
		if r.key != nil && r.value == nil && nowMs-m.appendAt[r.offset] >= deleteRetentionMs {
			continue
		}
		t.Fatalf("record %v lost (log start %d)", r, start)
	}
}

func TestCompactMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		fs := NewMemFS()
		now := int64(1_000_000)
		cfg := compactLogConfig(fs, &now)
		cfg.SegmentBytes = rapid.SampledFrom([]int64{1024, 4096}).Draw(t, "segBytes")
		l := mustOpen(t, "/p", cfg)
		defer func() { l.Close() }()
		m := &compactModel{appendAt: map[int64]int64{}}
		cc := CompactionConfig{
			MinCleanableDirtyRatio: rapid.SampledFrom([]float64{0.01, 0.5}).Draw(t, "ratio"),
			DeleteRetentionMs:      rapid.SampledFrom([]int64{1, 500, 1 << 40}).Draw(t, "deleteRetention"),
			MinCompactionLagMs:     rapid.SampledFrom([]int64{0, 0, 300}).Draw(t, "minLag"),
		}
		keys := rapid.IntRange(1, 30).Draw(t, "keys")
		hw := int64(0) // the high watermark: compaction reads below it only
		ops := map[string]func(*rapid.T){
			"append": func(t *rapid.T) {
				n := rapid.IntRange(1, 6).Draw(t, "records")
				recs := make([]kv, n)
				for i := range recs {
					k := rapid.IntRange(-1, keys-1).Draw(t, "key")
					if k >= 0 {
						recs[i].key = key(k)
					}
					if k < 0 || rapid.IntRange(0, 5).Draw(t, "tombstone") > 0 {
						recs[i].value = []byte(fmt.Sprintf("v%d", len(m.recs)+i))
					}
					recs[i].ts = now
				}
				comp := uint16(rapid.IntRange(0, 1).Draw(t, "lz4"))
				for _, r := range appendKeyed(t, l, comp, recs) {
					m.recs = append(m.recs, r)
					m.appendAt[r.offset] = now
				}
				m.end = l.End()
			},
			"tick": func(t *rapid.T) { now += rapid.Int64Range(1, 400).Draw(t, "ms") },
			"roll": func(t *rapid.T) {
				if err := l.Roll(); err != nil {
					t.Fatal(err)
				}
			},
			"compact": func(t *rapid.T) {
				c := cc
				c.OffsetMapBytes = rapid.SampledFrom([]int64{8 * offsetMapEntryBytes, 64 * offsetMapEntryBytes, 1 << 16}).Draw(t, "mapBytes")
				if _, err := l.Compact(c, now, hw); err != nil {
					t.Fatalf("compact: %v", err)
				}
			},
			"reopen": func(t *rapid.T) {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = mustOpen(t, "/p", cfg)
			},
			"commit": func(t *rapid.T) { hw = l.End() },
			"truncate": func(t *rapid.T) {
				// Only past the high watermark, as a follower truncates.
				from := max(l.LogStart(), hw)
				if l.End() <= from {
					return
				}
				off := rapid.Int64Range(from, l.End()-1).Draw(t, "at")
				if err := l.Truncate(off); err != nil {
					t.Fatalf("truncate: %v", err)
				}
				m.truncate(l.End())
			},
			"": func(t *rapid.T) { m.check(t, l, now, cc.DeleteRetentionMs) },
		}
		t.Repeat(ops)
		// Everything compacted: the closed segments hold exactly the
		// latest record of every key (less old tombstones) and the
		// keyless ones.
		if err := l.Roll(); err != nil {
			t.Fatal(err)
		}
		c := cc
		c.MinCompactionLagMs, c.MinCleanableDirtyRatio, c.OffsetMapBytes = 0, 0.0001, 1<<16
		for round := 0; round < 8; round++ {
			if _, err := l.Compact(c, now, -1); err != nil {
				t.Fatalf("final compact: %v", err)
			}
		}
		m.check(t, l, now, cc.DeleteRetentionMs)
		latest := map[int64]bool{}
		for _, r := range latestByKey(m.recs) {
			latest[r.offset] = true
		}
		for _, r := range readRecords(t, l) {
			if r.offset >= l.LogStart() && !latest[r.offset] {
				t.Fatalf("record %v superseded but kept after full compaction", r)
			}
		}
		if err := l.CheckConsistency(); err != nil {
			t.Fatal(err)
		}
	})
}
