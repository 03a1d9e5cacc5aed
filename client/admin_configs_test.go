package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// TestAdminConfigsAndPartitions alters a topic's configs and reads them
// back, is refused a read-only key, and grows the topic: the producer on
// the same client then places keyed records over the new count, and every
// record is read back from the partition its key names.
func TestAdminConfigsAndPartitions(t *testing.T) {
	_, cl, ctx := startBroker(t)
	admin := NewAdmin(cl)
	const topic = "grows"
	createTopic(t, ctx, cl, topic, 1)

	if err := admin.AlterConfigs(ctx, false, ConfigChange{Topic: topic, Set: map[string]string{"retention.bytes": "1048576"}}); err != nil {
		t.Fatal(err)
	}
	err := admin.AlterConfigs(ctx, false, ConfigChange{Topic: topic, Set: map[string]string{"replication.factor": "3"}})
	var ce *schema.CodeError
	if !errors.As(err, &ce) || ce.Code != fb.ErrorCodeInvalidConfig {
		t.Fatalf("altering replication.factor: %v", err)
	}
	cfgs, err := admin.DescribeConfigs(ctx, topic)
	if err != nil || len(cfgs) != 1 {
		t.Fatalf("describe configs: %v %v", cfgs, err)
	}
	byKey := map[string]TopicConfig{}
	for _, c := range cfgs[0].Configs {
		byKey[c.Name] = c
	}
	if c := byKey["retention.bytes"]; c.Value != "1048576" || c.IsDefault {
		t.Fatalf("retention.bytes: %+v", c)
	}
	if c := byKey["compression.type"]; c.Value != "producer" || !c.IsDefault {
		t.Fatalf("compression.type: %+v", c)
	}
	if _, err := admin.DescribeConfigs(ctx, "no-such-topic"); !errors.As(err, &ce) || ce.Code != fb.ErrorCodeUnknownTopicOrPartition {
		t.Fatalf("describe configs of a missing topic: %v", err)
	}

	p, err := NewProducer(cl, ProducerConfig{LingerMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	send := func(from, n int) {
		t.Helper()
		col := newCollector()
		for i := from; i < from+n; i++ {
			if err := p.Send(ctx, &Record{Topic: topic, Key: []byte(fmt.Sprintf("k-%d", i)), Value: []byte("v")}, col.cb(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	send(0, 10)
	if err := admin.CreatePartitions(ctx, topic, 3, false); err != nil {
		t.Fatal(err)
	}
	if err := admin.CreatePartitions(ctx, topic, 2, false); !errors.As(err, &ce) || ce.Code != fb.ErrorCodeInvalidPartitions {
		t.Fatalf("shrinking: %v", err)
	}
	send(10, 30)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	recs := consumeN(t, ctx, cl, topic, 40)
	perPartition := map[int32]int{}
	for _, r := range recs {
		var i int
		fmt.Sscanf(string(r.Key), "k-%d", &i)
		want := int32(0)
		if i >= 10 {
			want = KeyPartition(r.Key, 3)
		}
		if r.Partition != want {
			t.Fatalf("record %s in partition %d, want %d", r.Key, r.Partition, want)
		}
		perPartition[r.Partition]++
	}
	if perPartition[1] == 0 || perPartition[2] == 0 {
		t.Fatalf("records per partition %v: the new partitions took none", perPartition)
	}
}

// TestProducerLZ4OnAnLZ4Topic: a topic whose compression.type is lz4
// takes every batch of a producer set to lz4, one lz4 cannot shrink
// included, and refuses a producer that does not compress.
func TestProducerLZ4OnAnLZ4Topic(t *testing.T) {
	_, cl, ctx := startBroker(t)
	const topic = "lz4-only"
	if err := NewAdmin(cl).CreateTopics(ctx, TopicSpec{Name: topic, Partitions: 1,
		Configs: map[string]string{"compression.type": "lz4"}}); err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 2048)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range noise { // xorshift: nothing for lz4 to find
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		noise[i] = byte(x)
	}
	send := func(compression uint16, value []byte) error {
		t.Helper()
		p, err := NewProducer(cl, ProducerConfig{Compression: compression, LingerMs: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		errc := make(chan error, 1)
		if err := p.Send(ctx, &Record{Topic: topic, Partition: 0, Value: value}, func(_ int32, _ int64, err error) { errc <- err }); err != nil {
			t.Fatal(err)
		}
		p.Flush(ctx) // the callback has the batch's outcome
		return <-errc
	}
	if err := send(CompressionLZ4, []byte(strings.Repeat("compressible ", 100))); err != nil {
		t.Fatalf("compressible lz4 batch: %v", err)
	}
	if err := send(CompressionLZ4, noise); err != nil {
		t.Fatalf("incompressible lz4 batch: %v", err)
	}
	var ce *schema.CodeError
	if err := send(CompressionNone, []byte("plain")); !errors.As(err, &ce) || ce.Code != fb.ErrorCodeUnsupportedCompressionType {
		t.Fatalf("uncompressed batch on an lz4 topic: %v", err)
	}
}
