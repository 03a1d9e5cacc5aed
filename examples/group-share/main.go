// Command group-share runs three consumers of one group in one process,
// each with its own connection as separate processes would have, sharing
// a topic: the coordinator gives each a share of the partitions, and each
// prints the records it reads with its name. When one stops after a
// while, the other two take over its partitions from its last commit.
//
//	strata serve &
//	strata topic create clicks --partitions 6
//	seq 1 1000 | strata produce clicks
//	go run ./examples/group-share --topic clicks
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/strata-db/strata/client"
)

func main() {
	brokers := flag.String("brokers", client.DefaultBroker, "a broker address HOST:PORT")
	group := flag.String("group", "share-group", "the consumer group")
	topic := flag.String("topic", "clicks", "the topic the three share")
	leaveAfter := flag.Duration("leave-after", 20*time.Second, "when the third consumer leaves the group (0: never)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("consumer-%d", i)
		mctx := ctx
		if i == 3 && *leaveAfter > 0 {
			var cancel context.CancelFunc
			mctx, cancel = context.WithTimeout(ctx, *leaveAfter)
			defer cancel()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := consume(mctx, *brokers, *group, *topic, name); err != nil {
				log.Printf("%s: %v", name, err)
			}
		}()
	}
	wg.Wait()
}

// consume runs one member until ctx ends, then closes it (commit, leave).
func consume(ctx context.Context, brokers, group, topic, name string) error {
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{brokers}, ClientID: name})
	if err != nil {
		return err
	}
	defer cl.Close()
	c, err := client.NewGroupConsumer(cl, client.GroupConfig{
		GroupID: group,
		Topics:  []string{topic},
		Reset:   client.ResetEarliest,
		OnAssigned: func(_ context.Context, parts []client.TopicPartition) {
			log.Printf("%s: assigned %v", name, parts)
		},
		OnRevoked: func(_ context.Context, parts []client.TopicPartition) {
			log.Printf("%s: revoked %v", name, parts)
		},
	})
	if err != nil {
		return err
	}
	for {
		recs, err := c.Poll(ctx)
		if err != nil {
			break
		}
		for _, r := range recs {
			fmt.Printf("%s: %s/%d@%d %s\n", name, r.Topic, r.Partition, r.Offset, r.Value)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Close(cctx)
}
