package metadata

import (
	"strconv"
	"testing"
)

// TestPreferredElectionsBounded: one check elects at most
// maxPreferredElectionsPerCheck preferred leaders, and the next Tick
// (due at once) elects the rest.
func TestPreferredElectionsBounded(t *testing.T) {
	const partitions = 2*maxPreferredElectionsPerCheck + 100
	c := NewController(nil, Config{SessionTimeoutMs: 1 << 40, LeaderImbalanceCheckIntervalMs: 1000}, 0)
	for id := int32(1); id <= 2; id++ {
		if _, err := c.RegisterBroker(RegisterBrokerRequest{ID: id, Incarnation: incarnation(1),
			Listeners: []Listener{{Name: "P", Host: "h", Port: 1}}}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.BrokerHeartbeat(HeartbeatRequest{ID: id, Epoch: 1, AppliedOffset: c.State().Offset()}, 0); err != nil {
			t.Fatal(err)
		}
	}
	id := sampleTopicID(1)
	if _, err := c.CreateTopic(CreateTopicRequest{Name: "t", ID: id, Configs: map[string]string{
		ConfigPartitions: strconv.Itoa(partitions), ConfigReplicationFactor: "2"}}); err != nil {
		t.Fatal(err)
	}
	// Broker 1 leaves and returns; its leaders grow the ISRs back.
	if _, err := c.FenceBroker(1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnfenceBroker(1); err != nil {
		t.Fatal(err)
	}
	waiting := 0
	for i := int32(0); i < partitions; i++ {
		p, _ := c.State().PartitionByID(id, i)
		if len(p.ISR) == 2 {
			continue
		}
		if _, err := c.AlterPartition(AlterPartitionRequest{BrokerID: p.Leader, BrokerEpoch: 1, TopicID: id, Partition: i,
			LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: []int32{1, 2}}); err != nil {
			t.Fatal(err)
		}
		if p.Replicas[0] == 1 {
			waiting++
		}
	}
	if waiting <= maxPreferredElectionsPerCheck {
		t.Fatalf("only %d partitions wait for their preferred leader", waiting)
	}
	elected := 0
	for _, now := range []int64{999, 1000, 1000} {
		recs, err := c.Tick(now)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > maxPreferredElectionsPerCheck {
			t.Fatalf("tick at %d: %d records", now, len(recs))
		}
		elected += len(recs)
		if now == 999 && len(recs) != 0 {
			t.Fatalf("a check before it was due: %d records", len(recs))
		}
	}
	if elected != waiting {
		t.Fatalf("%d elections for %d waiting partitions", elected, waiting)
	}
	for i := int32(0); i < partitions; i++ {
		if p, _ := c.State().PartitionByID(id, i); p.Leader != p.Replicas[0] {
			t.Fatalf("partition %d led by %d, preferred %d", i, p.Leader, p.Replicas[0])
		}
	}
	if recs, _ := c.Tick(2000); len(recs) != 0 {
		t.Fatalf("a balanced cluster's check: %d records", len(recs))
	}
}
