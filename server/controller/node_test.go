package controller

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/metadata"
)

// singleVoter starts a 1-voter node in dir driven by a test tick channel
// and waits until it leads.
func singleVoter(t *testing.T, dir string, fs segment.FS) (*Node, chan struct{}) {
	t.Helper()
	ticks := make(chan struct{})
	n, err := New(Config{
		ID: 1, Voters: []uint64{1}, Dir: dir, FS: fs, Ticks: ticks,
		ElectionTicks: 5, HeartbeatTicks: 1,
		SnapshotEntries: 40, CompactKeepEntries: 8,
		SegmentBytes: 4096, IndexBytes: 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	tickUntil(t, ticks, "leadership", func() bool { return n.Leader() == 1 })
	return n, ticks
}

func TestSingleVoterRestartRestoresSnapshotAndTail(t *testing.T) {
	dir := t.TempDir()
	n, _ := singleVoter(t, dir, nil)
	ctx := context.Background()
	registerBrokers(t, n, 3)
	const topics = 120
	for i := range topics {
		if _, err := createTopic(ctx, n, i, 3); err != nil {
			t.Fatalf("create topic %d: %v", i, err)
		}
	}
	for i := 0; i < topics; i += 3 {
		if _, err := n.Propose(ctx, DeleteTopic(fmt.Sprintf("topic-%d", i))); err != nil {
			t.Fatalf("delete topic %d: %v", i, err)
		}
	}
	// A named rejection comes back as such and changes nothing.
	_, err := createTopic(ctx, n, 1, 3)
	if metadata.CodeOf(err) != metadata.ErrTopicAlreadyExists {
		t.Fatalf("duplicate create: got %v, want TOPIC_ALREADY_EXISTS", err)
	}
	im, err := n.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(im.Topics()), topics-topics/3; got != want {
		t.Fatalf("%d topics, want %d", got, want)
	}
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Voters) != 1 || st.Voters[0].Lag != 0 || st.Voters[0].LogEnd != st.LastIndex {
		t.Fatalf("status %+v: want one voter with no lag", st)
	}
	snap, _ := n.Storage().Snapshot()
	if snap.GetMetadata().GetIndex() == 0 {
		t.Fatal("no snapshot was taken")
	}
	first, _ := n.Storage().FirstIndex()
	if logStart, _, _ := n.Storage().LogRange(); logStart == 0 || first <= 1 {
		t.Fatalf("log not compacted: log start %d, first index %d", logStart, first)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	wantHash, wantApplied := n.state.Hash(), n.applied
	if wantApplied == snap.GetMetadata().GetIndex() {
		t.Fatal("test wants a tail of entries after the last snapshot")
	}

	n2, _ := singleVoter(t, dir, nil)
	defer n2.Stop()
	if _, err := n2.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.Stop(); err != nil {
		t.Fatal(err)
	}
	if n2.applied < wantApplied || n2.snapIdx == 0 {
		t.Fatalf("restart applied %d (snapshot %d), want >= %d from a snapshot", n2.applied, n2.snapIdx, wantApplied)
	}
	if n2.state.Hash() != wantHash {
		t.Fatal("state after restart differs from the state before")
	}
	if _, err := n2.Propose(ctx, DeleteTopic("topic-1")); !errors.Is(err, ErrStopped) {
		t.Fatalf("propose on a stopped node: %v, want ErrStopped", err)
	}
}
