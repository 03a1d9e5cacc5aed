package server

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment"
)

// trimCall sends one request to node n, retrying lost connections (a
// DeleteRecords is idempotent) until clusterWait.
func (c *testCluster) trimCall(n *clusterNode, m *fb.MessageT) *fb.EnvelopeT {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		env, _, err := rawCallWithin(n.clientAddr(), m, clusterWait)
		if err == nil {
			return env
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d: %v", n.id, err)
		}
		time.Sleep(clusterPoll)
	}
}

// trimLeader waits until node `from` sees partition 0 of topic led by a
// live broker with isr members in its ISR, and returns the leader's node.
func (c *testCluster) trimLeader(from *clusterNode, topic string, isr int, not int32) *clusterNode {
	c.t.Helper()
	md := c.waitMetadata(from, "a leader and its ISR", func(md *fb.MetadataResponseT) bool {
		tm := topicOf(md, topic)
		if tm == nil || len(tm.Partitions) != 1 {
			return false
		}
		p := tm.Partitions[0]
		return p.LeaderId > 0 && p.LeaderId != not && len(p.Isr) == isr && !slices.Contains(p.Isr, not)
	})
	return c.nodes[topicOf(md, topic).Partitions[0].LeaderId]
}

// awaitDeleted asks the leader to delete below offset until it answers
// NONE (a leader just elected answers NOT_LEADER until it has taken the
// image in) and checks the low watermark.
func (c *testCluster) awaitDeleted(n *clusterNode, topic string, offset int64) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		env := c.trimCall(n, deleteRecordsMsg(topic, 0, offset, int32(clusterWait/time.Millisecond)))
		r := env.Message.Value.(*fb.DeleteRecordsResponseT).Topics[0].Partitions[0]
		if r.ErrorCode == fb.ErrorCodeNone {
			if r.LowWatermark != offset {
				c.t.Fatalf("node %d: delete before %d: low watermark %d", n.id, offset, r.LowWatermark)
			}
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d: delete before %d: %v (low watermark %d)", n.id, offset, r.ErrorCode, r.LowWatermark)
		}
		time.Sleep(clusterPoll)
	}
}

// awaitLeaderStart polls ListOffsets earliest on n until it answers and
// checks it is want; a fetch below it is then OFFSET_OUT_OF_RANGE.
func (c *testCluster) awaitLeaderStart(n *clusterNode, topic string, want int64) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		env := c.trimCall(n, &fb.MessageT{Type: fb.MessageListOffsetsRequest, Value: &fb.ListOffsetsRequestT{ReplicaId: -1,
			Topics: []*fb.ListOffsetsTopicT{{Name: topic, Partitions: []*fb.ListOffsetsPartitionT{
				{Partition: 0, CurrentLeaderEpoch: -1, Timestamp: schema.ListOffsetsEarliest}}}}}})
		r := env.Message.Value.(*fb.ListOffsetsResponseT).Topics[0].Partitions[0]
		if r.ErrorCode == fb.ErrorCodeNone {
			if r.Offset != want {
				c.t.Fatalf("node %d: earliest %d, want %d", n.id, r.Offset, want)
			}
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d: earliest: %v", n.id, r.ErrorCode)
		}
		time.Sleep(clusterPoll)
	}
	env := c.trimCall(n, fetchMsg(topic, 0, want-1, 0, 0))
	if r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeOffsetOutOfRange || r.LogStartOffset != want {
		c.t.Fatalf("node %d: fetch at %d: %v, log start %d", n.id, want-1, r.ErrorCode, r.LogStartOffset)
	}
}

