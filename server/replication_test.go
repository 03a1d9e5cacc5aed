package server

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment"
)

// Replication under kill -9: three `strata serve` processes, a topic of
// replication factor 3 and min.insync.replicas 2, producers with
// acks=all on every partition, and rounds that kill -9 a partition
// leader, a follower or the controller leader and start it again. At the
// end every acknowledged record is at its acknowledged offset on the
// leader, and every replica's log is byte for byte the same below the
// high watermark.
//
// STRATA_REPLICATION_KILLS sets the rounds (the long mode of
// docs/replication.md runs 100).

const (
	replTopic      = "replicated"
	replPartitions = 3
	// replKillsDefault is the rounds `make test` runs.
	replKillsDefault = 20
	// replRecordsPerBatch is the records of one produce.
	replRecordsPerBatch = 8
	// replIOTimeout bounds one request of the test's producers.
	replIOTimeout = 5 * time.Second
)

// replAck is one acknowledged produce.
type replAck struct {
	partition int32
	base      int64
	first     int // the sequence number of its first record
}

// rawCall sends one request on a fresh connection and reads its answer;
// errors are returned, not fatal, so producers can run in goroutines.
func rawCall(addr string, m *fb.MessageT) (*fb.EnvelopeT, []byte, error) {
	return rawCallWithin(addr, m, replIOTimeout)
}

// rawCallWithin is rawCall with its own bound on the whole call: for a
// request that must be answered once (not retried, which could append it
// twice), however loaded the machine is.
func rawCallWithin(addr string, m *fb.MessageT, timeout time.Duration) (*fb.EnvelopeT, []byte, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	enc := schema.NewEncoder()
	if _, err := c.Write(enc.Encode(&schema.EnvelopeHeader{CorrelationID: 1, ClientID: "repl-test"}, m)); err != nil {
		return nil, nil, err
	}
	return readAnswer(c)
}

// replValue is the value of record seq of a partition.
func replValue(partition int32, seq int) string { return fmt.Sprintf("p%d-r%d", partition, seq) }

func replBatch(t testing.TB, partition int32, first int) []byte {
	b, err := schema.NewBatchBuilder(schema.BatchOptions{})
	if err != nil {
		t.Error(err)
		return nil
	}
	for i := first; i < first+replRecordsPerBatch; i++ {
		if err := b.Append(&schema.Record{Value: []byte(replValue(partition, i)), TimestampMs: time.Now().UnixMilli()}); err != nil {
			t.Error(err)
		}
	}
	out, err := b.AppendTo(nil)
	if err != nil {
		t.Error(err)
	}
	return out
}

// replLeaders reads the partition leaders from any live node.
func (c *testCluster) replLeaders() map[int32]int32 {
	for _, n := range c.nodes {
		addr := n.clientAddr()
		if addr == "" {
			continue
		}
		env, _, err := rawCall(addr, &fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{Topics: []string{replTopic}}})
		if err != nil {
			continue
		}
		md, ok := env.Message.Value.(*fb.MetadataResponseT)
		if !ok || topicOf(md, replTopic) == nil {
			continue
		}
		out := map[int32]int32{}
		for _, p := range topicOf(md, replTopic).Partitions {
			out[p.Partition] = p.LeaderId
		}
		return out
	}
	return nil
}

