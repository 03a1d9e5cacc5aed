package server

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-db/strata/schema/fb"
)

// Replication across a network partition: three `strata serve` processes,
// each in a network namespace of its own (netns_helpers_test.go), a topic
// of replication factor 3 and min.insync.replicas 2 under acks=all load.
// A partition leader's cluster link is cut, so that it is alone and the
// other two are a majority:
//   - the isolated leader acknowledges no acks=all produce sent to it
//     after the cut (its followers cannot fetch, and no controller it can
//     reach would shrink its ISR), though it appends them;
//   - the majority fences it when its session lapses, elects a new leader
//     of its partitions with a higher leader epoch, and acknowledges on;
//   - healed, the old leader is unfenced again, truncates the records it
//     appended alone and follows the new leader back into every ISR;
//   - every acknowledged record is at its acknowledged offset, the three
//     replicas are byte for byte the same below the common log end, and
//     none of the isolated leader's unacknowledged appends survives.
//
// The second scenario isolates the controller leader, which leads a
// partition too: the majority elects a new controller as well.

const (
	// netnsIsoTimeoutMs is the produce timeout of the requests sent to
	// the isolated leader: each is answered REQUEST_TIMED_OUT, and the
	// producer tries again.
	netnsIsoTimeoutMs = 1000
	// netnsIsoSeqBase numbers the isolated producer's records apart from
	// the other producers' (which count from 0), so that the logs show
	// which records were sent to the isolated leader.
	netnsIsoSeqBase = 1 << 30
	// netnsMajoritySeqBase numbers the records the test sends straight
	// to the new leader.
	netnsMajoritySeqBase = 1 << 29
	// netnsProducesAfterElection is how many produces to the isolated
	// leader must have been sent after the majority elected a new leader
	// (its session had lapsed by then) before the partition heals.
	netnsProducesAfterElection = 2
)

func TestReplicationNetworkPartition(t *testing.T) {
	netnsSkip(t)
	lab := newNetnsLab(t, 3)
	t.Run("partition-leader", func(t *testing.T) { netnsPartitionScenario(t, lab, false) })
	t.Run("controller-and-partition-leader", func(t *testing.T) { netnsPartitionScenario(t, lab, true) })
}

// netnsLoad is acks=all producers on every partition of the replicated
// topic, each following the leader as replProducer does.
type netnsLoad struct {
	t        *testing.T
	stop     chan struct{}
	acks     chan replAck
	produced [replPartitions]atomic.Int64 // acknowledged records, by partition
	stopOnce sync.Once
	wg       sync.WaitGroup
	acked    []replAck
}

func startNetnsLoad(t *testing.T, c *testCluster) *netnsLoad {
	l := &netnsLoad{t: t, stop: make(chan struct{}), acks: make(chan replAck, 1<<16)}
	for p := int32(0); p < replPartitions; p++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			replProducer(t, c, p, l.stop, l.acks, &l.produced[p])
		}()
	}
	// A test that fails half way stops its producers before the cluster
	// goes: they report through t, which must not outlive them.
	t.Cleanup(l.stopAndWait)
	return l
}

func (l *netnsLoad) stopAndWait() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *netnsLoad) drain() {
	for {
		select {
		case a := <-l.acks:
			l.acked = append(l.acked, a)
		default:
			return
		}
	}
}

// total is the records acknowledged on every partition.
func (l *netnsLoad) total() int64 {
	var n int64
	for p := range l.produced {
		n += l.produced[p].Load()
	}
	return n
}

// waitProduced waits for more acknowledged records.
func (l *netnsLoad) waitProduced(what string, more int64) {
	l.t.Helper()
	want := l.total() + more
	start := time.Now()
	for l.total() < want {
		if time.Since(start) > clusterWait {
			l.t.Fatalf("%s: producers stuck at %d acknowledged records (want %d)", what, l.total(), want)
		}
		l.drain()
		time.Sleep(clusterPoll)
	}
	l.t.Logf("%s: %d more records acknowledged in %v", what, more, time.Since(start).Round(time.Millisecond))
}

// produceUntilAcked sends one acks=all produce of partition to addr
// until it is acknowledged, and returns the acknowledgement.
func produceUntilAcked(t *testing.T, addr string, partition int32, first int) replAck {
	t.Helper()
	start := time.Now()
	for {
		m := produceMsg(fb.AcksAll, replTopic, partition, replBatch(t, partition, first))
		m.Value.(*fb.ProduceRequestT).TimeoutMs = netnsIsoTimeoutMs
		env, _, err := rawCall(addr, m)
		var code fb.ErrorCode = -1
		if err == nil {
			if pr, ok := env.Message.Value.(*fb.ProduceResponseT); ok {
				part := pr.Topics[0].Partitions[0]
				if code = part.ErrorCode; code == fb.ErrorCodeNone {
					t.Logf("partition %d: acknowledged by %s %v after the first try", partition, addr, time.Since(start).Round(time.Millisecond))
					return replAck{partition: partition, base: part.BaseOffset, first: first}
				}
			}
		}
		if time.Since(start) > clusterWait {
			t.Fatalf("partition %d: no produce acknowledged by %s within %v (last: %v, %v)", partition, addr, clusterWait, code, err)
		}
		time.Sleep(clusterPoll)
	}
}

