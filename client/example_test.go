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
