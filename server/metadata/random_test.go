package metadata

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestRandomCommands runs random command sequences and checks after every
// step that the state keeps its invariants, that epochs never go back, and
// that a follower applying the encoded records, and a state restored from
// a snapshot, both hash the same as the controller's.
func TestRandomCommands(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ctrl := NewController(nil, Config{SessionTimeoutMs: 3000}, 0)
		follower := NewState()
		epochs := map[string][2]int32{} // topic id/partition -> leader, partition epoch
		brokerEpochs := map[int32]int64{}
		now := int64(0)
		steps := rapid.IntRange(1, 60).Draw(rt, "steps")
		for step := 0; step < steps; step++ {
			now += rapid.Int64Range(0, 2000).Draw(rt, "advance")
			recs, err := randomCommand(rt, ctrl, now)
			if err != nil {
				if _, ok := err.(*Rejection); !ok {
					rt.Fatalf("step %d: not a rejection: %v", step, err)
				}
				if len(recs) != 0 {
					rt.Fatalf("step %d: a rejection with records", step)
				}
			}
			decoded, derr := DecodeBatch(AppendBatch(nil, recs))
			if derr != nil {
				rt.Fatalf("step %d: decode: %v", step, derr)
			}
			if aerr := follower.ApplyAll(decoded); aerr != nil {
				rt.Fatalf("step %d: follower: %v", step, aerr)
			}
			s := ctrl.State()
			if follower.Hash() != s.Hash() {
				rt.Fatalf("step %d: follower hash differs", step)
			}
			restored, rerr := Restore(s.AppendSnapshot(nil))
			if rerr != nil {
				rt.Fatalf("step %d: restore: %v", step, rerr)
			}
			if restored.Hash() != s.Hash() {
				rt.Fatalf("step %d: restored hash differs", step)
			}
			checkInvariants(rt, s, epochs, brokerEpochs)
		}
	})
}

func randomCommand(rt *rapid.T, c *Controller, now int64) ([]Record, error) {
	s := c.State()
	brokerID := rapid.Int32Range(1, 5).Draw(rt, "broker")
	epochOf := func(id int32) int64 {
		if b, ok := s.brokers[id]; ok {
			return b.epoch
		}
		return 1
	}
	topicNames := []string{"a", "b", "c"}
	switch rapid.IntRange(0, 10).Draw(rt, "command") {
	case 0, 1:
		racks := []string{"", "r1", "r2"}
		return c.RegisterBroker(RegisterBrokerRequest{
			ID:          brokerID,
			Incarnation: incarnation(rapid.Int32Range(1, 2).Draw(rt, "inc")),
			Rack:        racks[int(brokerID)%len(racks)],
			Listeners:   []Listener{{Name: "PLAINTEXT", Host: fmt.Sprintf("b%d", brokerID), Port: 9092}},
		}, now)
	case 2, 3:
		offset := s.Offset()
		if rapid.Bool().Draw(rt, "lagging") {
			offset = 0
		}
		return c.BrokerHeartbeat(HeartbeatRequest{ID: brokerID, Epoch: epochOf(brokerID), AppliedOffset: offset}, now)
	case 4:
		if rapid.Bool().Draw(rt, "fence") {
			return c.FenceBroker(brokerID)
		}
		return c.UnfenceBroker(brokerID)
	case 5:
		return c.ControlledShutdown(brokerID, epochOf(brokerID))
	case 6:
		var id TopicID
		id[0] = byte(s.offset)
		id[1] = byte(s.offset >> 8)
		id[2] = 1
		configs := map[string]string{
			ConfigPartitions:            fmt.Sprint(rapid.IntRange(1, 4).Draw(rt, "partitions")),
			ConfigReplicationFactor:     fmt.Sprint(rapid.IntRange(1, 3).Draw(rt, "rf")),
			ConfigUncleanLeaderElection: fmt.Sprint(rapid.Bool().Draw(rt, "unclean")),
		}
		return c.CreateTopic(CreateTopicRequest{
			Name: rapid.SampledFrom(topicNames).Draw(rt, "topic"), ID: id, Configs: configs,
			StartIndex: rapid.Uint32().Draw(rt, "start"),
		})
	case 7:
		return c.DeleteTopic(rapid.SampledFrom(topicNames).Draw(rt, "topic"))
	case 8:
		t, ok := s.topicsByName[rapid.SampledFrom(topicNames).Draw(rt, "topic")]
		if !ok {
			return nil, nil
		}
		idx := rapid.IntRange(0, len(t.partitions)-1).Draw(rt, "partition")
		p := t.partitions[idx]
		var isr []int32
		for _, r := range p.replicas {
			if r == p.leader || rapid.Bool().Draw(rt, "member") {
				isr = append(isr, r)
			}
		}
		proposer := p.leader
		if rapid.IntRange(0, 4).Draw(rt, "wrong proposer") == 0 {
			proposer = brokerID
		}
		return c.AlterPartition(AlterPartitionRequest{
			BrokerID: proposer, BrokerEpoch: epochOf(proposer), TopicID: t.id, Partition: int32(idx),
			LeaderEpoch: p.leaderEpoch, PartitionEpoch: p.partitionEpoch, ISR: isr,
		})
	case 9:
		t, ok := s.topicsByName[rapid.SampledFrom(topicNames).Draw(rt, "topic")]
		if !ok {
			return nil, nil
		}
		return c.ElectLeader(t.name, int32(rapid.IntRange(0, len(t.partitions)-1).Draw(rt, "partition")))
	default:
		return c.Tick(now)
	}
}

func checkInvariants(rt *rapid.T, s *State, epochs map[string][2]int32, brokerEpochs map[int32]int64) {
	for id, b := range s.brokers {
		if b.epoch < brokerEpochs[id] {
			rt.Fatalf("broker %d epoch went back from %d to %d", id, brokerEpochs[id], b.epoch)
		}
		brokerEpochs[id] = b.epoch
	}
	total := 0
	for _, t := range s.topics {
		if int64(len(t.partitions)) != configInt(t.configs, ConfigPartitions, 0) {
			rt.Fatalf("topic %s has %d partitions, config says %s", t.name, len(t.partitions), t.configs[ConfigPartitions])
		}
		total += len(t.partitions)
		for i, p := range t.partitions {
			where := fmt.Sprintf("%s-%d %+v", t.name, i, *p)
			if len(p.isr) == 0 {
				rt.Fatalf("%s: empty isr", where)
			}
			for _, id := range p.isr {
				if !slices.Contains(p.replicas, id) {
					rt.Fatalf("%s: isr member %d is not a replica", where, id)
				}
			}
			if len(p.isr) > 1 {
				for _, id := range p.isr {
					if !s.isLive(id) {
						rt.Fatalf("%s: isr holds fenced or shutting-down %d beside others", where, id)
					}
				}
			}
			if p.leader != NoLeader {
				if !slices.Contains(p.isr, p.leader) {
					rt.Fatalf("%s: leader not in isr", where)
				}
				if !s.isLive(p.leader) {
					rt.Fatalf("%s: leader %d is fenced or shutting down", where, p.leader)
				}
			}
			key := fmt.Sprintf("%s/%d", t.id, i)
			prev, seen := epochs[key]
			if seen && (p.leaderEpoch < prev[0] || p.partitionEpoch < prev[1]) {
				rt.Fatalf("%s: epochs went back from %v", where, prev)
			}
			epochs[key] = [2]int32{p.leaderEpoch, p.partitionEpoch}
		}
	}
	if total != s.totalPartitions {
		rt.Fatalf("partition count %d, tracked %d", total, s.totalPartitions)
	}
}