func (l *netnsLoad) finish() []replAck {
	l.stopAndWait()
	l.drain()
	return l.acked
}

// netnsIsolatedProducer sends acks=all produces of one partition to one
// broker until stop, and counts what that broker answers.
type netnsIsolatedProducer struct {
	sent     int            // produces that got an answer or an I/O error
	answered map[string]int // answers by error code, or "io error"
	acked    []replAck      // produces acknowledged: none are expected
	sentAt   []time.Time    // when each acknowledged produce was sent

	// electedAtNs is when the test saw the majority's new leader (Unix
	// ns, 0 before); sentAfterElection counts the produces finished that
	// were sent after it.
	electedAtNs       atomic.Int64
	sentAfterElection atomic.Int32
}

func newIsolatedProducer() *netnsIsolatedProducer {
	return &netnsIsolatedProducer{answered: map[string]int{}}
}

func (r *netnsIsolatedProducer) run(t *testing.T, addr string, partition int32, stop <-chan struct{}) {
	for seq := netnsIsoSeqBase; ; seq += replRecordsPerBatch {
		select {
		case <-stop:
			return
		default:
		}
		m := produceMsg(fb.AcksAll, replTopic, partition, replBatch(t, partition, seq))
		m.Value.(*fb.ProduceRequestT).TimeoutMs = netnsIsoTimeoutMs
		sentAt := time.Now()
		env, _, err := rawCall(addr, m)
		r.sent++
		if e := r.electedAtNs.Load(); e != 0 && sentAt.UnixNano() > e {
			r.sentAfterElection.Add(1)
		}
		if err != nil {
			r.answered["io error"]++
			continue
		}
		pr, ok := env.Message.Value.(*fb.ProduceResponseT)
		if !ok {
			r.answered[fmt.Sprintf("answer of type %v", env.Message.Type)]++
			continue
		}
		part := pr.Topics[0].Partitions[0]
		r.answered[part.ErrorCode.String()]++
		if part.ErrorCode == fb.ErrorCodeNone {
			r.acked = append(r.acked, replAck{partition: partition, base: part.BaseOffset, first: seq})
			r.sentAt = append(r.sentAt, sentAt)
		}
	}
}

