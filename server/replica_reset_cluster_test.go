package server

import (
	"bytes"
	"syscall"
	"testing"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment"
)

// TestFollowerBelowLeaderLogStartResets: three brokers, a topic of
// replication factor 3. A follower is killed after the first 100 records;
// 900 more are acknowledged by the other two, and DeleteRecords moves the
// leader's log start to 900, past everything the dead follower holds.
// Restarted, the follower's fetch from its log end is below the leader's
// log start: it empties its log and starts again at 900 (it would
// otherwise never catch up), rejoins the ISR, and takes the records that
// follow. Stopped, every replica's log starts at 900 and the three are
// identical from there.
func TestFollowerBelowLeaderLogStartResets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	c := newTestCluster(t, 3)
	const topic = "reset"
	c.createTopicWith(c.nodes[1], topic, 1, 3, topicConfigs("segment.bytes=8192")...)
	leader := c.trimLeader(c.nodes[1], topic, 3, -1)
	produce := func(from int) {
		t.Helper()
		env := c.trimCall(leader, produceMsg(fb.AcksAll, topic, 0, batch(t, from, 100, 1)))
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != int64(from) {
			t.Fatalf("produce at %d: %v, base %d", from, r.ErrorCode, r.BaseOffset)
		}
	}
	produce(0)
	var behind *clusterNode
	for _, n := range c.nodes {
		if n != leader {
			behind = n
			break
		}
	}
	behind.kill()
	leader = c.trimLeader(leader, topic, 2, behind.id)
	for from := 100; from < 1000; from += 100 {
		produce(from)
	}
	c.awaitDeleted(leader, topic, 900)
	c.awaitLeaderStart(leader, topic, 900)

	c.start(behind)
	c.waitReady(behind)
	leader = c.trimLeader(leader, topic, 3, -1)
	produce(1000)

	for _, n := range c.nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range c.nodes {
		<-n.done
	}
	var first []byte
	for id, n := range c.nodes {
		b, end := readWholeLog(t, partitionDir(n.dataDir(), topic, 0))
		start := logStartOf(t, partitionDir(n.dataDir(), topic, 0))
		if start != 900 || end != 1100 {
			t.Fatalf("node %d: log [%d, %d), want [900, 1100)", id, start, end)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(first, b) {
			t.Fatalf("node %d's log differs from the others' from 900", id)
		}
	}
}

// logStartOf opens a stopped replica's log and returns its log start.
func logStartOf(t *testing.T, dir string) int64 {
	t.Helper()
	l, err := segment.Open(dir, segment.Config{})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer l.Close()
	return l.LogStart()
}
