package mailbox

import (
	"runtime"
	"sync"
	"testing"
)

func TestNewRejectsBadCapacity(t *testing.T) {
	for _, c := range []int{0, 1, 3, 100, MaxCapacity * 2} {
		if _, err := New[int](c); err == nil {
			t.Errorf("New(%d) accepted", c)
		}
	}
}

func TestFIFOAndFull(t *testing.T) {
	q, err := New[int](4)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.Pop(); ok {
		t.Fatal("pop from empty queue")
	}
	for round := range 3 { // wraps the ring
		for i := range 4 {
			if !q.Push(round*10 + i) {
				t.Fatalf("push %d refused", i)
			}
		}
		if q.Push(99) {
			t.Fatal("push into a full queue accepted")
		}
		if q.Len() != 4 {
			t.Fatalf("Len %d", q.Len())
		}
		for i := range 4 {
			v, ok := q.Pop()
			if !ok || v != round*10+i {
				t.Fatalf("pop %d: %d %v", i, v, ok)
			}
		}
		if _, ok := q.Pop(); ok {
			t.Fatal("pop beyond what was pushed")
		}
	}
}

// TestManyProducers: every message from every producer arrives exactly
// once and each producer's messages arrive in its order.
func TestManyProducers(t *testing.T) {
	const producers, each = 4, 50_000
	q, err := New[uint64](256)
	if err != nil {
		t.Fatal(err)
	}
	doorbell := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				for !q.Push(uint64(p)<<32 | uint64(i)) {
					runtime.Gosched() // full: the consumer is behind
				}
				if q.Arm() {
					doorbell <- struct{}{}
				}
			}
		}()
	}
	next := make([]uint64, producers)
	got := 0
	for got < producers*each {
		<-doorbell
		q.Disarm()
		for {
			v, ok := q.Pop()
			if !ok {
				break
			}
			p, i := v>>32, v&0xffffffff
			if i != next[p] {
				t.Fatalf("producer %d: got %d, want %d", p, i, next[p])
			}
			next[p]++
			got++
		}
		// A producer may have claimed a slot and not yet published it
		// when the drain stopped: it rings after publishing only if the
		// queue is disarmed, which it now is.
	}
	wg.Wait()
	if _, ok := q.Pop(); ok {
		t.Fatal("extra message")
	}
}

func TestPopReleasesReferences(t *testing.T) {
	q, _ := New[*int](2)
	x := 5
	q.Push(&x)
	q.Pop()
	if q.slots[0].val != nil {
		t.Fatal("popped slot still references the message")
	}
}

func BenchmarkPushPop(b *testing.B) {
	q, _ := New[int](1024)
	b.ReportAllocs()
	for i := range b.N {
		q.Push(i)
		q.Pop()
	}
}
