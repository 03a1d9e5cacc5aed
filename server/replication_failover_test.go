package server

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-db/strata/schema/fb"
)

// failoverTestSession is the session timeout of the connection-loss
// test: far longer than any of its waits, so that only the closed
// connection can move the killed leader's partitions within them.
const failoverTestSession = "10m"

// TestReplicationFailoverOnConnectionLoss: three `strata serve`
// processes with a session timeout of minutes, a topic of replication
// factor 3 and min.insync.replicas 2, acks=all producers on every
// partition. The leader of a partition, not the controller leader, is
// killed with kill -9; the controller leader sees the broker's session
// connection close and fences it (its log and its fence metric name
// connection loss as the cause), the partition gets a new leader that acknowledges more, the
// killed broker comes back into every ISR, and nothing acknowledged is
// lost, on byte-identical replicas.
func TestReplicationFailoverOnConnectionLoss(t *testing.T) {
	testFailoverWithinSession(t, false)
}

// TestReplicationFailoverWithTheController: as the connection-loss test,
// but the broker killed leads a partition and is the controller leader
// too, so no controller saw its session connection close. The new
// controller leader expects every broker's heartbeat within its reconnect
// wait (two heartbeat intervals and the connection-loss grace) and fences
// the one that never comes (cause not_reconnected), long before the
// session of minutes would lapse.
func TestReplicationFailoverWithTheController(t *testing.T) {
	testFailoverWithinSession(t, true)
}

// testFailoverWithinSession kills the leader of a partition (the
// controller leader too when withController) under acks=all load, with a
// session timeout far longer than any wait, and checks the fence's cause,
// the new leader's acknowledgements, the victim's return into every ISR
// and that nothing acknowledged is lost.
func testFailoverWithinSession(t *testing.T, withController bool) {
	if testing.Short() {
		t.Skip("starts three broker processes and kills one")
	}
	c := newTestClusterArgs(t, 3, true, "--session-timeout", failoverTestSession)
	c.createTopicWith(c.nodes[1], replTopic, replPartitions, 3, &fb.TopicConfigT{Name: "min.insync.replicas", Value: "2"})
	c.waitReplicated("the topic fully in sync")

	stop := make(chan struct{})
	acks := make(chan replAck, 1<<16)
	var produced atomic.Int64
	var wg sync.WaitGroup
	for p := int32(0); p < replPartitions; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replProducer(t, c, p, stop, acks, &produced)
		}()
	}
	var acked []replAck
	ackedOn := func(p int32) int {
		for {
			select {
			case a := <-acks:
				acked = append(acked, a)
				continue
			default:
			}
			break
		}
		n := 0
		for _, a := range acked {
			if a.partition == p {
				n++
			}
		}
		return n
	}
	waitAcked := func(what string, p int32, more int) {
		t.Helper()
		want := ackedOn(p) + more
		deadline := time.Now().Add(clusterWait)
		for ackedOn(p) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: partition %d stuck at %d acknowledged produces (want %d)", what, p, ackedOn(p), want)
			}
			time.Sleep(clusterPoll) // polling a condition
		}
	}
	for p := int32(0); p < replPartitions; p++ {
		waitAcked("before the kill", p, 20)
	}

	md := c.metadata(c.anyLive())
	var partition int32 = -1
	var victim *clusterNode
	for _, p := range topicOf(md, replTopic).Partitions {
		if (p.LeaderId == md.ControllerId) == withController {
			partition, victim = p.Partition, c.nodes[p.LeaderId]
			break
		}
	}
	if victim == nil {
		t.Fatalf("no partition led by the right broker (controller leader %d, with it %v): %s",
			md.ControllerId, withController, describeTopics(md))
	}
	t.Logf("kill -9 node %d, leader of partition %d (controller leader %d)", victim.id, partition, md.ControllerId)
	victim.kill()
	controllerID := md.ControllerId
	for _, n := range c.nodes {
		if n == victim {
			continue
		}
		c.waitMetadata(n, "a new leader of the killed broker's partition", func(md *fb.MetadataResponseT) bool {
			p := topicOf(md, replTopic).Partitions[partition]
			if withController && md.ControllerId > 0 && md.ControllerId != victim.id {
				controllerID = md.ControllerId
			}
			return p.LeaderId >= 0 && p.LeaderId != victim.id && md.ControllerId != victim.id
		})
	}
	waitAcked("after the kill", partition, 20)
	cause := "connection_lost"
	if withController {
		cause = "not_reconnected"
	}
	controller := c.nodes[controllerID]
	fence := []string{"controller fences a broker", fmt.Sprintf("broker=%d", victim.id), "cause=" + cause}
	if !controller.logHas(fence...) {
		t.Fatalf("the controller leader's log (node %d) has no %q", controller.id, strings.Join(fence, " "))
	}
	if controller.logHas("controller fences a broker", "cause=session_lapsed") {
		t.Fatal("the controller leader fenced a broker for a lapsed session")
	}
	m, ok := scrapeMetrics(controller)
	if !ok {
		t.Fatal("no metrics from the controller leader")
	}
	fenced, _ := series(m, "strata_controller_broker_fences_total", "cause", cause)
	lapsed, _ := series(m, "strata_controller_broker_fences_total", "cause", "session_lapsed")
	if fenced != 1 || lapsed != 0 {
		t.Fatalf("controller leader's fences: %v for %s, %v for lapsed sessions; want 1 and 0", fenced, cause, lapsed)
	}

	c.start(victim)
	c.waitReady(victim)
	c.waitReplicated(fmt.Sprintf("node %d back in every ISR", victim.id))
	waitAcked("after the restart", partition, 20)
	close(stop)
	wg.Wait()
	ackedOn(partition)
	if t.Failed() {
		return
	}
	t.Logf("%d acknowledged produces (%d records)", len(acked), produced.Load())
	c.checkAcked(acked)
	c.checkReplicasIdentical()
}

// logHas reports whether one line of the node's stderr holds every sub.
func (n *clusterNode) logHas(subs ...string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.lines {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			return true
		}
	}
	return false
}
