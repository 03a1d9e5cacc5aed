package segment

import (
	"errors"
	"testing"

	"github.com/strata-db/strata/schema"
)

// coreOnly drives the core with no driver at all: frames live in a byte
// slice standing in for the data file.
func TestCoreSansIO(t *testing.T) {
	c, err := NewCore(Config{SegmentBytes: 1024, AllocateStepBytes: 256, IndexIntervalBytes: 128, IndexBytes: 64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := c.cfg.indexEntries()
	if _, err := c.AddActiveSegment(0, make([]byte, n*offsetEntrySize), make([]byte, n*timeEntrySize), "seg0"); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishOpen(0, 0); err != nil {
		t.Fatal(err)
	}
	file := make([]byte, 1024)
	var plans []AppendPlan
	grows := 0
	for i := 0; i < 3; i++ {
		fr := testFrame(2, 100, int64(10*i), uint64(i))
		h, _ := schema.CheckFrame(fr)
		// A frame past the allocated end needs the segment to grow by
		// whole 256-byte steps first; the core refuses it until then.
		if g, ok := c.NeedGrowth(int64(h.Length)); ok {
			if _, err := c.PrepareAppend(&h, 0); !errors.Is(err, ErrNeedGrowth) {
				t.Fatalf("prepare past the allocated end: %v", err)
			}
			end := int64(len(plans)+1) * int64(h.Length) // nothing committed yet
			if g.Data.From != c.Active().Allocated() || g.Target != g.Data.To || g.Target%256 != 0 || g.Target < end {
				t.Fatalf("growth %+v for a frame ending at %d", g, end)
			}
			if g.OffsetIndex.To != 64 || g.TimeIndex.To != 96 {
				t.Fatalf("index growth %+v %+v, want the whole 64 and 96-byte files", g.OffsetIndex, g.TimeIndex)
			}
			c.Grown(&g)
			grows++
		}
		p, err := c.PrepareAppend(&h, 0)
		if err != nil {
			t.Fatal(err)
		}
		schema.PatchBaseOffset(fr, p.BaseOffset)
		copy(file[p.Pos:], fr)
		plans = append(plans, p)
	}
	if plans[2].BaseOffset != 4 || plans[2].Pos != 2*164 || plans[0].Segment.Handle != "seg0" {
		t.Fatalf("plans %+v", plans)
	}
	// 492 bytes: the first frame takes one step, the third a second one.
	if grows != 2 || c.Active().Allocated() != 512 {
		t.Fatalf("%d growths, allocated %d, want 2 and 512", grows, c.Active().Allocated())
	}
	if err := c.CommitAppend(&plans[1]); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("out-of-order commit: %v", err)
	}
	// Nothing is readable before its commit.
	var rp ReadPlan
	if err := c.StartRead(&rp, 0, 1<<20, -1); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := rp.Next(); ok {
		t.Fatalf("uncommitted data readable")
	}
	for i := range plans {
		if err := c.CommitAppend(&plans[i]); err != nil {
			t.Fatal(err)
		}
	}
	if c.End() != 6 || c.RecoveryPoint() != 0 {
		t.Fatalf("end %d recovery point %d", c.End(), c.RecoveryPoint())
	}
	c.Flushed(6)
	// Read from offset 3 (inside the second frame), at most 200 bytes,
	// below the high watermark 6: the second and third frames don't both
	// fit, so just the second.
	if err := c.StartRead(&rp, 3, 200, 6); err != nil {
		t.Fatal(err)
	}
	headers := 0
	for {
		s, pos, ok := rp.Next()
		if !ok {
			break
		}
		if s.Handle != "seg0" {
			t.Fatalf("handle %v", s.Handle)
		}
		headers++
		if err := rp.Feed(file[pos : pos+schema.FrameHeaderSize]); err != nil {
			t.Fatal(err)
		}
	}
	sp := rp.Spans()
	if len(sp) != 1 || sp[0].Pos != 164 || sp[0].Len != 164 || sp[0].FirstOffset != 2 || sp[0].NextOffset != 4 {
		t.Fatalf("spans %+v after %d headers", sp, headers)
	}
	// A garbage header is never turned into a span.
	if err := c.StartRead(&rp, 0, 1<<20, -1); err != nil {
		t.Fatal(err)
	}
	if err := rp.Feed(make([]byte, schema.FrameHeaderSize)); !errors.Is(err, ErrCorrupt) || len(rp.Spans()) != 0 {
		t.Fatalf("garbage header: %v, %d spans", err, len(rp.Spans()))
	}
	// The next frame does not fit the 1024-byte segment: roll first.
	big := testFrame(1, 600, 0, 9)
	h, _ := schema.CheckFrame(big)
	if _, err := c.PrepareAppend(&h, 0); !errors.Is(err, ErrNeedRoll) {
		t.Fatalf("prepare past segment end: %v", err)
	}
	old, act, err := c.Roll(make([]byte, n*offsetEntrySize), make([]byte, n*timeEntrySize), "seg6")
	if err != nil || old.Handle != "seg0" || act.Base() != 6 || !old.Closed() {
		t.Fatalf("roll: %v", err)
	}
	// Deleting below 6 drops the closed segment and hands it back.
	removed, err := c.DeleteRecordsBefore(6)
	if err != nil || len(removed) != 1 || removed[0] != old || c.LogStart() != 6 {
		t.Fatalf("delete before 6: %v %v", removed, err)
	}
	if err := c.CheckConsistency(); err != nil {
		t.Fatal(err)
	}
}
