package replica

import (
	"slices"
	"testing"
)

// The leader reports each follower's lag: in records, from the log end of
// its latest fetch, and in time, since it last held the whole log. A
// replica that does not lead reports none.
func TestAppendFollowersReportsLag(t *testing.T) {
	p, err := NewPartition(Config{ID: 1, AckUnsynced: true, LagTimeMaxMs: 10_000}, LogState{})
	if err != nil {
		t.Fatal(err)
	}
	p.Tick(1_000)
	step(p, Image{Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, MinInsync: 1})
	if got := p.AppendFollowers(nil); !slices.Equal(got, []FollowerProgress{
		{ID: 2, LogEnd: -1, DurableEnd: -1, InISR: true}, {ID: 3, LogEnd: -1, DurableEnd: -1, InISR: true}}) {
		t.Fatalf("before any fetch or append: %+v", got)
	}
	step(p, Produce{ID: 1, Acks: AcksOne, Count: 5})
	fetch := func(id int32, logEnd int64, epoch int32) {
		step(p, FetchRequest{To: 1, ReplicaID: id, CurrentLeaderEpoch: 1, Gen: 1, Seq: 1, LogEnd: logEnd,
			LastFetchedEpoch: epoch, DurableEnd: logEnd, WindowStart: logEnd, WindowEnd: logEnd + 100})
	}
	p.Tick(1_200)
	fetch(2, 5, 1) // caught up
	fetch(3, 0, NoEpoch)
	p.Tick(1_500)
	got := p.AppendFollowers(nil)
	want := []FollowerProgress{
		{ID: 2, LogEnd: 5, DurableEnd: 5, InISR: true},
		{ID: 3, LogEnd: 0, DurableEnd: 0, LagRecords: 5, LagMs: 500, InISR: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after fetches:\n got %+v\nwant %+v", got, want)
	}
	// The slice given is appended to, so a driver can reuse one.
	if again := p.AppendFollowers(got[:0]); &again[0] != &got[0] || !slices.Equal(again, want) {
		t.Fatalf("reused slice: %+v", again)
	}
	if p.LeaderEpoch() != 1 || p.PartitionEpoch() != 1 || p.ReplicaCount() != 3 {
		t.Fatalf("epochs %d/%d, replicas %d", p.LeaderEpoch(), p.PartitionEpoch(), p.ReplicaCount())
	}
	// A new leader elsewhere: this replica follows and reports nothing.
	step(p, Image{Leader: 2, LeaderEpoch: 2, PartitionEpoch: 2, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, MinInsync: 1})
	if got := p.AppendFollowers(nil); len(got) != 0 {
		t.Fatalf("as a follower: %+v", got)
	}
}
