package server

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/strata-db/strata/replica"
	"github.com/strata-db/strata/server/controller"
	"github.com/strata-db/strata/server/metadata"
)

// alterTestSessionTimeout outlasts the test, so that no broker's session
// lapses (and its fencing changes the ISR) while it runs.
const alterTestSessionTimeout = 10 * time.Minute

// TestAlterPartitionOverRPC runs AlterPartition from brokers' sessions
// against a 3-voter quorum in this process. The partition's leader is a
// voter that does not lead the quorum, so its calls are forwarded. A
// shrink built on the current epochs is accepted with a new partition
// epoch; the same request again is refused INVALID_UPDATE_VERSION with
// the partition as the controller holds it; one from a broker that does
// not lead is refused NOT_LEADER; and a voter that names another broker
// in its request has its connection closed.
func TestAlterPartitionOverRPC(t *testing.T) {
	log := &capturedLog{}
	members, ctl, lead, other := startReplicationQuorum(t, log)
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	var topicID metadata.TopicID
	rand.Read(topicID[:])
	if _, err := members[ctl].propose(ctx, &rpcRequest{Kind: rpcCreateTopic, Topic: "alter", TopicID: topicID,
		Configs: map[string]string{metadata.ConfigReplicationFactor: "3"}, StartIndex: uint32(lead - 1)}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	im, err := members[lead].read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, ok := im.Partition("alter", 0)
	if !ok || before.Leader != lead || len(before.ISR) != 3 {
		t.Fatalf("partition at creation: %+v (want leader %d, isr of 3)", before, lead)
	}

	session := func(id int32) *brokerSession {
		s := newBrokerSession(members[id], id, nil, "", DefaultHeartbeatInterval, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		s.epoch.Store(1)
		return s
	}
	shrunk := []int32{lead, other}
	slices.Sort(shrunk)
	req := metadata.AlterPartitionRequest{BrokerID: lead, TopicID: topicID, Partition: 0,
		LeaderEpoch: before.LeaderEpoch, PartitionEpoch: before.PartitionEpoch, ISR: shrunk}
	leader := session(lead)
	out, err := leader.alterPartition(ctx, req)
	if err != nil || !out.Accepted() || !out.Found {
		t.Fatalf("alter partition: %+v, %v", out, err)
	}
	want := metadata.PartitionInfo{Replicas: before.Replicas, ISR: inReplicaOrder(before.Replicas, shrunk),
		Leader: lead, LeaderEpoch: before.LeaderEpoch, PartitionEpoch: before.PartitionEpoch + 1}
	if !samePartition(out.Partition, want) {
		t.Fatalf("accepted: %+v, want %+v", out.Partition, want)
	}
	if r := out.Result(); r.Err != replica.ErrNone || r.PartitionEpoch != want.PartitionEpoch || !slices.Equal(r.ISR, want.ISR) {
		t.Fatalf("result: %+v", r)
	}

	// The same change again rests on the old partition epoch.
	out, err = leader.alterPartition(ctx, req)
	if err != nil || out.Code != metadata.ErrInvalidUpdateVersion || !samePartition(out.Partition, want) {
		t.Fatalf("stale alter partition: %+v, %v", out, err)
	}
	if r := out.Result(); r.Err != replica.ErrInvalidUpdateVersion || r.PartitionEpoch != want.PartitionEpoch ||
		r.LeaderEpoch != want.LeaderEpoch || !slices.Equal(r.ISR, want.ISR) {
		t.Fatalf("stale result: %+v", r)
	}

	// A follower proposing on the current epochs does not lead.
	req.BrokerID, req.PartitionEpoch = other, want.PartitionEpoch
	out, err = session(other).alterPartition(ctx, req)
	if err != nil || out.Code != metadata.ErrNotLeader || out.Result().Err != replica.ErrNotLeaderOrFollower ||
		!samePartition(out.Partition, want) {
		t.Fatalf("alter partition from a follower: %+v, %v", out, err)
	}

	// A session speaks only for its own broker, and the controller
	// leader's listener refuses a voter naming another.
	if _, err := session(other).alterPartition(ctx, metadata.AlterPartitionRequest{BrokerID: lead}); err == nil {
		t.Fatal("broker's session altered a partition as another broker")
	}
	forged := &rpcRequest{Kind: rpcAlterPartition, BrokerID: lead, Epoch: 1, TopicID: topicID,
		LeaderEpoch: want.LeaderEpoch, PartitionEpoch: want.PartitionEpoch, ISR: []int32{lead}}
	if _, err := callRPC(ctx, members[other].auth, uint64(ctl), members[other].addrs[uint64(ctl)], forged); !errors.Is(err, controller.ErrOutcomeUnknown) {
		t.Fatalf("voter %d's AlterPartition for broker %d: %v", other, lead, err)
	}
	waitUntil(t, "the forged request logged", func() bool { return log.has("controller RPC refused a peer", "alter_partition") })
	im, err = members[ctl].read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := im.Partition("alter", 0); !samePartition(p, want) {
		t.Fatalf("partition after the refusals: %+v, want %+v", p, want)
	}
}

func samePartition(a, b metadata.PartitionInfo) bool {
	return slices.Equal(a.Replicas, b.Replicas) && slices.Equal(a.ISR, b.ISR) && a.Leader == b.Leader &&
		a.LeaderEpoch == b.LeaderEpoch && a.PartitionEpoch == b.PartitionEpoch
}

func inReplicaOrder(replicas, isr []int32) []int32 {
	var out []int32
	for _, id := range replicas {
		if slices.Contains(isr, id) {
			out = append(out, id)
		}
	}
	return out
}

// TestAlterPartitionCallerRule: a voter may alter partitions only as the
// broker of its own id, and the request carries the whole proposal.
func TestAlterPartitionCallerRule(t *testing.T) {
	req := &rpcRequest{Kind: rpcAlterPartition, BrokerID: 2, Epoch: 3, Partition: 4, LeaderEpoch: 5, PartitionEpoch: 6, ISR: []int32{2, 1}}
	req.TopicID[0] = 9
	if err := req.checkCaller(2); err != nil {
		t.Fatalf("broker 2 altering as itself: %v", err)
	}
	for _, peer := range []uint64{0, 1, 3} {
		if err := req.checkCaller(peer); err == nil {
			t.Fatalf("voter %d altered a partition as broker 2", peer)
		}
	}
	got := req.alterPartitionRequest()
	want := metadata.AlterPartitionRequest{BrokerID: 2, BrokerEpoch: 3, TopicID: req.TopicID, Partition: 4,
		LeaderEpoch: 5, PartitionEpoch: 6, ISR: []int32{2, 1}}
	if got.BrokerID != want.BrokerID || got.BrokerEpoch != want.BrokerEpoch || got.TopicID != want.TopicID ||
		got.Partition != want.Partition || got.LeaderEpoch != want.LeaderEpoch || got.PartitionEpoch != want.PartitionEpoch ||
		!slices.Equal(got.ISR, want.ISR) {
		t.Fatalf("request %+v, want %+v", got, want)
	}
	if _, err := req.command(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaErrorOf: every controller code maps onto a replica code, and
// the compare-and-set refusals keep their names.
func TestReplicaErrorOf(t *testing.T) {
	named := map[metadata.ErrorCode]replica.ErrorCode{
		metadata.ErrNone:                    replica.ErrNone,
		metadata.ErrInvalidUpdateVersion:    replica.ErrInvalidUpdateVersion,
		metadata.ErrFencedLeaderEpoch:       replica.ErrFencedLeaderEpoch,
		metadata.ErrUnknownLeaderEpoch:      replica.ErrUnknownLeaderEpoch,
		metadata.ErrNotLeader:               replica.ErrNotLeaderOrFollower,
		metadata.ErrIneligibleReplica:       replica.ErrIneligibleReplica,
		metadata.ErrFencedReplica:           replica.ErrIneligibleReplica,
		metadata.ErrEmptyISR:                replica.ErrInvalidRequest,
		metadata.ErrStaleBrokerEpoch:        replica.ErrNotLeaderOrFollower,
		metadata.ErrUnknownTopicOrPartition: replica.ErrNotLeaderOrFollower,
	}
	for code, want := range named {
		if got := replicaErrorOf(code); got != want {
			t.Errorf("%v maps to %v, want %v", code, got, want)
		}
	}
	for _, code := range []metadata.ErrorCode{metadata.ErrInvalidUpdateVersion, metadata.ErrFencedLeaderEpoch,
		metadata.ErrUnknownLeaderEpoch, metadata.ErrNotLeader, metadata.ErrIneligibleReplica} {
		if got := replicaErrorOf(code); got.String() != code.String() {
			t.Errorf("%v is %v to the replica machine", code, got)
		}
	}
}

// startReplicationQuorum runs voters 1..3 in this process, each its own
// broker registered and unfenced, with sessions that outlast the test. It
// returns the quorum leader ctl, and lead and other, the two voters that
// do not lead the quorum; creating a topic with StartIndex lead-1 makes
// lead the preferred leader of its first partition.
func startReplicationQuorum(t *testing.T, log *capturedLog) (members map[int32]*quorumMember, ctl, lead, other int32) {
	t.Helper()
	return startReplicationQuorumWith(t, log, metadata.Config{SessionTimeoutMs: alterTestSessionTimeout.Milliseconds()})
}

// startReplicationQuorumWith is startReplicationQuorum with the
// controller's session settings mcfg.
func startReplicationQuorumWith(t *testing.T, log *capturedLog, mcfg metadata.Config) (members map[int32]*quorumMember, ctl, lead, other int32) {
	t.Helper()
	ports := freePorts(t, 3)
	var voters []Voter
	for i, p := range ports {
		voters = append(voters, Voter{ID: int32(i + 1), Addr: p})
	}
	members = map[int32]*quorumMember{}
	for _, v := range voters {
		q, err := startQuorumMember(t.TempDir(), v.ID, voters, ClusterAuth{Secret: testClusterSecret},
			mcfg, slog.New(log).With("voter", v.ID))
		if err != nil {
			t.Fatal(err)
		}
		members[v.ID] = q
		t.Cleanup(func() { q.stop() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	for id := int32(1); id <= 3; id++ {
		end := register(t, members[id], id)
		if _, err := members[id].propose(ctx, &rpcRequest{Kind: rpcBrokerHeartbeat, BrokerID: id, Epoch: 1, AppliedOffset: end}); err != nil {
			t.Fatalf("heartbeat %d: %v", id, err)
		}
	}
	waitUntil(t, "a quorum leader", func() bool { ctl = int32(members[1].node.Leader()); return ctl != 0 })
	// With three usable brokers and no racks, the start index picks the
	// preferred leader: broker start+1. The third voter is a follower of
	// both.
	lead = ctl%3 + 1
	other = lead%3 + 1
	return members, ctl, lead, other
}

// TestRegistrationProvesCleanShutdown: a broker's registration carries
// the proof of a clean shutdown, which keeps it in the ELR of a topic
// that does not flush before acknowledging. The ISR of such a topic (three
// replicas, min.insync.replicas 3) shrinks to two, putting the third,
// broker ctl, in the ELR. ctl registers again three times, each after
// being fenced: as a new process holding the epoch of its clean shutdown
// (it stays), as the same process again (it stays), and as a new process
// with no such proof (it leaves the ELR).
func TestRegistrationProvesCleanShutdown(t *testing.T) {
	log := &capturedLog{}
	members, ctl, lead, other := startReplicationQuorum(t, log)
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	var topicID metadata.TopicID
	rand.Read(topicID[:])
	if _, err := members[ctl].propose(ctx, &rpcRequest{Kind: rpcCreateTopic, Topic: "unflushed", TopicID: topicID,
		Configs: map[string]string{metadata.ConfigReplicationFactor: "3", metadata.ConfigMinInsyncReplicas: "3",
			metadata.ConfigFlushPolicy: metadata.FlushNever}, StartIndex: uint32(lead - 1)}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	partition := func() metadata.PartitionInfo {
		im, err := members[lead].read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := im.Partition("unflushed", 0)
		return p
	}
	p := partition()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	leader := newBrokerSession(members[lead], lead, nil, "", DefaultHeartbeatInterval, nil, quiet)
	leader.epoch.Store(1)
	out, err := leader.alterPartition(ctx, metadata.AlterPartitionRequest{BrokerID: lead, TopicID: topicID,
		LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: []int32{lead, other}})
	if err != nil || !out.Accepted() || !slices.Equal(out.Partition.ELR, []int32{ctl}) {
		t.Fatalf("shrink: %+v, %v", out, err)
	}

	listeners := []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: uint16(9000 + ctl)}}
	process := func() *brokerSession {
		s := newBrokerSession(members[ctl], ctl, listeners, "", DefaultHeartbeatInterval,
			func(_ *metadata.Image, taken func()) { taken() }, quiet)
		s.start()
		t.Cleanup(s.stop)
		return s
	}
	restart := func(s *brokerSession, what string, wantELR []int32) {
		t.Helper()
		// (A registration leaves the broker fenced until a heartbeat.)
		if _, err := members[ctl].propose(ctx, &rpcRequest{Kind: rpcFenceBroker, BrokerID: ctl}); err != nil &&
			metadata.CodeOf(err) != metadata.ErrBrokerFenced {
			t.Fatalf("%s: fence: %v", what, err)
		}
		if err := s.register(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := partition(); !slices.Equal(got.ELR, wantELR) {
			t.Fatalf("%s: partition %+v, want ELR %v", what, got, wantELR)
		}
	}
	clean := process()
	clean.setCleanShutdownEpoch(1)
	restart(clean, "a new process after a clean shutdown", []int32{ctl})
	if clean.epoch.Load() != 2 {
		t.Fatalf("epoch %d after the restart", clean.epoch.Load())
	}
	restart(clean, "the same process registering again", []int32{ctl})
	restart(process(), "a new process with no proof", nil)
}
