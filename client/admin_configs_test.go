package client

import (
	"errors"
	"fmt"
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
