package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-db/strata/server/metadata"
)

// waitTimeout bounds every wait on a condition in these tests.
const waitTimeout = 30 * time.Second

// tickUntil ticks through the unbuffered ticks channel (each send waits
// for the node's loop to take it) until cond holds.
func tickUntil(t testing.TB, ticks chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		select {
		case ticks <- struct{}{}:
		case <-time.After(waitTimeout):
			t.Fatalf("node took no tick while waiting for %s", what)
		}
	}
}

func listener(port uint16) []metadata.Listener {
	return []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: port}}
}

func topicID(i int) metadata.TopicID {
	var id metadata.TopicID
	id[0] = 0xAB
	id[8] = byte(i >> 8)
	id[15] = byte(i)
	id[14] = byte(i >> 16)
	return id
}

func incarnation(id int32, gen int) metadata.IncarnationID {
	var inc metadata.IncarnationID
	inc[0], inc[1], inc[15] = byte(id), byte(gen), 1
	return inc
}

// registerBrokers registers brokers 1..count and unfences them with a
// heartbeat each, through node n (the leader).
func registerBrokers(t testing.TB, n *Node, count int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for id := int32(1); id <= int32(count); id++ {
		res, err := n.Propose(ctx, RegisterBroker(metadata.RegisterBrokerRequest{
			ID: id, Incarnation: incarnation(id, 0), Listeners: listener(9000 + uint16(id)),
		}))
		if err != nil {
			t.Fatalf("register broker %d: %v", id, err)
		}
		if _, err := n.Propose(ctx, BrokerHeartbeat(metadata.HeartbeatRequest{
			ID: id, Epoch: 1, AppliedOffset: res.Offset + 1,
		})); err != nil {
			t.Fatalf("heartbeat broker %d: %v", id, err)
		}
	}
}

func createTopic(ctx context.Context, n *Node, i int, rf int) (Result, error) {
	return n.Propose(ctx, CreateTopic(metadata.CreateTopicRequest{
		Name: fmt.Sprintf("topic-%d", i), ID: topicID(i),
		Configs:    map[string]string{metadata.ConfigPartitions: "3", metadata.ConfigReplicationFactor: fmt.Sprint(rf)},
		StartIndex: uint32(i),
	}))
}
