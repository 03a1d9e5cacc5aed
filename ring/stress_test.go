package ring

import (
	"testing"
)

// TestStressNoLostOrDuplicateCompletions pushes millions of operations
// through one ring from one locked thread, in batches that wrap both
// queues many times over, and checks every tag comes back exactly once.
func TestStressNoLostOrDuplicateCompletions(t *testing.T) {
	total := 2_000_000
	if testing.Short() {
		total = 200_000
	}
	const batch = 256
	r := newShardRing(t, batch)
	rd, wr := pipe(t)
	seen := make([]uint64, (total+63)/64)
	var pipeByte [1]byte
	var readBack [1]byte
	completed, submitted := 0, 0
	cqes := make([]*CQE, batch*4)
	for completed < total {
		for submitted < total {
			sqe := r.GetSQE()
			if sqe == nil {
				break
			}
			tag := uint64(submitted)
			switch submitted % 64 {
			case 0: // a write and a linked read through a pipe among the nops
				if r.SQSpace() < 1 {
					sqe.PrepNop()
					break
				}
				sqe.PrepWrite(wr, pipeByte[:], ^uint64(0))
				sqe.SetFlags(SQEIOLink)
				sqe.SetUserData(tag)
				submitted++
				sqe = r.GetSQE()
				tag = uint64(submitted)
				sqe.PrepRead(rd, readBack[:], ^uint64(0))
			default:
				sqe.PrepNop()
			}
			sqe.SetUserData(tag)
			submitted++
		}
		if _, err := r.SubmitAndWait(1); err != nil {
			t.Fatal(err)
		}
		n := r.PeekBatchCQE(cqes)
		for _, c := range cqes[:n] {
			tag := c.UserData
			if tag >= uint64(total) {
				t.Fatalf("completion with unknown tag %d", tag)
			}
			if c.Res < 0 {
				t.Fatalf("op %d failed: %v", tag, c.Err())
			}
			word, bit := tag/64, uint64(1)<<(tag%64)
			if seen[word]&bit != 0 {
				t.Fatalf("duplicate completion for %d", tag)
			}
			seen[word] |= bit
		}
		r.CQAdvance(uint32(n))
		completed += n
	}
	for i := range total {
		if seen[i/64]&(1<<(i%64)) == 0 {
			t.Fatalf("lost completion for %d", i)
		}
	}
	if r.Overflow() != 0 || r.Dropped() != 0 {
		t.Fatalf("overflow %d dropped %d", r.Overflow(), r.Dropped())
	}
	if c, err := r.PeekCQE(); c != nil || err != nil {
		t.Fatalf("stray completion %+v %v", c, err)
	}
}

// TestSteadyStateAllocatesNothing: once set up, submitting and completing
// allocates nothing, for plain ops, batch peeking, and a multishot receive
// with buffer recycling.
func TestSteadyStateAllocatesNothing(t *testing.T) {
	r := newShardRing(t, 64)
	nop := func() {
		sqe := r.GetSQE()
		sqe.PrepNop()
		sqe.SetUserData(5)
		if _, err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		c, err := r.WaitCQE()
		if err != nil || c.UserData != 5 {
			t.Fatal("bad completion")
		}
		r.CQESeen()
	}
	if a := testing.AllocsPerRun(1000, nop); a != 0 {
		t.Fatalf("nop round trip: %v allocs, want 0", a)
	}

	cqes := make([]*CQE, 32)
	batch := func() {
		for range 32 {
			r.GetSQE().PrepNop()
		}
		if _, err := r.SubmitAndWait(32); err != nil {
			t.Fatal(err)
		}
		n := r.PeekBatchCQE(cqes)
		r.CQAdvance(uint32(n))
	}
	if a := testing.AllocsPerRun(200, batch); a != 0 {
		t.Fatalf("batch of 32: %v allocs, want 0", a)
	}

	count := 0
	onCQE := func(*CQE) { count++ }
	each := func() {
		r.GetSQE().PrepNop()
		if _, err := r.SubmitAndWait(1); err != nil {
			t.Fatal(err)
		}
		r.ForEachCQE(onCQE)
	}
	if a := testing.AllocsPerRun(1000, each); a != 0 {
		t.Fatalf("ForEachCQE: %v allocs, want 0", a)
	}

	a, b := socketpair(t)
	br, err := r.NewBufRing(3, 16, 256)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	sqe := r.GetSQE()
	sqe.PrepRecvMultishot(b, br.GroupID(), 0)
	sqe.SetUserData(9)
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	out, err := AllocBuffers(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeBuffers(out)
	msg := out[:100]
	recv := func() {
		sqe := r.GetSQE()
		sqe.PrepSend(a, msg, 0)
		sqe.SetUserData(8)
		sqe.SetFlags(SQECQESkipSuccess)
		if _, err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		c, err := r.WaitCQE()
		if err != nil || c.UserData != 9 || c.Res != 100 || !c.More() {
			t.Fatalf("recv completion %+v %v", c, err)
		}
		br.Recycle(c.BufferID())
		br.Publish()
		r.CQESeen()
	}
	if a := testing.AllocsPerRun(500, recv); a != 0 {
		t.Fatalf("multishot recv with recycling: %v allocs, want 0", a)
	}
}
