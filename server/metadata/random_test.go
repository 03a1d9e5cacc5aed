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
		ctrl := NewController(nil, Config{SessionTimeoutMs: 3000, LeaderImbalanceCheckIntervalMs: 5000}, 0)
		follower := NewState()
		epochs := map[string][2]int32{} // topic id/partition -> leader, partition epoch
		prev := map[string]partition{}  // topic id/partition -> the partition before the step
		brokerEpochs := map[int32]int64{}
		now := int64(0)
		steps := rapid.IntRange(1, 60).Draw(rt, "steps")
		for step := 0; step < steps; step++ {
			now += rapid.Int64Range(0, 2000).Draw(rt, "advance")
			recs, lostLog, err := randomCommand(rt, ctrl, now)
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
			checkELR(rt, s, prev, lostLog, err == nil)
		}
	})
}

// randomCommand runs one random command. lostLog is the broker that
// registered without proof of a clean shutdown, or -1.
func randomCommand(rt *rapid.T, c *Controller, now int64) (recs []Record, lostLog int32, err error) {
	lostLog = -1
	recs, err = randomCommandOf(rt, c, now, &lostLog)
	return recs, lostLog, err
}

func randomCommandOf(rt *rapid.T, c *Controller, now int64, lostLog *int32) ([]Record, error) {
	s := c.State()
	brokerID := rapid.Int32Range(1, 5).Draw(rt, "broker")
	epochOf := func(id int32) int64 {
		if b, ok := s.brokers[id]; ok {
			return b.epoch
		}
		return 1
	}
	topicNames := []string{"a", "b", "c"}
	switch rapid.IntRange(0, 12).Draw(rt, "command") {
	case 0, 1:
		racks := []string{"", "r1", "r2"}
		req := RegisterBrokerRequest{
			ID:          brokerID,
			Incarnation: incarnation(rapid.Int32Range(1, 2).Draw(rt, "inc")),
			Rack:        racks[int(brokerID)%len(racks)],
			Listeners:   []Listener{{Name: "PLAINTEXT", Host: fmt.Sprintf("b%d", brokerID), Port: 9092}},
		}
		if rapid.Bool().Draw(rt, "clean shutdown") {
			req.PreviousBrokerEpoch = epochOf(brokerID)
		} else if b, ok := s.brokers[brokerID]; ok && b.incarnation != req.Incarnation {
			*lostLog = brokerID
		}
		return c.RegisterBroker(req, now)
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
		rf := rapid.IntRange(1, 3).Draw(rt, "rf")
		configs := map[string]string{
			ConfigPartitions:            fmt.Sprint(rapid.IntRange(1, 4).Draw(rt, "partitions")),
			ConfigReplicationFactor:     fmt.Sprint(rf),
			ConfigMinInsyncReplicas:     fmt.Sprint(rapid.IntRange(1, rf).Draw(rt, "min isr")),
			ConfigUncleanLeaderElection: fmt.Sprint(rapid.Bool().Draw(rt, "unclean")),
			ConfigFlushPolicy:           rapid.SampledFrom([]string{FlushSync, FlushNever}).Draw(rt, "flush"),
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
	case 10:
		name := rapid.SampledFrom(topicNames).Draw(rt, "topic")
		rf := 3
		if t, ok := s.topicsByName[name]; ok {
			rf = int(configInt(t.configs, ConfigReplicationFactor, 1))
		}
		req := AlterTopicConfigsRequest{Topic: name, Set: map[string]string{
			// Up to one past the replication factor: refused.
			ConfigMinInsyncReplicas:     fmt.Sprint(rapid.IntRange(1, rf+1).Draw(rt, "min isr")),
			ConfigUncleanLeaderElection: fmt.Sprint(rapid.Bool().Draw(rt, "unclean")),
		}}
		if rapid.Bool().Draw(rt, "flush change") {
			req.Set[ConfigFlushPolicy] = rapid.SampledFrom([]string{FlushSync, FlushNever}).Draw(rt, "flush")
		} else {
			req.Delete = []string{ConfigFlushPolicy}
		}
		return c.AlterTopicConfigs(req)
	case 11:
		return c.CreatePartitions(CreatePartitionsRequest{Topic: rapid.SampledFrom(topicNames).Draw(rt, "topic"),
			Count: rapid.IntRange(1, 6).Draw(rt, "count"), StartIndex: rapid.Uint32().Draw(rt, "start")})
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
			for _, id := range p.isr {
				if !slices.Contains(p.replicas, id) {
					rt.Fatalf("%s: isr member %d is not a replica", where, id)
				}
				if !s.isLive(id) {
					rt.Fatalf("%s: isr holds fenced or shutting-down %d", where, id)
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

// checkELR checks the ELR rules of election.go after every step, against
// each partition as it was before the step:
//
//   - the ELR is within the replicas and disjoint from the ISR, and the
//     last-known ELR from both; both are empty when the ISR holds
//     min.insync.replicas members, and the last-known ELR when there is a
//     leader;
//   - a broker joins the ELR only from the ISR (or, with unclean
//     election on, from an ISR an unclean election made);
//   - with unclean election off, a new leader was in the ISR or the ELR;
//   - a broker that registered without proof of a clean shutdown is in no
//     ELR of a topic that does not flush before acknowledging.
func checkELR(rt *rapid.T, s *State, prev map[string]partition, lostLog int32, accepted bool) {
	seen := map[string]bool{}
	for _, t := range s.topics {
		for i, p := range t.partitions {
			key := fmt.Sprintf("%s/%d", t.id, i)
			seen[key] = true
			where := fmt.Sprintf("%s-%d %+v", t.name, i, *p)
			for _, id := range p.elr {
				if !slices.Contains(p.replicas, id) || slices.Contains(p.isr, id) {
					rt.Fatalf("%s: elr member %d is not a replica or is in the isr", where, id)
				}
			}
			for _, id := range p.lastKnownELR {
				if !slices.Contains(p.replicas, id) || slices.Contains(p.isr, id) || slices.Contains(p.elr, id) {
					rt.Fatalf("%s: last-known elr member %d is not a replica, or in the isr or elr", where, id)
				}
			}
			if len(p.isr) >= t.minISR() && (len(p.elr) > 0 || len(p.lastKnownELR) > 0) {
				rt.Fatalf("%s: an elr beside an isr of min.insync.replicas %d", where, t.minISR())
			}
			if p.leader != NoLeader && len(p.lastKnownELR) > 0 {
				rt.Fatalf("%s: a last-known elr beside a leader", where)
			}
			if accepted && lostLog >= 0 && !t.flushesBeforeAck() && slices.Contains(p.elr, lostLog) {
				rt.Fatalf("%s: broker %d registered after an unclean shutdown and is in the elr", where, lostLog)
			}
			if before, ok := prev[key]; ok {
				for _, id := range p.elr {
					// (An unclean election may make a replica the ISR, and
					// a fence in the same step move it to the ELR.)
					if !slices.Contains(before.elr, id) && !slices.Contains(before.isr, id) && !t.uncleanAllowed() {
						rt.Fatalf("%s: %d joined the elr from outside the isr %v", where, id, before.isr)
					}
				}
				if p.leader != NoLeader && p.leader != before.leader && !t.uncleanAllowed() &&
					!slices.Contains(before.isr, p.leader) && !slices.Contains(before.elr, p.leader) {
					rt.Fatalf("%s: leader %d was in neither the isr %v nor the elr %v", where, p.leader, before.isr, before.elr)
				}
			}
			prev[key] = partition{leader: p.leader, isr: slices.Clone(p.isr), elr: slices.Clone(p.elr)}
		}
	}
	for key := range prev {
		if !seen[key] {
			delete(prev, key)
		}
	}
}