// netnsPartitionScenario isolates a partition leader (the controller
// leader too when controllerToo) and heals it again.
func netnsPartitionScenario(t *testing.T, lab *netnsLab, controllerToo bool) {
	c := newNetnsCluster(t, lab)
	c.createTopicWith(c.nodes[1], replTopic, replPartitions, 3, &fb.TopicConfigT{Name: "min.insync.replicas", Value: "2"})
	c.waitReplicated("the topic fully in sync")
	load := startNetnsLoad(t, c)
	load.waitProduced("before the cut", 200)

	// The victim: the leader of a partition that is (or is not) the
	// controller leader.
	md := c.waitMetadata(c.nodes[1], "a controller leader", func(md *fb.MetadataResponseT) bool { return md.ControllerId > 0 })
	var victim *fb.PartitionMetadataT
	for _, p := range topicOf(md, replTopic).Partitions {
		if (p.LeaderId == md.ControllerId) == controllerToo {
			victim = p
			break
		}
	}
	if victim == nil {
		t.Fatalf("no partition whose leader is (%v) the controller leader %d: %s", controllerToo, md.ControllerId, describeTopics(md))
	}
	old := c.nodes[victim.LeaderId]
	var majority *clusterNode
	for id, n := range c.nodes {
		if id != old.id {
			majority = n
			break
		}
	}
	t.Logf("isolating node %d, leader of partition %d at epoch %d (controller leader %d)",
		old.id, victim.Partition, victim.LeaderEpoch, md.ControllerId)

	lab.cut(t, old.id)
	cutAt := time.Now()
	isoStop := make(chan struct{})
	isoDone := make(chan struct{})
	var isoStopOnce sync.Once
	stopIso := func() {
		isoStopOnce.Do(func() { close(isoStop) })
		<-isoDone
	}
	iso := newIsolatedProducer()
	go func() {
		defer close(isoDone)
		iso.run(t, old.clientAddr(), victim.Partition, isoStop)
	}()
	t.Cleanup(stopIso)

	// The majority fences the isolated broker once its session lapses and
	// elects a new leader of its partition with a higher epoch (and a new
	// controller leader, if it was that too).
	after := c.waitMetadata(majority, "the isolated broker fenced and a new leader elected", func(md *fb.MetadataResponseT) bool {
		if md.ControllerId <= 0 || md.ControllerId == old.id {
			return false
		}
		for _, id := range brokerIDs(md) {
			if id == old.id {
				return false
			}
		}
		tm := topicOf(md, replTopic)
		if tm == nil {
			return false
		}
		p := tm.Partitions[victim.Partition]
		return p.LeaderId >= 0 && p.LeaderId != old.id && p.LeaderEpoch > victim.LeaderEpoch
	})
	iso.electedAtNs.Store(time.Now().UnixNano())
	newLeader := topicOf(after, replTopic).Partitions[victim.Partition]
	t.Logf("after %v: partition %d led by node %d at epoch %d, controller leader %d",
		time.Since(cutAt).Round(time.Millisecond), victim.Partition, newLeader.LeaderId, newLeader.LeaderEpoch, after.ControllerId)

	// The majority acknowledges on: the new leader of the isolated
	// broker's partition, and the producers of every partition.
	direct := produceUntilAcked(t, c.nodes[newLeader.LeaderId].clientAddr(), victim.Partition, netnsMajoritySeqBase)
	load.waitProduced("on the majority side", 100)
	// The old leader goes on refusing after the majority has moved on.
	for deadline := time.Now().Add(clusterWait); iso.sentAfterElection.Load() < netnsProducesAfterElection; {
		if time.Now().After(deadline) {
			t.Fatalf("the isolated producer finished %d produces sent after the election within %v",
				iso.sentAfterElection.Load(), clusterWait)
		}
		time.Sleep(clusterPoll)
	}
	stopIso()
	t.Logf("isolated leader: %d produces sent, answered %v", iso.sent, iso.answered)
	if iso.sent == 0 {
		t.Fatalf("the isolated producer sent nothing in %v", time.Since(cutAt))
	}
	for i, a := range iso.acked {
		t.Errorf("the isolated node %d acknowledged an acks=all produce sent %v after the cut (base offset %d)",
			old.id, iso.sentAt[i].Sub(cutAt).Round(time.Millisecond), a.base)
	}

	// Healed, the old leader follows the new one back into every ISR.
	lab.heal(t, old.id)
	healAt := time.Now()
	c.waitReplicated(fmt.Sprintf("node %d back in every ISR", old.id))
	c.waitMetadata(old, "the new leader from the healed node", func(md *fb.MetadataResponseT) bool {
		tm := topicOf(md, replTopic)
		return tm != nil && tm.Partitions[victim.Partition].LeaderEpoch >= newLeader.LeaderEpoch &&
			tm.Partitions[victim.Partition].LeaderId != old.id
	})
	t.Logf("node %d back in every ISR %v after the heal", old.id, time.Since(healAt).Round(time.Millisecond))
	load.waitProduced("after the heal", 100)
	acked := append(load.finish(), iso.acked...)
	acked = append(acked, direct)
	if t.Failed() {
		return
	}
	t.Logf("%d acknowledged produces (%d records)", len(acked), load.total())
	c.checkAcked(acked)
	c.checkReplicasIdentical()
	netnsCheckTruncated(t, c, iso)
}

// netnsCheckTruncated checks the stopped nodes' logs hold none of the
// records sent to the isolated leader that it did not acknowledge: it
// appended them alone, so healing must have truncated them.
func netnsCheckTruncated(t *testing.T, c *testCluster, iso *netnsIsolatedProducer) {
	t.Helper()
	acked := map[string]bool{}
	for _, a := range iso.acked {
		for i := range replRecordsPerBatch {
			acked[replValue(a.partition, a.first+i)] = true
		}
	}
	for id := int32(1); id <= int32(len(c.nodes)); id++ {
		for p := int32(0); p < replPartitions; p++ {
			frames, _ := readWholeLog(t, partitionDir(c.nodes[id].dataDir(), replTopic, p))
			for _, r := range records(t, frames) {
				v := string(r.Value)
				if netnsValueSeq(v) >= netnsIsoSeqBase && !acked[v] {
					t.Fatalf("node %d partition %d offset %d: %q, appended by the isolated leader and never acknowledged, survived the heal",
						id, p, r.Offset, v)
				}
			}
		}
	}
}

// netnsValueSeq is the sequence number of a replValue, or -1.
func netnsValueSeq(v string) int {
	_, seq, ok := strings.Cut(v, "-r")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(seq)
	if err != nil {
		return -1
	}
	return n
}
