package segment

import (
	"fmt"
	"sort"

	"github.com/strata-db/strata/schema"
)

// kv is one record as a test writes and reads it; a nil value is a
// tombstone, a nil key a keyless record.
type kv struct {
	offset int64
	key    []byte
	value  []byte
	ts     int64
}

func (r kv) String() string {
	return fmt.Sprintf("%d:%q=%q", r.offset, r.key, r.value)
}

// keyedFrame builds one frame of records (their offsets are assigned by
// the log).
func keyedFrame(t tb, compression uint16, recs []kv) []byte {
	t.Helper()
	b, err := schema.NewBatchBuilder(schema.BatchOptions{Compression: compression, ProducerID: 7, ProducerEpoch: 3, BaseSequence: 11})
	if err != nil {
		t.Fatalf("builder: %v", err)
	}
	for _, r := range recs {
		if err := b.Append(&schema.Record{Key: r.key, Value: r.value, TimestampMs: r.ts,
			Headers: []schema.RecordHeader{{Key: []byte("h"), Value: r.key}}}); err != nil {
			t.Fatalf("append record: %v", err)
		}
	}
	f, err := b.AppendTo(nil)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return f
}

// appendKeyed appends recs as one frame and returns them with offsets.
func appendKeyed(t tb, l *Log, compression uint16, recs []kv) []kv {
	t.Helper()
	base, err := l.Append(keyedFrame(t, compression, recs))
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	out := make([]kv, len(recs))
	for i, r := range recs {
		r.offset = base + int64(i)
		out[i] = r
	}
	return out
}

// readRecords decodes every record of the log, checking every frame (CRC,
// body) and that offsets only increase.
func readRecords(t tb, l *Log) []kv {
	t.Helper()
	var out []kv
	var rd schema.BatchReader
	prevNext := int64(-1)
	for _, f := range splitFrames(t, readAll(t, l, l.LogStart())) {
		if err := rd.Reset(f); err != nil {
			t.Fatalf("frame: %v", err)
		}
		h := rd.Header()
		if h.BaseOffset < prevNext {
			t.Fatalf("frame at %d before the previous frame's end %d", h.BaseOffset, prevNext)
		}
		prevNext = h.NextOffset()
		var v schema.RecordView
		for rd.Next(&v) {
			r := kv{offset: v.Offset, ts: v.TimestampMs}
			if v.Key != nil {
				r.key = append([]byte{}, v.Key...)
			}
			if v.Value != nil {
				r.value = append([]byte{}, v.Value...)
			}
			if hk, hv := v.Header(0); string(hk) != "h" || string(hv) != string(r.key) {
				t.Fatalf("record %d lost its header: %q=%q", v.Offset, hk, hv)
			}
			out = append(out, r)
		}
	}
	return out
}

// latestByKey is what a full compaction must keep of written records: the
// last record of every key (tombstones included), and every keyless one.
func latestByKey(written []kv) []kv {
	last := map[string]int64{}
	for _, r := range written {
		if r.key != nil {
			last[string(r.key)] = r.offset
		}
	}
	var out []kv
	for _, r := range written {
		if r.key == nil || last[string(r.key)] == r.offset {
			out = append(out, r)
		}
	}
	return out
}

func sameRecords(t tb, what string, got, want []kv) {
	t.Helper()
	sort.Slice(got, func(i, j int) bool { return got[i].offset < got[j].offset })
	sort.Slice(want, func(i, j int) bool { return want[i].offset < want[j].offset })
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d:\n got %v\nwant %v", what, len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.offset != w.offset || string(g.key) != string(w.key) || string(g.value) != string(w.value) ||
			(g.key == nil) != (w.key == nil) || (g.value == nil) != (w.value == nil) || g.ts != w.ts {
			t.Fatalf("%s: record %d is %v (ts %d), want %v (ts %d)", what, i, g, g.ts, w, w.ts)
		}
	}
}

func compactConfig() CompactionConfig {
	return CompactionConfig{MinCleanableDirtyRatio: 0.01, OffsetMapBytes: 1 << 16}
}

func compactLogConfig(fs FS, now *int64) Config {
	cfg := memConfig(fs)
	cfg.NowMs = func() int64 { return *now }
	return cfg
}

func mustOpen(t tb, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func key(i int) []byte { return []byte(fmt.Sprintf("key-%03d", i)) }
