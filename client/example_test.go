package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/strata-db/strata/client"
)

// The classic producer: send records asynchronously, learn each one's
// partition and offset in its callback, flush before exiting. It needs a
// broker on 127.0.0.1:9292 (`strata serve`), so it has no Output line.
func ExampleProducer() {
	ctx := context.Background()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{"127.0.0.1:9292"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	p, err := client.NewProducer(cl, client.ProducerConfig{Acks: client.AcksAll, LingerMs: 5})
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		r := &client.Record{Topic: "events", Key: []byte(fmt.Sprintf("user-%d", i)), Value: []byte("clicked")}
		err := p.Send(ctx, r, func(partition int32, offset int64, err error) {
			if err != nil {
				log.Printf("not delivered: %v", err)
				return
			}
			log.Printf("delivered to %d at offset %d", partition, offset)
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil { // flushes
		log.Fatal(err)
	}
}

// The classic consumer loop: assign partitions, start somewhere, poll.
func ExampleConsumer() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{"127.0.0.1:9292"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	c := client.NewConsumer(cl, client.ConsumerConfig{Reset: client.ResetEarliest})
	defer c.Close()
	if err := c.Assign("events"); err != nil { // every partition
		log.Fatal(err)
	}
	for {
		recs, err := c.Poll(ctx)
		if err != nil {
			return // ctx ended
		}
		for _, r := range recs {
			fmt.Printf("%s/%d@%d %s=%s\n", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
		}
	}
}

// Creating and describing a topic.
func ExampleAdmin() {
	ctx := context.Background()
	cl, err := client.Dial(ctx, client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	a := client.NewAdmin(cl)
	err = a.CreateTopics(ctx, client.TopicSpec{Name: "events", Partitions: 6,
		Configs: map[string]string{"retention.ms": "604800000"}})
	if err != nil {
		log.Fatal(err)
	}
	topics, err := a.DescribeTopics(ctx, "events")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range topics[0].Partitions {
		fmt.Println(p.Partition, p.Leader, p.LeaderEpoch, p.Replicas, p.ISR)
	}
}

// Where a key lands: murmur2 of the key, sign bit cleared, modulo the
// partition count, as the Kafka Java client computes it.
func ExampleKeyPartition() {
	fmt.Println(client.Murmur2([]byte("21")), client.KeyPartition([]byte("21"), 6))
	// Output: -973932308 0
}

// A group consumer: the group's coordinator assigns this member
// partitions of the topic, each read from the group's committed offset
// (from the log start where there is none: auto.offset.reset=earliest);
// the positions are committed every 5 s and when it closes. It needs a
// broker on 127.0.0.1:9292, so it has no Output line.
func ExampleGroupConsumer() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{"127.0.0.1:9292"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	c, err := client.NewGroupConsumer(cl, client.GroupConfig{
		GroupID: "analytics-group",
		Topics:  []string{"events"},
		Reset:   client.ResetEarliest,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(context.Background()) // commits and leaves the group
	for {
		recs, err := c.Poll(ctx)
		if err != nil {
			return // ctx ended
		}
		for _, r := range recs {
			fmt.Printf("key=%s value=%s offset=%d\n", r.Key, r.Value, r.Offset)
		}
	}
}

// Committing by hand: auto-commit off, a commit after each batch is
// processed, and a commit of the revoked partitions' positions in
// OnRevoked, the last moment they are this member's to commit.
func ExampleGroupConsumer_manualCommit() {
	ctx := context.Background()
	cl, err := client.Dial(ctx, client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	var c *client.GroupConsumer
	c, err = client.NewGroupConsumer(cl, client.GroupConfig{
		GroupID:           "billing",
		Topics:            []string{"orders"},
		DisableAutoCommit: true,
		OnAssigned: func(_ context.Context, parts []client.TopicPartition) {
			log.Printf("assigned %v", parts)
		},
		OnRevoked: func(ctx context.Context, parts []client.TopicPartition) {
			if err := c.Commit(ctx); err != nil {
				log.Printf("commit before revoking %v: %v", parts, err)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	for {
		recs, err := c.Poll(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range recs {
			_ = r // process the record
		}
		c.CommitAsync(func(offsets map[client.TopicPartition]int64, err error) {
			if err != nil {
				log.Printf("commit %v: %v", offsets, err)
			}
		})
	}
}

// Lag per partition: the group's committed offsets against the log ends.
func ExampleAdmin_GroupOffsets() {
	ctx := context.Background()
	cl, err := client.Dial(ctx, client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	a := client.NewAdmin(cl)
	desc, err := a.DescribeGroup(ctx, "analytics-group")
	if err != nil {
		log.Fatal(err)
	}
	offsets, err := a.GroupOffsets(ctx, "analytics-group", desc)
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range offsets {
		fmt.Println(o.Topic, o.Partition, o.Committed, o.LogEnd, o.Lag, o.Member)
	}
}
