package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/strata-db/strata/client"
)

// The failover probe: a producer sends one record at a time (acks=all, no
// linger) to one partition of a replicated topic; its leader is killed
// with SIGKILL; the failover time is from the kill to the first
// acknowledgement that comes after the process is gone, which only the
// new leader can give. The producer is the client library's, with its
// defaults: on the lost connection it refreshes the metadata, which names
// the old leader until the controller fences it (once the broker's
// session connection closed and the connection-loss grace passed, or the
// session timeout for a failure that closes nothing), retries the dead
// address with an exponential backoff (100 ms doubling to 1 s), and asks
// for the metadata every 100 ms meanwhile, sending as soon as another
// broker leads.
const (
	failoverTopic      = "failover"
	failoverPartitions = 3
	// failoverWarmAcks are the acknowledgements the probe waits for before
	// the kill, so the producer is connected and its metadata cached.
	failoverWarmAcks = 20
	// failoverProbeBytes is each probe record's value.
	failoverProbeBytes = 100
	// failoverDeliveryTimeoutMs bounds one probe record's retries: above
	// any failover the cluster's session timeouts allow.
	failoverDeliveryTimeoutMs = 120_000
)

// failoverSample is one kill of a partition leader.
type failoverSample struct {
	Partition int32 `json:"partition"`
	Killed    int32 `json:"killed_leader"`
	// KilledController says the killed broker was also the active
	// controller, so a controller election came first.
	KilledController bool  `json:"killed_controller"`
	NewLeader        int32 `json:"new_leader"`
	// LeaderSeenMs is when a survivor's metadata first named another
	// leader (polled every clusterPollInterval); FirstAckMs when the
	// producer had its first acknowledgement after the kill. Both from
	// the kill.
	LeaderSeenMs float64 `json:"leader_seen_ms"`
	FirstAckMs   float64 `json:"first_ack_ms"`
	// Resends are the probe producer's batch resends between the kill and
	// the first acknowledgement: tries spaced by its backoff.
	Resends int64 `json:"resends"`
	// RejoinMs is the restarted broker's start until the topic was fully
	// in sync again (not part of the failover).
	RejoinMs float64 `json:"rejoin_ms"`
}

