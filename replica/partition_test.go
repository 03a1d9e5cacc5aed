package replica

import (
	"slices"
	"testing"
)

// solo is a one-replica partition led by replica 1.
func solo(t *testing.T, cfg Config, log LogState, epoch int32) *Partition {
	t.Helper()
	cfg.ID = 1
	p, err := NewPartition(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	p.Step(Image{Leader: 1, LeaderEpoch: epoch, Replicas: []int32{1}, ISR: []int32{1}, MinInsync: 1})
	p.Ready()
	p.Advance()
	return p
}

func step(p *Partition, m Msg) Ready {
	p.Step(m)
	rd := p.Ready()
	p.Advance()
	return rd
}

// Under the sync flush policy acks=1 waits for durability; with
// AckUnsynced (flush policy never or interval) it is answered at the
// append, and the high watermark moves with the log end.
func TestAcksOneFollowsTheFlushPolicy(t *testing.T) {
	p := solo(t, Config{}, LogState{}, 0)
	if rd := step(p, Produce{ID: 7, Acks: AcksOne, Count: 2}); len(rd.Answers) != 0 || len(rd.Appends) != 1 {
		t.Fatalf("sync policy: answered before durable: %+v", rd)
	}
	if rd := step(p, LogDurable{End: 2}); !slices.Equal(rd.Answers, []ProduceAnswer{{ID: 7, Base: 0}}) || rd.HighWatermark != 2 {
		t.Fatalf("sync policy: after durable: %+v", rd)
	}
	u := solo(t, Config{AckUnsynced: true}, LogState{}, 0)
	if rd := step(u, Produce{ID: 8, Acks: AcksOne, Count: 3}); !slices.Equal(rd.Answers, []ProduceAnswer{{ID: 8, Base: 0}}) || rd.HighWatermark != 3 {
		t.Fatalf("unsynced policy: %+v", rd)
	}
}

func TestProduceTimesOut(t *testing.T) {
	p := solo(t, Config{}, LogState{}, 0)
	p.Tick(1000)
	p.Ready()
	p.Advance()
	step(p, Produce{ID: 1, Acks: AcksAll, Count: 1, TimeoutMs: 300})
	p.Tick(1299)
	if rd := p.Ready(); len(rd.Answers) != 0 {
		t.Fatalf("answered before the timeout: %+v", rd.Answers)
	}
	p.Advance()
	p.Tick(1300)
	rd := p.Ready()
	p.Advance()
	if !slices.Equal(rd.Answers, []ProduceAnswer{{ID: 1, Err: ErrRequestTimedOut, Base: -1}}) {
		t.Fatalf("at the timeout: %+v", rd.Answers)
	}
}

// An image naming this replica leader in an epoch its log already holds
// comes from before its restart: it must not lead that epoch again.
func TestNoLeadershipInAnEpochTheLogHolds(t *testing.T) {
	p := solo(t, Config{}, LogState{LogEnd: 4, DurableEnd: 4, Epochs: []EpochStart{{0, 0}, {3, 2}}}, 3)
	if st := p.Status(); st.Role != RoleNone {
		t.Fatalf("led epoch 3 again: %+v", st)
	}
	step(p, Image{Leader: 1, LeaderEpoch: 4, PartitionEpoch: 1, Replicas: []int32{1}, ISR: []int32{1}, MinInsync: 1})
	if st := p.Status(); st.Role != RoleLeader || st.LeaderEpoch != 4 {
		t.Fatalf("epoch 4: %+v", st)
	}
}

func TestNewPartitionRefusesAnInconsistentLog(t *testing.T) {
	for _, log := range []LogState{
		{LogEnd: 3, DurableEnd: 4, Epochs: []EpochStart{{0, 0}}},
		{LogEnd: 3, HighWatermark: 4, Epochs: []EpochStart{{0, 0}}},
		{LogEnd: 3},
		{LogEnd: -1},
	} {
		if _, err := NewPartition(Config{ID: 1}, log); err == nil {
			t.Errorf("NewPartition accepted %+v", log)
		}
	}
	if _, err := NewPartition(Config{ID: 1, FetchMaxWaitMs: 900, FetchTimeoutMs: 800}, LogState{}); err == nil {
		t.Error("a fetch timeout below the fetch wait was accepted")
	}
}

func TestStepBetweenReadyAndAdvancePanics(t *testing.T) {
	p := solo(t, Config{}, LogState{}, 0)
	p.Ready()
	defer func() {
		if recover() == nil {
			t.Fatal("Step between Ready and Advance did not panic")
		}
	}()
	p.Step(LogDurable{End: 0})
}

// min.insync.replicas is a topic config: a change reaches the machine in
// an image with no new partition epoch, and is honoured at once.
func TestMinInsyncChangesWithoutAPartitionEpoch(t *testing.T) {
	cfg := Config{ID: 1}
	p, err := NewPartition(cfg, LogState{})
	if err != nil {
		t.Fatal(err)
	}
	im := Image{Leader: 1, LeaderEpoch: 0, Replicas: []int32{1, 2}, ISR: []int32{1}, MinInsync: 1}
	step(p, im)
	step(p, Produce{ID: 1, Acks: AcksAll, Count: 1})
	im.MinInsync = 2
	if rd := step(p, im); !slices.Equal(rd.Answers, []ProduceAnswer{{ID: 1, Err: ErrNotEnoughReplicasAfterAppend, Base: -1}}) {
		t.Fatalf("raising min.insync above the ISR: %+v", rd.Answers)
	}
	if rd := step(p, Produce{ID: 2, Acks: AcksAll, Count: 1}); !slices.Equal(rd.Answers, []ProduceAnswer{{ID: 2, Err: ErrNotEnoughReplicas, Base: -1}}) {
		t.Fatalf("acks=all under the new min.insync: %+v", rd.Answers)
	}
}

// A replica added within a leader epoch is served once the image says
// so; one reassigned away stops following.
func TestReassignmentWithinALeaderEpoch(t *testing.T) {
	lead, _ := NewPartition(Config{ID: 1}, LogState{})
	fol, _ := NewPartition(Config{ID: 3}, LogState{})
	im := Image{Leader: 1, LeaderEpoch: 0, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, MinInsync: 1}
	step(lead, im)
	fetch := FetchRequest{ReplicaID: 3, CurrentLeaderEpoch: 0, LastFetchedEpoch: NoEpoch, WindowStart: 0, WindowEnd: 16, MaxWaitMs: 500}
	if rd := step(lead, fetch); len(rd.Responses) != 1 || rd.Responses[0].Err != ErrNotLeaderOrFollower {
		t.Fatalf("a fetch from a non-replica: %+v", rd.Responses)
	}
	im.Replicas, im.PartitionEpoch = []int32{1, 2, 3}, 1
	step(lead, im)
	if rd := step(lead, fetch); len(rd.Responses) != 0 {
		t.Fatalf("the new replica's fetch should park, got %+v", rd.Responses)
	}
	if rd := step(fol, im); len(rd.Fetches) != 1 || fol.Status().Role != RoleFollower {
		t.Fatalf("new replica: %+v %+v", rd.Fetches, fol.Status())
	}
	im.Replicas, im.PartitionEpoch = []int32{1, 2}, 2
	step(fol, im)
	if st := fol.Status(); st.Role != RoleNone {
		t.Fatalf("reassigned away, still %s", st.Role)
	}
}