// replProducer produces to one partition until stop, recording each
// acknowledgement. It retries every error by looking the leader up again:
// a retried batch the broker did append but whose answer was lost is a
// duplicate, which the check allows.
func replProducer(t *testing.T, c *testCluster, partition int32, stop <-chan struct{}, acks chan<- replAck, produced *atomic.Int64) {
	seq := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		leaders := c.replLeaders()
		n := c.nodes[leaders[partition]]
		if n == nil || n.clientAddr() == "" {
			time.Sleep(50 * time.Millisecond) // no leader known: a failover under way
			continue
		}
		frames := replBatch(t, partition, seq)
		env, _, err := rawCall(n.clientAddr(), produceMsg(fb.AcksAll, replTopic, partition, frames))
		if err != nil {
			continue
		}
		r, ok := env.Message.Value.(*fb.ProduceResponseT)
		if !ok {
			continue
		}
		pr := r.Topics[0].Partitions[0]
		if pr.ErrorCode != fb.ErrorCodeNone {
			if !slices.Contains([]fb.ErrorCode{fb.ErrorCodeNotLeader, fb.ErrorCodeLeaderNotAvailable, fb.ErrorCodeNotEnoughReplicas,
				fb.ErrorCodeNotEnoughReplicasAfterAppend, fb.ErrorCodeRequestTimedOut, fb.ErrorCodeUnknownTopicOrPartition,
				fb.ErrorCodeFencedLeaderEpoch, fb.ErrorCodeStorageError}, pr.ErrorCode) {
				t.Errorf("partition %d: produce refused with %v", partition, pr.ErrorCode)
				return
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		acks <- replAck{partition: partition, base: pr.BaseOffset, first: seq}
		produced.Add(replRecordsPerBatch)
		seq += replRecordsPerBatch
	}
}

func TestReplicationKillNineUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes and kills them")
	}
	kills := replKillsDefault
	if v := os.Getenv("STRATA_REPLICATION_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("STRATA_REPLICATION_KILLS=%q", v)
		}
		kills = n
	}
	c := newTestCluster(t, 3)
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
	drain := func() {
		for {
			select {
			case a := <-acks:
				acked = append(acked, a)
			default:
				return
			}
		}
	}
	waitProduced := func(more int64) {
		want := produced.Load() + more
		deadline := time.Now().Add(clusterWait)
		for produced.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("producers stuck at %d acknowledged records (want %d)", produced.Load(), want)
			}
			drain()
			time.Sleep(clusterPoll)
		}
	}
	waitProduced(200)
	for round := range kills {
		leaders := c.replLeaders()
		md := c.metadata(c.anyLive())
		var victim *clusterNode
		switch round % 3 {
		case 0: // a partition leader
			victim = c.nodes[leaders[int32(round/3%replPartitions)]]
		case 1: // a follower of a partition
			p := topicOf(md, replTopic).Partitions[round/3%replPartitions]
			for _, r := range p.Replicas {
				if r != p.LeaderId {
					victim = c.nodes[r]
					break
				}
			}
		case 2: // the controller leader
			victim = c.nodes[md.ControllerId]
		}
		if victim == nil {
			t.Fatalf("round %d: no victim in %s", round, describeTopics(md))
		}
		t.Logf("round %d: kill -9 node %d", round, victim.id)
		victim.kill()
		waitProduced(100) // the survivors go on: min.insync 2 of 3
		c.start(victim)
		c.waitReady(victim)
		c.waitReplicated(fmt.Sprintf("round %d: node %d back in every ISR", round, victim.id))
		waitProduced(100)
	}
	close(stop)
	wg.Wait()
	drain()
	if t.Failed() {
		return
	}
	t.Logf("%d kills, %d acknowledged produces (%d records)", kills, len(acked), produced.Load())
	c.checkAcked(acked)
	c.checkReplicasIdentical()
}

// createTopicWith is createTopic with topic configs.
func (c *testCluster) createTopicWith(n *clusterNode, name string, partitions int32, rf int16, configs ...*fb.TopicConfigT) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		env, _, err := rawCall(n.clientAddr(), &fb.MessageT{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{
			Topics: []*fb.CreatableTopicT{{Name: name, NumPartitions: partitions, ReplicationFactor: rf, Configs: configs}}}})
		if err == nil {
			r := env.Message.Value.(*fb.CreateTopicsResponseT).Topics[0]
			switch r.ErrorCode {
			case fb.ErrorCodeNone, fb.ErrorCodeTopicAlreadyExists:
				return
			case fb.ErrorCodeRequestTimedOut, fb.ErrorCodeNotController:
			default:
				c.t.Fatalf("create topic %s: %v %s", name, r.ErrorCode, r.ErrorMessage)
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("create topic %s: not created within %v (%v)", name, clusterWait, err)
		}
		time.Sleep(clusterPoll)
	}
}

// anyLive is a node whose process runs.
func (c *testCluster) anyLive() *clusterNode {
	for _, n := range c.nodes {
		if n.clientAddr() != "" {
			select {
			case <-n.done:
			default:
				return n
			}
		}
	}
	c.t.Fatal("no live node")
	return nil
}

// waitReplicated waits until every partition of the topic has a leader
// and all three brokers in its ISR, as every live node sees it.
func (c *testCluster) waitReplicated(what string) {
	c.t.Helper()
	for _, n := range c.nodes {
		c.waitMetadata(n, what, func(md *fb.MetadataResponseT) bool {
			tm := topicOf(md, replTopic)
			if tm == nil || len(tm.Partitions) != replPartitions {
				return false
			}
			for _, p := range tm.Partitions {
				if p.LeaderId < 0 || len(p.Isr) != 3 {
					return false
				}
			}
			return true
		})
	}
}

