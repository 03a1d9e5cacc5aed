package client

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// inPollLoop runs f on m's Poll goroutine (a GroupConsumer is used from
// one goroutine) between two Polls and returns what it returned.
func inPollLoop[T any](t *testing.T, m *testMember, f func(gc *GroupConsumer) T) T {
	t.Helper()
	out := make(chan T, 1)
	m.mu.Lock()
	m.inLoop = func(gc *GroupConsumer) { out <- f(gc) }
	m.mu.Unlock()
	select {
	case v := <-out:
		return v
	case <-time.After(groupWait):
		t.Fatalf("%s: its Poll loop did not run the hook within %v (failure: %v)", m.name, groupWait, m.failure())
		panic("unreachable")
	}
}

// recordCount is how many records m's Polls returned.
func (m *testMember) recordCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}

// asyncResult is what a CommitAsync callback was given.
type asyncResult struct {
	offsets map[TopicPartition]int64
	err     error
}

// TestGroupCommitAsync: a member reads ten records and calls CommitAsync;
// its callback gets the positions after them (offset 10) and no error,
// and the coordinator holds that offset for the group.
func TestGroupCommitAsync(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "async", 1)
	produceTo(t, ctx, cl, "async", 1, 10)
	tp := TopicPartition{Topic: "async", Partition: 0}
	m := startMember(t, b.Addr, newOwnership(), "m", GroupConfig{GroupID: "asyncs", Topics: []string{"async"},
		Reset: ResetEarliest, DisableAutoCommit: true})
	waitGroup(t, "the ten records read", []*testMember{m}, func() bool { return m.recordCount() == 10 })

	done := make(chan asyncResult, 1)
	inPollLoop(t, m, func(gc *GroupConsumer) bool {
		gc.CommitAsync(func(offs map[TopicPartition]int64, err error) { done <- asyncResult{offs, err} })
		return true
	})
	var got asyncResult
	select {
	case got = <-done:
	case <-time.After(groupWait):
		t.Fatalf("the CommitAsync callback was not called within %v", groupWait)
	}
	if got.err != nil || !maps.Equal(got.offsets, map[TopicPartition]int64{tp: 10}) {
		t.Fatalf("CommitAsync callback: offsets %v, err %v; want %v@10 and no error", got.offsets, got.err, tp)
	}
	offs, err := NewAdmin(cl).CommittedOffsets(ctx, "asyncs")
	if err != nil || !maps.Equal(offs, map[TopicPartition]int64{tp: 10}) {
		t.Fatalf("committed offsets %v (%v), want %v@10", offs, err, tp)
	}
}

// TestGroupCommitAsyncThenCommitInOrder: several CommitAsync calls made
// back to back, each at a different position (Seek moves it), then a
// Commit: the callbacks run in call order, each with its own offsets and
// no error, all before Commit returns, and the offset that stays
// committed is the Commit's, the last.
func TestGroupCommitAsyncThenCommitInOrder(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "ordered", 1)
	produceTo(t, ctx, cl, "ordered", 1, 10)
	tp := TopicPartition{Topic: "ordered", Partition: 0}
	m := startMember(t, b.Addr, newOwnership(), "m", GroupConfig{GroupID: "ordereds", Topics: []string{"ordered"},
		Reset: ResetEarliest, DisableAutoCommit: true})
	waitGroup(t, "the ten records read", []*testMember{m}, func() bool { return m.recordCount() == 10 })

	const asyncs, last = 6, 9
	var mu sync.Mutex
	var events []string
	note := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
	}
	commitErr := inPollLoop(t, m, func(gc *GroupConsumer) error {
		for i := range asyncs {
			off := int64(i + 1)
			if err := gc.Seek(tp.Topic, tp.Partition, off); err != nil {
				return err
			}
			gc.CommitAsync(func(offs map[TopicPartition]int64, err error) {
				note(fmt.Sprintf("async %d: %v %v", off, offs[tp], err))
			})
		}
		if err := gc.Seek(tp.Topic, tp.Partition, last); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(context.Background(), groupWait)
		defer cancel()
		err := gc.Commit(cctx)
		note(fmt.Sprintf("sync %d: %v", last, err))
		return err
	})
	if commitErr != nil {
		t.Fatalf("commit: %v", commitErr)
	}
	var want []string
	for i := range asyncs {
		want = append(want, fmt.Sprintf("async %d: %d <nil>", i+1, i+1))
	}
	want = append(want, fmt.Sprintf("sync %d: <nil>", last))
	mu.Lock()
	got := slices.Clone(events)
	mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("callbacks and the Commit's return happened as\n%q\nwant, in call order,\n%q", got, want)
	}
	offs, err := NewAdmin(cl).CommittedOffsets(ctx, "ordereds")
	if err != nil || !maps.Equal(offs, map[TopicPartition]int64{tp: last}) {
		t.Fatalf("committed offsets %v (%v), want the last commit's %v@%d", offs, err, tp, last)
	}
}

// TestGroupResetLatest: a group with no committed offset, a member with
// auto.offset.reset latest: it holds the partition at the log end (10,
// after the ten records written before it joined), reads none of those,
// and the next record written is the first it returns, at offset 10; a
// Commit then commits 11.
func TestGroupResetLatest(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "late", 1)
	produceTo(t, ctx, cl, "late", 1, 10)
	tp := TopicPartition{Topic: "late", Partition: 0}
	m := startMember(t, b.Addr, newOwnership(), "m", GroupConfig{GroupID: "lates", Topics: []string{"late"},
		Reset: ResetLatest, DisableAutoCommit: true})
	members := []*testMember{m}
	waitGroup(t, "the member holding the partition", members, func() bool { return slices.Equal(m.held(), []TopicPartition{tp}) })
	// Its position is known once the fetch machinery has looked up the
	// log end.
	type position struct {
		off int64
		ok  bool
	}
	var pos position
	waitGroup(t, "the member's position", members, func() bool {
		pos = inPollLoop(t, m, func(gc *GroupConsumer) position {
			off, ok := gc.Position(tp.Topic, tp.Partition)
			return position{off, ok}
		})
		return pos.ok
	})
	if pos.off != 10 {
		t.Fatalf("position %d with nothing committed and reset latest, want the log end 10", pos.off)
	}
	if n := m.recordCount(); n != 0 {
		t.Fatalf("the member read %d records written before it joined", n)
	}
	p, err := NewProducer(cl, ProducerConfig{Acks: AcksAll, ManualPartitions: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, &Record{Topic: tp.Topic, Partition: 0, Value: []byte("after")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, "the record written after the join", members, func() bool { return m.recordCount() > 0 })
	m.mu.Lock()
	first := m.records[0]
	m.mu.Unlock()
	if first.Offset != 10 || string(first.Value) != "after" {
		t.Fatalf("first record read: offset %d value %q, want offset 10 value \"after\"", first.Offset, first.Value)
	}
	if err := inPollLoop(t, m, func(gc *GroupConsumer) error { return gc.Commit(ctx) }); err != nil {
		t.Fatalf("commit: %v", err)
	}
	offs, err := NewAdmin(cl).CommittedOffsets(ctx, "lates")
	if err != nil || !maps.Equal(offs, map[TopicPartition]int64{tp: 11}) {
		t.Fatalf("committed offsets %v (%v), want %v@11", offs, err, tp)
	}
}
