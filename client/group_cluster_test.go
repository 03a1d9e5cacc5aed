package client

import (
	"context"
	"strings"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
	"github.com/strata-db/strata/schema/fb"
)

// TestGroupCoordinatorMoves: a member of a group coordinated by one of
// three brokers keeps reading and committing when that broker stops
// (gracefully, handing its leaderships over) or is killed (-9, fenced by
// the controller after its session): its heartbeats and commits meet a
// lost connection, NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE, it finds
// the new coordinator (the new leader of the group's offsets partition,
// replicated on all three) and goes on there. The commits made before the
// move are still there after it.
func TestGroupCoordinatorMoves(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	for _, how := range []string{"stop", "kill"} {
		t.Run(how, func(t *testing.T) { coordinatorMoves(t, how == "kill") })
	}
}

func coordinatorMoves(t *testing.T, kill bool) {
	c := brokertest.StartCluster(t, strataBin, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*groupWait)
	defer cancel()
	cl, err := Dial(ctx, Config{Brokers: c.Addrs(), RetryBackoffMs: 20, RetryBackoffMaxMs: 200,
		ResponseTimeoutMs: responseTimeoutMsTest})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin := NewAdmin(cl)
	waitFor(t, "the topic created", func() bool {
		err := admin.CreateTopics(ctx, TopicSpec{Name: "moved", Partitions: 2, ReplicationFactor: 3})
		return err == nil || ErrorCode(err) == fb.ErrorCodeTopicAlreadyExists
	})
	produceTo(t, ctx, cl, "moved", 2, 10)
	own := newOwnership()
	m := startMember(t, strings.Join(c.Addrs(), ","), own, "mover",
		GroupConfig{GroupID: "movers", Topics: []string{"moved"}, Reset: ResetEarliest, AutoCommitIntervalMs: 200})
	// Commits reach each partition's log end. (A producer's retry after
	// the kill may write a batch twice, so the log ends are read rather
	// than assumed.)
	committedAt := func(want map[int32]int64) func() bool {
		return func() bool {
			offs, err := admin.CommittedOffsets(ctx, "movers")
			return err == nil && offs[TopicPartition{Topic: "moved", Partition: 0}] == want[0] &&
				offs[TopicPartition{Topic: "moved", Partition: 1}] == want[1]
		}
	}
	logEnds := func() map[int32]int64 {
		ends, err := cl.ListOffsets(ctx, "moved", []int32{0, 1}, OffsetLatest)
		if err != nil {
			t.Fatal(err)
		}
		return ends
	}
	waitGroup(t, "the first records committed", []*testMember{m}, committedAt(map[int32]int64{0: 10, 1: 10}))
	addr, err := cl.coordinator(ctx, "movers")
	if err != nil {
		t.Fatal(err)
	}
	var coord *brokertest.Broker
	for _, n := range c.Nodes[1:] {
		if n.Addr == addr {
			coord = n
		}
	}
	if coord == nil {
		t.Fatalf("the coordinator %s is none of the cluster's brokers %v", addr, c.Addrs())
	}
	if kill {
		coord.Kill()
	} else if err := coord.Stop(); err != nil {
		t.Fatalf("stop the coordinator: %v", err)
	}
	produceTo(t, ctx, cl, "moved", 2, 10)
	ends := logEnds()
	if ends[0] < 20 || ends[1] < 20 {
		t.Fatalf("log ends %v after 20 records a partition", ends)
	}
	waitGroup(t, "the records after the move committed", []*testMember{m}, committedAt(ends))
	if newAddr, err := cl.coordinator(ctx, "movers"); err != nil || newAddr == addr {
		t.Fatalf("the coordinator after the stop: %q %v, want another than %s", newAddr, err, addr)
	}
	seen := map[TopicPartition]map[int64]bool{}
	m.mu.Lock()
	for _, r := range m.records {
		tp := TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if seen[tp] == nil {
			seen[tp] = map[int64]bool{}
		}
		seen[tp][r.Offset] = true
	}
	m.mu.Unlock()
	for p := range int32(2) {
		if n := len(seen[TopicPartition{Topic: "moved", Partition: p}]); int64(n) != ends[p] {
			t.Fatalf("the member read %d distinct records of partition %d, want its log end %d", n, p, ends[p])
		}
	}
	own.check(t)
}