// checkAcked reads every partition from its leader and checks that each
// acknowledged record is at its acknowledged offset.
func (c *testCluster) checkAcked(acked []replAck) { c.checkAckedRecords(acked, replRecordsPerBatch) }

// checkAckedRecords is checkAcked for acknowledgements of perAck records.
func (c *testCluster) checkAckedRecords(acked []replAck, perAck int) {
	t := c.t
	t.Helper()
	leaders := c.replLeaders()
	for p := int32(0); p < replPartitions; p++ {
		n := c.nodes[leaders[p]]
		byOffset := map[int64]string{}
		for offset := int64(0); ; {
			env, trailing, err := rawCall(n.clientAddr(), fetchMsg(replTopic, p, offset, 0, 1))
			if err != nil {
				t.Fatalf("partition %d: fetch at %d: %v", p, offset, err)
			}
			fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
			if fr.ErrorCode != fb.ErrorCodeNone {
				t.Fatalf("partition %d: fetch at %d: %v", p, offset, fr.ErrorCode)
			}
			if len(trailing) == 0 {
				break
			}
			for _, r := range records(t, trailing) {
				byOffset[r.Offset] = string(r.Value)
			}
			offset = fr.NextFetchOffset
		}
		lost := 0
		for _, a := range acked {
			if a.partition != p {
				continue
			}
			for i := range perAck {
				if got, want := byOffset[a.base+int64(i)], replValue(p, a.first+i); got != want {
					if lost < 5 {
						t.Errorf("partition %d offset %d: %q, acknowledged %q", p, a.base+int64(i), got, want)
					}
					lost++
				}
			}
		}
		if lost > 0 {
			t.Fatalf("partition %d: %d acknowledged records lost or moved", p, lost)
		}
	}
}

// checkReplicasIdentical stops every node and compares the replicas' logs
// on disk, frame by frame, below the smallest log end.
func (c *testCluster) checkReplicasIdentical() {
	t := c.t
	t.Helper()
	for _, n := range c.nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range c.nodes {
		<-n.done
	}
	for p := int32(0); p < replPartitions; p++ {
		var logs [][]byte
		var ends []int64
		for id := int32(1); id <= 3; id++ {
			dir := partitionDir(c.nodes[id].dataDir(), replTopic, p)
			b, end := readWholeLog(t, dir)
			logs = append(logs, b)
			ends = append(ends, end)
		}
		common := slices.Min(ends)
		for i := range logs {
			logs[i] = framesBelow(t, logs[i], common)
		}
		for i := 1; i < len(logs); i++ {
			if !bytes.Equal(logs[0], logs[i]) {
				t.Fatalf("partition %d: replica on node %d differs from node 1 below offset %d", p, i+1, common)
			}
		}
		t.Logf("partition %d: three replicas identical below %d (ends %v)", p, common, ends)
	}
}

// dataDir is the node's data folder, from its arguments.
func (n *clusterNode) dataDir() string {
	for i, a := range n.args {
		if a == "--data-dir" && i+1 < len(n.args) {
			return n.args[i+1]
		}
	}
	return ""
}

// readWholeLog opens a stopped replica's log and returns its frames.
func readWholeLog(t *testing.T, dir string) ([]byte, int64) {
	t.Helper()
	l, err := segment.Open(dir, segment.Config{})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer l.Close()
	var out []byte
	for offset := l.LogStart(); offset < l.End(); {
		spans, err := l.Read(offset, 16<<20, -1)
		if err != nil || len(spans) == 0 {
			t.Fatalf("read %s at %d: %v", dir, offset, err)
		}
		if out, err = l.ReadSpans(out, spans); err != nil {
			t.Fatal(err)
		}
		offset = spans[len(spans)-1].NextOffset
	}
	return out, l.End()
}

// framesBelow keeps the whole frames of b that end at or below end.
func framesBelow(t *testing.T, b []byte, end int64) []byte {
	t.Helper()
	keep := 0
	for rest := b; len(rest) > 0; {
		h, err := schema.ParseFrameHeader(rest)
		if err != nil {
			t.Fatal(err)
		}
		if h.BaseOffset+int64(h.RecordCount) > end {
			break
		}
		keep += int(h.Length)
		rest = rest[h.Length:]
	}
	return b[:keep]
}
