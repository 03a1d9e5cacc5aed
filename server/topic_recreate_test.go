package server

import (
	"testing"
	"time"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// TestTopicRecreatedOpensOneLogPerPartition deletes and creates a topic
// again and again, each pair pipelined so that the two often reach the
// shards as one metadata image (the topic under a new id). However they
// arrive, every open log must belong to the topic table, one per
// partition, and the topic must take records.
func TestTopicRecreatedOpensOneLogPerPartition(t *testing.T) {
	b := startBroker(t, t.TempDir(), 1)
	t.Cleanup(func() { b.Stop() })
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("again", 3); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	for i := 0; i < 30; i++ {
		c.send(&fb.MessageT{Type: fb.MessageDeleteTopicsRequest, Value: &fb.DeleteTopicsRequestT{TopicNames: []string{"again"}}})
		c.send(&fb.MessageT{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{
			Topics: []*fb.CreatableTopicT{{Name: "again", NumPartitions: 3, ReplicationFactor: -1}}}})
		c.recv()
		env, _ := c.recv()
		// The create may be decided before the delete it follows.
		if code := env.Message.Value.(*fb.CreateTopicsResponseT).Topics[0].ErrorCode; code != fb.ErrorCodeNone && code != fb.ErrorCodeTopicAlreadyExists {
			t.Fatalf("create %d: %v", i, code)
		}
	}
	if code := c.createTopic("again", 3); code != fb.ErrorCodeNone && code != fb.ErrorCodeTopicAlreadyExists {
		t.Fatal(code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for p := int32(0); p < 3; p++ {
		for {
			env, _ := c.call(produceMsg(fb.AcksAll, "again", p, batch(t, 0, 1, 1)))
			r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
			if r.ErrorCode == fb.ErrorCodeNone && r.BaseOffset == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("produce to partition %d of the topic created again: %v, base %d", p, r.ErrorCode, r.BaseOffset)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	counted := make(chan logCount, 1)
	if err := b.srv.Shards()[0].Post(func(*Shard) { counted <- countLogs(b.shards[0]) }); err != nil {
		t.Fatal(err)
	}
	if n := <-counted; n.open != 3 || n.inTable != 3 {
		t.Fatalf("%d logs open, %d in the topic table; want 3 and 3", n.open, n.inTable)
	}
}

// logCount is what countLogs finds on a shard.
type logCount struct{ open, inTable int }

// countLogs counts, on the shard's own thread, the partition logs open and
// not closing, and the partitions its topic table holds.
func countLogs(bs *brokerShard) logCount {
	var n logCount
	for _, p := range bs.slots {
		if p != nil && !p.closing {
			n.open++
		}
	}
	for _, tp := range bs.topics {
		for _, p := range tp.parts {
			if p != nil {
				n.inTable++
			}
		}
	}
	return n
}

// TestImageWithTopicUnderNewIDReopensOnce applies, on the shard, an image
// in which a served topic has a new id (deleted and created again between
// two images) while its old logs are idle: each old log closes and its
// partition opens once, from the topic table, with no stray open log.
func TestImageWithTopicUnderNewIDReopensOnce(t *testing.T) {
	b := startBroker(t, t.TempDir(), 1)
	t.Cleanup(func() { b.Stop() })
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("again", 2); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	inc := b.session.incarnation.Load()
	st := metadata.NewState()
	recs := []metadata.Record{
		metadata.RegisterBrokerRecord{ID: b.cfg.NodeID, Incarnation: *inc, Epoch: 1,
			Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: b.Addr().Port()}}},
		metadata.UnfenceBrokerRecord{ID: b.cfg.NodeID, Epoch: 1},
		metadata.TopicRecord{ID: metadata.TopicID{7}, Name: "again",
			Configs: map[string]string{metadata.ConfigPartitions: "2", metadata.ConfigReplicationFactor: "1"}},
	}
	for p := int32(0); p < 2; p++ {
		recs = append(recs, metadata.PartitionRecord{TopicID: metadata.TopicID{7}, Partition: p,
			Replicas: []int32{b.cfg.NodeID}, ISR: []int32{b.cfg.NodeID}, Leader: b.cfg.NodeID})
	}
	if err := st.ApplyAll(recs); err != nil {
		t.Fatal(err)
	}
	renamed := st.Image()
	counts := make(chan logCount, 2)
	if err := b.srv.Shards()[0].Post(func(sh *Shard) {
		bs := b.shards[0]
		bs.sh = sh
		bs.applyImage(renamed)
		counts <- countLogs(bs)
		// Back to the broker's own image, at the end of the turn (after
		// any work the first apply deferred).
		sh.Defer(func(sh *Shard) {
			bs.sh = sh
			bs.applyImage(b.image.Load())
			sh.Defer(func(*Shard) { counts <- countLogs(bs) })
		})
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if n := <-counts; n.open != 2 || n.inTable != 2 {
			t.Fatalf("apply %d: %d logs open, %d in the topic table; want 2 and 2", i, n.open, n.inTable)
		}
	}
}