// TestDeleteRecordsReplicated: three brokers, a topic of replication
// factor 3, 1000 records. DeleteRecords before 400 on the leader answers
// once the low watermark (every ISR member's log start) is 400. With a
// follower stopped (SIGSTOP), before 500 times out at low watermark 400
// and the leader's log start is 500; resumed, the follower follows. The leader
// is killed: the new leader's log start is 500. DeleteRecords before 600 on
// it; the old leader restarts and rejoins, and a DeleteRecords before 600
// with all three in the ISR answers 600, so the rejoined replica moved its
// log start from the fetch answers. Stopped, every replica's log on disk
// starts at 600.
func TestDeleteRecordsReplicated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	c := newTestCluster(t, 3)
	const topic = "trimmed"
	c.createTopicWith(c.nodes[1], topic, 1, 3, topicConfigs("segment.bytes=8192")...)
	leader := c.trimLeader(c.nodes[1], topic, 3, -1)
	for from := 0; from < 1000; from += 100 {
		env := c.trimCall(leader, produceMsg(fb.AcksAll, topic, 0, batch(t, from, 100, 1)))
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != int64(from) {
			t.Fatalf("produce at %d: %v, base %d", from, r.ErrorCode, r.BaseOffset)
		}
	}
	env := c.trimCall(leader, deleteRecordsMsg(topic, 0, 1001, 1000))
	if r := env.Message.Value.(*fb.DeleteRecordsResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeOffsetOutOfRange {
		t.Fatalf("delete before 1001 (past the high watermark): %v", r.ErrorCode)
	}
	for _, n := range c.nodes {
		if n == leader {
			continue
		}
		env := c.trimCall(n, deleteRecordsMsg(topic, 0, 400, 1000))
		if r := env.Message.Value.(*fb.DeleteRecordsResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNotLeader {
			t.Fatalf("delete on follower %d: %v", n.id, r.ErrorCode)
		}
	}
	c.awaitDeleted(leader, topic, 400)
	c.awaitLeaderStart(leader, topic, 400)

	// A follower in the ISR that does not fetch holds the low watermark
	// back: the answer is REQUEST_TIMED_OUT with the follower's log start,
	// the leader's has moved. Once it fetches again, it follows.
	var stopped *clusterNode
	for _, n := range c.nodes {
		if n != leader {
			stopped = n
			break
		}
	}
	if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	env = c.trimCall(leader, deleteRecordsMsg(topic, 0, 500, 300))
	r := env.Message.Value.(*fb.DeleteRecordsResponseT).Topics[0].Partitions[0]
	if r.ErrorCode != fb.ErrorCodeRequestTimedOut || r.LowWatermark != 400 {
		// Only when the stopped follower was already out of the ISR (its
		// session lapsed before the request came) may the answer be NONE.
		tm := topicOf(c.metadata(leader), topic)
		if r.ErrorCode != fb.ErrorCodeNone || slices.Contains(tm.Partitions[0].Isr, stopped.id) {
			t.Fatalf("delete before 500 with follower %d stopped: %v, low watermark %d", stopped.id, r.ErrorCode, r.LowWatermark)
		}
		t.Logf("follower %d left the ISR before the request came: the timeout was not seen", stopped.id)
	}
	c.awaitLeaderStart(leader, topic, 500)
	if err := stopped.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c.trimLeader(leader, topic, 3, -1)
	c.awaitDeleted(leader, topic, 500)

	old := leader
	old.kill()
	var survivor *clusterNode
	for _, n := range c.nodes {
		if n != old {
			survivor = n
			break
		}
	}
	leader = c.trimLeader(survivor, topic, 2, old.id)
	c.awaitLeaderStart(leader, topic, 500)
	checkFirstRecordAt(t, c, leader, topic, 500)
	c.awaitDeleted(leader, topic, 600)
	c.awaitLeaderStart(leader, topic, 600)

	c.start(old)
	c.waitReady(old)
	leader = c.trimLeader(leader, topic, 3, -1)
	c.awaitDeleted(leader, topic, 600)

	for _, n := range c.nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range c.nodes {
		<-n.done
	}
	for id, n := range c.nodes {
		l, err := segment.Open(partitionDir(n.dataDir(), topic, 0), segment.Config{})
		if err != nil {
			t.Fatalf("node %d: %v", id, err)
		}
		start, end := l.LogStart(), l.End()
		l.Close()
		if start != 600 || end != 1000 {
			t.Fatalf("node %d: log [%d, %d), want [600, 1000)", id, start, end)
		}
	}
}

// checkFirstRecordAt fetches at offset from n and checks the first record
// served at or after it is the one produced at offset.
func checkFirstRecordAt(t *testing.T, c *testCluster, n *clusterNode, topic string, offset int64) {
	t.Helper()
	cl := newTestClient(t, n.clientAddr())
	defer cl.conn.Close()
	checkFirstRecord(t, cl, topic, offset)
}
