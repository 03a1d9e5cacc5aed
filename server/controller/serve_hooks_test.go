package controller

import (
	"context"
	"testing"
	"time"

	"github.com/strata-db/strata/server/metadata"
)

// TestSingleVoterLeadsWithoutTicksAndSignalsImages checks what the broker
// relies on: a lone voter leads before any tick, ImageChanged fires for
// each new image, and ValidateCreateTopic answers like CreateTopic without
// creating anything.
func TestSingleVoterLeadsWithoutTicksAndSignalsImages(t *testing.T) {
	ticks := make(chan struct{}) // never ticked
	n, err := New(Config{ID: 1, Voters: []uint64{1}, Dir: t.TempDir(), Ticks: ticks})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	changed := n.ImageChanged()
	before := n.Image().Offset()
	// The proposal waits for the Controller, which the lone voter builds
	// once it leads: no tick is ever sent.
	registerBrokers(t, n, 1)
	select {
	case <-changed:
	case <-time.After(waitTimeout):
		t.Fatal("ImageChanged did not fire after a registration")
	}
	if got := n.Image().Offset(); got <= before {
		t.Fatalf("image offset %d after registration, want > %d", got, before)
	}

	req := metadata.CreateTopicRequest{Name: "checked", ID: topicID(1),
		Configs: map[string]string{metadata.ConfigPartitions: "2"}}
	if _, err := n.Propose(ctx, ValidateCreateTopic(req)); err != nil {
		t.Fatalf("validate a good topic: %v", err)
	}
	if _, ok := n.Image().TopicByName("checked"); ok {
		t.Fatal("validation created the topic")
	}
	bad := req
	bad.Configs = map[string]string{metadata.ConfigReplicationFactor: "3"}
	if _, err := n.Propose(ctx, ValidateCreateTopic(bad)); metadata.CodeOf(err) != metadata.ErrInvalidReplicationFactor {
		t.Fatalf("validate rf 3 on one broker: %v, want INVALID_REPLICATION_FACTOR", err)
	}
	if _, err := n.Propose(ctx, CreateTopic(req)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Propose(ctx, ValidateCreateTopic(req)); metadata.CodeOf(err) != metadata.ErrTopicAlreadyExists {
		t.Fatalf("validate an existing topic: %v, want TOPIC_ALREADY_EXISTS", err)
	}
}
