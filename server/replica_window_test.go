package server

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// TestReplicaReadWindow checks the leader's fill of a follower's fetch
// window against frames of random record counts, so that windows begin
// and end inside frames: the answer holds exactly the frames whose base
// offset lies in [start, limit), whole and in order, as far as the byte
// bound allows (at least one), and the limit it reports is where they
// stop (the window's limit when the last one runs past it).
func TestReplicaReadWindow(t *testing.T) {
	b := startBroker(t, t.TempDir(), 1)
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("windows", 1); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	type frame struct {
		base, next int64
		bytes      []byte
	}
	var frames []frame
	var next int64
	for range 60 {
		n := 1 + rng.IntN(9)
		f := batch(t, int(next), n, 1000)
		env, _ := c.call(produceMsg(fb.AcksAll, "windows", 0, f))
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != next {
			t.Fatalf("produce: %v at %d, want %d", r.ErrorCode, r.BaseOffset, next)
		}
		schema.PatchBaseOffset(f, next)
		frames = append(frames, frame{base: next, next: next + int64(n), bytes: f})
		next += int64(n)
	}
	end := next
	sh := b.srv.Shards()[0]
	read := func(start, limit int64, maxBytes int) (got []byte, gotLimit int64, err error) {
		done := make(chan struct{})
		sh.Post(func(sh *Shard) {
			defer close(done)
			p := b.shards[0].partitionAt("windows", 0)
			files, hold, l, rerr := p.readWindow(start, limit, maxBytes)
			gotLimit, err = l, rerr
			for _, f := range files {
				buf := make([]byte, f.Len)
				if _, perr := unix.Pread(f.FD, buf, f.Pos); perr != nil && err == nil {
					err = perr
				}
				got = append(got, buf...)
			}
			if hold != nil {
				hold.Release()
			}
		})
		<-done
		return got, gotLimit, err
	}
	for range 400 {
		start := rng.Int64N(end + 1)
		limit := start + 1 + rng.Int64N(40)
		limit = min(limit, end)
		if limit <= start {
			continue
		}
		maxBytes := 1 + rng.IntN(3*len(frames[0].bytes))
		got, gotLimit, err := read(start, limit, maxBytes)
		if err != nil {
			t.Fatalf("window [%d, %d) max %d: %v", start, limit, maxBytes, err)
		}
		// The model: frames with base in [start, limit), whole, up to
		// maxBytes but at least one.
		var want []byte
		wantLimit := start
		for _, f := range frames {
			if f.base < start || f.base >= limit {
				continue
			}
			if len(want) > 0 && len(want)+len(f.bytes) > maxBytes {
				break
			}
			want = append(want, f.bytes...)
			wantLimit = min(f.next, limit)
		}
		if len(want) == 0 {
			// No frame begins in the window: the first frame at or after
			// start is past it, or start lies inside a frame that ends
			// past limit; the limit is where the next frame begins, or
			// the window's limit.
			wantLimit = limit
			for _, f := range frames {
				if f.base >= start {
					wantLimit = min(f.base, limit)
					break
				}
			}
		}
		if string(got) != string(want) {
			t.Fatalf("window [%d, %d) max %d: %d bytes, want %d (%s)", start, limit, maxBytes, len(got), len(want), describeFrames(got))
		}
		if gotLimit != wantLimit {
			t.Fatalf("window [%d, %d) max %d: limit %d, want %d", start, limit, maxBytes, gotLimit, wantLimit)
		}
	}
}

func describeFrames(b []byte) string {
	s := ""
	for len(b) >= schema.FrameHeaderSize {
		h, err := schema.ParseFrameHeader(b)
		if err != nil || int(h.Length) > len(b) {
			return s + " (bad)"
		}
		s += fmt.Sprintf(" [%d,+%d)", h.BaseOffset, h.RecordCount)
		b = b[h.Length:]
	}
	return s
}
