package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema/fb"
)

// TestReplicationRollingRestart: a rolling restart by SIGTERM (a
// controlled shutdown: leadership moves away before the broker stops)
// of each of the three brokers in turn, under acks=all load from the
// client library's producer. The producer sees no error, and every record
// it was told is acknowledged is at its offset afterwards, on identical
// replicas.
// rollingRecordEvery paces each partition's producer.
const rollingRecordEvery = 500 * time.Microsecond

func TestReplicationRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	c := newTestCluster(t, 3)
	c.createTopicWith(c.nodes[1], replTopic, replPartitions, 3, &fb.TopicConfigT{Name: "min.insync.replicas", Value: "2"})
	c.waitReplicated("the topic fully in sync")

	var addrs []string
	for id := int32(1); id <= 3; id++ {
		addrs = append(addrs, c.nodes[id].clientAddr())
	}
	ctx := context.Background()
	cl, err := client.Dial(ctx, client.Config{Brokers: addrs, ClientID: "rolling-restart"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	prod, err := client.NewProducer(cl, client.ProducerConfig{Acks: client.AcksAll, ManualPartitions: true, LingerMs: 2})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []replAck
	var errs []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := int32(0); p < replPartitions; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A steady rate, not as fast as it goes: the test checks
			// every record, and shares two cores with three brokers.
			pace := time.NewTicker(rollingRecordEvery)
			defer pace.Stop()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				case <-pace.C:
				}
				err := prod.Send(ctx, &client.Record{Topic: replTopic, Partition: p, Value: []byte(replValue(p, seq))},
					func(partition int32, offset int64, err error) {
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							errs = append(errs, fmt.Errorf("partition %d record %d: %w", partition, seq, err))
							return
						}
						acked = append(acked, replAck{partition: partition, base: offset, first: seq})
					})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	ackedNow := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitAcked := func(more int) {
		want := ackedNow() + more
		deadline := time.Now().Add(clusterWait)
		for ackedNow() < want {
			if time.Now().After(deadline) {
				t.Fatalf("producer stuck at %d acknowledged records (want %d); errors %v", ackedNow(), want, errs)
			}
			time.Sleep(clusterPoll)
		}
	}
	waitAcked(500)
	for id := int32(1); id <= 3; id++ {
		n := c.nodes[id]
		t.Logf("SIGTERM node %d", id)
		n.cmd.Process.Signal(syscall.SIGTERM)
		<-n.done
		if code := n.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("node %d exited with %d after SIGTERM", id, code)
		}
		// Its stop answered everything it held, followers' parked
		// fetches included, instead of waiting on their connections.
		n.mu.Lock()
		for _, line := range n.lines {
			if strings.Contains(line, "stop waits for a connection") || strings.Contains(line, "stop closes a connection still unanswered") {
				t.Errorf("node %d: %s", id, line)
			}
		}
		n.mu.Unlock()
		waitAcked(300)
		c.start(n)
		c.waitReady(n)
		c.waitReplicated(fmt.Sprintf("node %d back in every ISR", id))
		waitAcked(300)
	}
	close(stop)
	wg.Wait()
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	prod.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("the producer saw %d errors, first %v", len(errs), errs[0])
	}
	t.Logf("%d records acknowledged across the rolling restart", len(acked))
	c.checkAckedRecords(acked, 1)
	c.checkEpochFencing()
	c.checkReplicasIdentical()
}

// checkEpochFencing: a consumer's fetch and offset lookup carrying an
// older leader epoch than the leader's get FENCED_LEADER_EPOCH, a newer
// one UNKNOWN_LEADER_EPOCH, the leader's own is served (KIP-320). Every
// leader has moved by now, so every epoch is above 0.
func (c *testCluster) checkEpochFencing() {
	t := c.t
	t.Helper()
	md := c.metadata(c.anyLive())
	for _, p := range topicOf(md, replTopic).Partitions {
		if p.LeaderEpoch < 1 {
			t.Fatalf("partition %d: leader epoch %d after a rolling restart", p.Partition, p.LeaderEpoch)
		}
		addr := c.nodes[p.LeaderId].clientAddr()
		for _, tc := range []struct {
			epoch int32
			want  fb.ErrorCode
		}{{p.LeaderEpoch - 1, fb.ErrorCodeFencedLeaderEpoch}, {p.LeaderEpoch + 1, fb.ErrorCodeUnknownLeaderEpoch},
			{p.LeaderEpoch, fb.ErrorCodeNone}, {-1, fb.ErrorCodeNone}} {
			m := fetchMsg(replTopic, p.Partition, 0, 0, 0)
			m.Value.(*fb.FetchRequestT).Topics[0].Partitions[0].CurrentLeaderEpoch = tc.epoch
			env, _, err := rawCall(addr, m)
			if err != nil {
				t.Fatal(err)
			}
			if got := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0].ErrorCode; got != tc.want {
				t.Fatalf("partition %d: fetch with leader epoch %d (leader's %d): %v, want %v", p.Partition, tc.epoch, p.LeaderEpoch, got, tc.want)
			}
			env, _, err = rawCall(addr, &fb.MessageT{Type: fb.MessageListOffsetsRequest, Value: &fb.ListOffsetsRequestT{ReplicaId: -1,
				Topics: []*fb.ListOffsetsTopicT{{Name: replTopic, Partitions: []*fb.ListOffsetsPartitionT{
					{Partition: p.Partition, CurrentLeaderEpoch: tc.epoch, Timestamp: -1}}}}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := env.Message.Value.(*fb.ListOffsetsResponseT).Topics[0].Partitions[0].ErrorCode; got != tc.want {
				t.Fatalf("partition %d: list offsets with leader epoch %d (leader's %d): %v, want %v", p.Partition, tc.epoch, p.LeaderEpoch, got, tc.want)
			}
		}
	}
}