// failoverRun is the samples under one cluster's timeouts.
type failoverRun struct {
	Timeouts     clusterTimeouts  `json:"timeouts"`
	Samples      []failoverSample `json:"samples"`
	MedianAckMs  float64          `json:"median_first_ack_ms"`
	MedianSeenMs float64          `json:"median_leader_seen_ms"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runFailover creates the probe topic on c and kills a partition leader
// repeats times, restarting it and waiting for the topic to be in sync
// between kills.
func runFailover(ctx context.Context, c *cluster, flushPolicy string, repeats int) (*failoverRun, error) {
	run := &failoverRun{Timeouts: c.timeouts}
	if err := c.createTopic(ctx, client.TopicSpec{Name: failoverTopic, Partitions: failoverPartitions, ReplicationFactor: clusterBrokers,
		Configs: map[string]string{"min.insync.replicas": "2", "flush.policy": flushPolicy}}); err != nil {
		return nil, err
	}
	for i := range repeats {
		s, err := failoverOnce(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("failover %d (%s timeouts): %w", i+1, c.timeouts.Name, err)
		}
		logf("replication: failover %d (%s timeouts): first ack %.0f ms after the kill, new leader seen at %.0f ms",
			i+1, c.timeouts.Name, s.FirstAckMs, s.LeaderSeenMs)
		run.Samples = append(run.Samples, *s)
	}
	var acks, seen []float64
	for _, s := range run.Samples {
		acks, seen = append(acks, s.FirstAckMs), append(seen, s.LeaderSeenMs)
	}
	run.MedianAckMs, run.MedianSeenMs = median(acks), median(seen)
	return run, nil
}

// failoverOnce is one kill: pick a partition whose leader is not the
// controller (when there is one), produce to it, kill its leader, time
// the first acknowledgement, restart the broker and wait for the ISR.
func failoverOnce(ctx context.Context, c *cluster) (*failoverSample, error) {
	topic, _, err := c.waitTopic(ctx, failoverTopic, "every replica in sync", fullyInSync)
	if err != nil {
		return nil, err
	}
	_, controller, err := c.describe(ctx, failoverTopic)
	if err != nil {
		return nil, err
	}
	target := topic.Partitions[0]
	for _, p := range topic.Partitions {
		if p.Leader != controller {
			target = p
			break
		}
	}
	s := &failoverSample{Partition: target.Partition, Killed: target.Leader, KilledController: target.Leader == controller}

	cl, err := client.Dial(ctx, client.Config{Brokers: c.liveAddrs(), ClientID: "benchmarks-failover"})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	prod, err := client.NewProducer(cl, client.ProducerConfig{Acks: client.AcksAll, LingerMs: -1, ManualPartitions: true,
		DeliveryTimeoutMs: failoverDeliveryTimeoutMs})
	if err != nil {
		return nil, err
	}
	pctx, stopProducing := context.WithCancel(ctx)
	acks := make(chan time.Time, 1024)
	produced := make(chan error, 1)
	go func() { produced <- probeProduce(pctx, prod, target.Partition, acks) }()
	defer func() {
		stopProducing()
		<-produced
		cctx, cancel := context.WithTimeout(ctx, clusterAdminTimeout)
		defer cancel()
		_ = prod.Close(cctx)
	}()
	for range failoverWarmAcks {
		select {
		case <-acks:
		case err := <-produced:
			return nil, fmt.Errorf("probe producer before the kill: %w", err)
		case <-time.After(clusterWaitTimeout):
			return nil, fmt.Errorf("probe producer: no acknowledgement within %s", clusterWaitTimeout)
		}
	}
	resendsBefore := prod.RetryStats().Batches
	killedAt := c.kill9(target.Leader)
	gone := time.Now()
	seen := make(chan time.Time, 1)
	go func() {
		_, at, err := c.waitTopic(pctx, failoverTopic, "a new leader", func(t client.TopicInfo) bool {
			p := t.Partitions[target.Partition]
			if p.Leader >= 0 && p.Leader != target.Leader {
				s.NewLeader = p.Leader
				return true
			}
			return false
		})
		if err != nil {
			at = time.Time{}
		}
		seen <- at
	}()
	var firstAck time.Time
	for firstAck.IsZero() {
		select {
		case at := <-acks:
			if at.After(gone) {
				firstAck = at
			}
		case err := <-produced:
			return nil, fmt.Errorf("probe producer after the kill: %w", err)
		case <-time.After(clusterWaitTimeout):
			return nil, fmt.Errorf("no acknowledgement within %s of the kill", clusterWaitTimeout)
		}
	}
	s.Resends = prod.RetryStats().Batches - resendsBefore
	leaderSeen := <-seen
	if leaderSeen.IsZero() {
		return nil, fmt.Errorf("no new leader of partition %d in the metadata", target.Partition)
	}
	s.FirstAckMs = msSince(killedAt, firstAck)
	s.LeaderSeenMs = msSince(killedAt, leaderSeen)

	restarted := time.Now()
	if err := c.start(ctx, target.Leader); err != nil {
		return nil, err
	}
	_, inSync, err := c.waitTopic(ctx, failoverTopic, "the restarted broker back in every ISR", fullyInSync)
	if err != nil {
		return nil, err
	}
	s.RejoinMs = msSince(restarted, inSync)
	return s, nil
}

// probeProduce sends one record at a time to partition and reports the
// time of each acknowledgement, until ctx ends or a record fails.
func probeProduce(ctx context.Context, prod *client.Producer, partition int32, acks chan<- time.Time) error {
	value := make([]byte, failoverProbeBytes)
	done := make(chan error, 1)
	for ctx.Err() == nil {
		r := &client.Record{Topic: failoverTopic, Partition: partition, Value: value}
		if err := prod.Send(ctx, r, func(_ int32, _ int64, err error) { done <- err }); err != nil {
			return nilIfDone(ctx, err)
		}
		select {
		case err := <-done:
			if err != nil {
				return nilIfDone(ctx, err)
			}
		case <-ctx.Done():
			return nil
		}
		select {
		case acks <- time.Now():
		default: // nobody is reading: the probe is over
		}
	}
	return nil
}

func nilIfDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func msSince(from, to time.Time) float64 { return float64(to.Sub(from)) / float64(time.Millisecond) }
