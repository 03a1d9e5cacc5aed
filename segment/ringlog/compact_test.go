package ringlog

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
)

func keyedFrame(t testing.TB, k, v int) []byte {
	t.Helper()
	b, err := schema.NewBatchBuilder(schema.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append(&schema.Record{Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(fmt.Sprintf("v%d-%d", k, v))}); err != nil {
		t.Fatal(err)
	}
	f, err := b.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCompactionOnTheRing builds a round off the shard's goroutine while
// the shard goes on appending, swaps it in on the shard, and checks that
// reads (the frame table included) serve only the cleaned segments, that
// a span of a replaced segment read before the swap still reads the old
// bytes through the descriptor handed to KeepDeletedDataFiles, and that a
// truncation during a build makes the round stale.
func TestCompactionOnTheRing(t *testing.T) {
	r := shardRing(t)
	cfg := testConfig(segment.FlushEveryAck)
	cfg.SegmentBytes = 4 << 10
	snk := newSink()
	l, err := Open(r, t.TempDir(), cfg, testPrefix, snk)
	if err != nil {
		t.Fatal(err)
	}
	s := newShard(t, r, l)
	next := uint64(0)
	appendOne := func(k, v int) {
		t.Helper()
		if _, err := l.Append(keyedFrame(t, k, v), next); err != nil {
			t.Fatal(err)
		}
		next++
		s.until(func() bool { return snk.nAppends == int(next) && l.Idle() })
	}
	for v := 0; v < 12; v++ {
		for k := 0; k < 5; k++ {
			appendOne(k, v)
		}
	}
	if len(l.Segments()) < 3 {
		t.Fatalf("%d segments", len(l.Segments()))
	}
	// A span of the first segment, from the frame table, before the swap.
	spans, err := l.Read(0, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	oldSpan := spans[0]
	oldBytes := preadSpans(t, l, nil, spans[:1])
	var kept []segment.File
	l.KeepDeletedDataFiles(func(sg *segment.Segment, data segment.File) {
		if sg == oldSpan.Segment {
			kept = append(kept, data)
		} else {
			data.Close()
		}
	})
	cc := segment.CompactionConfig{MinCleanableDirtyRatio: 0.01, OffsetMapBytes: 1 << 16}
	job, err := l.PlanCompaction(cc, 0, l.End())
	if err != nil || job == nil {
		t.Fatalf("plan: %v %v", job, err)
	}
	built := make(chan error, 1)
	go func() { built <- job.Build() }()
	appendOne(0, 99) // the shard goes on meanwhile
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	res, err := l.FinishCompaction(job)
	if err != nil {
		t.Fatal(err)
	}
	if res.SegmentsRewritten+res.SegmentsRemoved == 0 {
		t.Fatalf("nothing cleaned: %+v", res)
	}
	if len(kept) != 1 {
		t.Fatalf("%d data files handed over for the replaced segment", len(kept))
	}
	got := make([]byte, oldSpan.Len)
	if _, err := kept[0].ReadAt(got, oldSpan.Pos); err != nil || !bytes.Equal(got, oldBytes) {
		t.Fatalf("the old data file no longer reads the old bytes: %v", err)
	}
	kept[0].Close()
	// Every read now serves cleaned frames: the latest of each key
	// below the round, everything after it.
	var rd schema.BatchReader
	seen := map[string]int{}
	all := readAll(t, l, l.LogStart(), 1<<20)
	for len(all) > 0 {
		h, err := schema.CheckFrame(all)
		if err != nil {
			t.Fatal(err)
		}
		if err := rd.Reset(all[:h.Length]); err != nil {
			t.Fatal(err)
		}
		var v schema.RecordView
		for rd.Next(&v) {
			seen[string(v.Key)]++
		}
		all = all[h.Length:]
	}
	for k, n := range seen {
		if n > 3 {
			t.Fatalf("key %s still has %d records", k, n)
		}
	}
	// A truncation while a round is built makes it stale.
	for k := 0; k < 5; k++ {
		for v := 0; v < 6; v++ {
			appendOne(k, 100+v)
		}
	}
	job, err = l.PlanCompaction(cc, 0, l.End()-3)
	if err != nil || job == nil {
		t.Fatalf("second plan: %v %v", job, err)
	}
	if err := job.Build(); err != nil {
		t.Fatal(err)
	}
	if err := l.Truncate(l.End() - 1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.FinishCompaction(job); !errors.Is(err, segment.ErrCompactionStale) {
		t.Fatalf("finish after a truncation: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
