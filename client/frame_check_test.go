package client

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/strata-db/strata/schema"
)

// checkFrames builds n frames of a few records each.
func checkFrames(t *testing.T, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < n; i++ {
		b, err := schema.NewBatchBuilder(schema.BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 1+i%4; j++ {
			if err := b.Append(&schema.Record{Value: []byte(fmt.Sprintf("frame %d record %d", i, j))}); err != nil {
				t.Fatal(err)
			}
		}
		f, err := b.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

// feed shows trailing to fc in pieces of random size, as reads give them.
func feed(fc *frameCheck, trailing []byte, rng *rand.Rand) {
	for have := 0; have < len(trailing); {
		have = min(len(trailing), have+1+rng.IntN(200))
		fc.advance(trailing[:have])
	}
}

func newFrameCheck(regions ...int64) *frameCheck {
	fc := &frameCheck{}
	fc.begin()
	for _, n := range regions {
		fc.addRegion(n)
	}
	return fc
}

// Without a begin (an answer whose envelope gave no regions) nothing is
// taken as checked.
func TestFrameCheckWithoutRegionsChecksNothing(t *testing.T) {
	frames := checkFrames(t, 2)
	var fc frameCheck
	fc.advance(append(append([]byte{}, frames[0]...), frames[1]...))
	if fc.checkedEnd != 0 {
		t.Fatalf("checked up to %d without regions", fc.checkedEnd)
	}
}

func TestFrameCheckCoversWholeFrames(t *testing.T) {
	frames := checkFrames(t, 6)
	rng := rand.New(rand.NewPCG(1, 2))
	// Region 1: frames 0-1 and the first 100 bytes of frame 2 (cut
	// short); region 2: empty; region 3: frames 3-4 and 30 bytes of frame
	// 5, less than a header.
	var trailing []byte
	trailing = append(trailing, frames[0]...)
	trailing = append(trailing, frames[1]...)
	trailing = append(trailing, frames[2][:100]...)
	r1 := int64(len(trailing))
	trailing = append(trailing, frames[3]...)
	trailing = append(trailing, frames[4]...)
	lastWhole := int64(len(trailing))
	trailing = append(trailing, frames[5][:30]...)
	r3 := int64(len(trailing)) - r1

	for round := 0; round < 50; round++ {
		fc := newFrameCheck(r1, 0, r3)
		feed(fc, trailing, rng)
		if fc.checkedEnd != lastWhole {
			t.Fatalf("round %d: checked up to %d, want %d (end of the last whole frame)", round, fc.checkedEnd, lastWhole)
		}
	}
}

func TestFrameCheckStopsAtABadCRC(t *testing.T) {
	frames := checkFrames(t, 4)
	var trailing []byte
	for _, f := range frames {
		trailing = append(trailing, f...)
	}
	badStart := int64(len(frames[0]) + len(frames[1]))
	trailing[badStart+schema.FrameHeaderSize+3] ^= 0x40 // a body byte of frame 2
	fc := newFrameCheck(int64(len(trailing)))
	feed(fc, trailing, rand.New(rand.NewPCG(3, 4)))
	if fc.checkedEnd != badStart || !fc.stopped {
		t.Fatalf("checked up to %d (stopped %v), want %d: frame 2 fails its CRC", fc.checkedEnd, fc.stopped, badStart)
	}
}

func TestFrameCheckStopsAtAnImpossibleLength(t *testing.T) {
	frames := checkFrames(t, 2)
	trailing := append(append([]byte{}, frames[0]...), make([]byte, schema.FrameHeaderSize)...)
	fc := newFrameCheck(int64(len(trailing)))
	fc.advance(trailing)
	if fc.checkedEnd != int64(len(frames[0])) || !fc.stopped {
		t.Fatalf("checked up to %d (stopped %v), want %d", fc.checkedEnd, fc.stopped, len(frames[0]))
	}
}
