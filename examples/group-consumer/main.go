// Command group-consumer is the classic group consumer: a member of
// analytics-group that reads a topic from the group's committed offsets
// (from the log start where there are none: auto.offset.reset=earliest)
// and prints each record's key, value and offset. Positions are committed
// every 5 s and when it stops (Ctrl-C). Run several at once and the
// group's coordinator shares the topic's partitions among them.
//
//	strata serve &
//	strata topic create events --partitions 3
//	go run ./examples/group-consumer --topic events
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/strata-db/strata/client"
)

func main() {
	brokers := flag.String("brokers", client.DefaultBroker, "a broker address HOST:PORT")
	group := flag.String("group", "analytics-group", "the consumer group")
	topic := flag.String("topic", "events", "the topic to read")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{*brokers}})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	c, err := client.NewGroupConsumer(cl, client.GroupConfig{
		GroupID: *group,
		Topics:  []string{*topic},
		Reset:   client.ResetEarliest, // auto.offset.reset=earliest
		OnAssigned: func(_ context.Context, parts []client.TopicPartition) {
			log.Printf("assigned %v", parts)
		},
		OnRevoked: func(_ context.Context, parts []client.TopicPartition) {
			log.Printf("revoked %v", parts)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for {
		recs, err := c.Poll(ctx)
		if err != nil {
			break // interrupted
		}
		for _, r := range recs {
			fmt.Printf("key=%s value=%s offset=%d\n", r.Key, r.Value, r.Offset)
		}
	}
	// Commits the positions and leaves the group at once, so the others
	// take over its partitions without waiting for its session to end.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(cctx); err != nil {
		log.Fatal(err)
	}
}
