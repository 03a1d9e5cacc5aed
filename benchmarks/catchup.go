package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/client"
)

// The catch-up of a follower: a replicated topic in sync on all three
// brokers, one follower killed (SIGKILL: its session lapses, the
// controller fences it, moves its leaderships and takes it out of the
// ISRs), a backlog of --catchup-bytes
// produced with acks=all while two replicas acknowledge (min.insync 2),
// then the follower started again and timed until it is back in every
// partition's ISR. Nothing is produced meanwhile, so the leader's high
// watermark is its log end, and a follower rejoins only once it holds the
// high watermark (replica.maybeExpandISR): back in the ISR, its log end
// equals the leader's.
const (
	catchupTopic      = "catchup"
	catchupPartitions = 6
	// catchupProducers fill the backlog; acks=all with two replicas.
	catchupProducers = 1
)

// catchUpResult is one follower's catch-up.
type catchUpResult struct {
	Follower int32 `json:"follower"`
	// BacklogBytes is what the leaders' logs grew by while the follower
	// was down (DescribeLogDirs on the leaders, before and after the
	// backlog): what the follower had to fetch.
	BacklogBytes int64 `json:"backlog_bytes"`
	// Fill is the produce of the backlog (loadgen produce, acks=all,
	// min.insync 2 of 3 replicas with one down).
	Fill figures `json:"fill"`
	// OutOfISRMs is the kill until no ISR named the follower (its
	// session timeout, then the fence).
	OutOfISRMs float64 `json:"out_of_isr_ms"`
	// ReadyMs is the restart until the broker's ready line; CaughtUpMs
	// the restart until it was in every ISR.
	ReadyMs    float64 `json:"ready_ms"`
	CaughtUpMs float64 `json:"caught_up_ms"`
	// MBPerSec is the backlog over CaughtUpMs (restart included), and
	// FromReadyMBPerSec over the time after the ready line.
	MBPerSec          float64 `json:"mb_per_sec"`
	FromReadyMBPerSec float64 `json:"from_ready_mb_per_sec"`
	// OfConsumeCeiling is MBPerSec over the consume ceiling of the same
	// run.
	OfConsumeCeiling float64 `json:"of_consume_ceiling"`
}

// runCatchUp measures one follower catching up backlogBytes of 1 KiB
// records on c.
func runCatchUp(ctx context.Context, cfg *config, c *cluster, loadgen string, backlogBytes int64) (*catchUpResult, error) {
	if err := c.createTopic(ctx, client.TopicSpec{Name: catchupTopic, Partitions: catchupPartitions, ReplicationFactor: clusterBrokers,
		Configs: map[string]string{"min.insync.replicas": "2", "flush.policy": cfg.replFlushPolicy}}); err != nil {
		return nil, err
	}
	if _, _, err := c.waitTopic(ctx, catchupTopic, "every replica in sync", fullyInSync); err != nil {
		return nil, err
	}
	_, controller, err := c.describe(ctx, catchupTopic)
	if err != nil {
		return nil, err
	}
	// The follower is a broker that is not the controller, so that its
	// stop and restart do not also move the controller.
	res := &catchUpResult{Follower: 1}
	for id := int32(1); id <= clusterBrokers; id++ {
		if id != controller {
			res.Follower = id
			break
		}
	}
	before, err := c.leaderBytes(ctx, catchupTopic)
	if err != nil {
		return nil, err
	}
	// SIGKILL rather than SIGTERM: a graceful stop of a broker that
	// followers fetch from waits out its 15 s drain for their parked
	// fetches (see docs/benchmarks.md), which would only add to the wait.
	stopping := c.kill9(res.Follower)
	_, out, err := c.waitTopic(ctx, catchupTopic, fmt.Sprintf("broker %d out of every ISR", res.Follower), inNoISR(res.Follower))
	if err != nil {
		return nil, err
	}
	res.OutOfISRMs = msSince(stopping, out)
	records := max(1, backlogBytes/replRecordBytes)
	args := []string{"produce", "--brokers", c.allAddrs(), "--topic", catchupTopic, "--json",
		"--producers", strconv.Itoa(catchupProducers), "--acks", "all", "--record-size", strconv.Itoa(replRecordBytes),
		"--records", strconv.FormatInt(records, 10), "--procs", strconv.Itoa(cfg.clientProcs)}
	logf("replication: catch-up: broker %d killed, out of every ISR after %.0f ms; producing %d records of %d B",
		res.Follower, res.OutOfISRMs, records, replRecordBytes)
	if err := runLoadgen(ctx, loadgen, nil, args, &res.Fill); err != nil {
		return nil, err
	}
	after, err := c.leaderBytes(ctx, catchupTopic)
	if err != nil {
		return nil, err
	}
	res.BacklogBytes = after - before
	// The backlog's dirty pages are written back first, so that the
	// catch-up does not pay for the fill's write-back.
	unix.Sync()
	started := time.Now()
	if err := c.start(ctx, res.Follower); err != nil {
		return nil, err
	}
	ready := time.Now()
	_, caughtUp, err := c.waitTopic(ctx, catchupTopic, fmt.Sprintf("broker %d back in every ISR", res.Follower), fullyInSync)
	if err != nil {
		return nil, err
	}
	res.ReadyMs = msSince(started, ready)
	res.CaughtUpMs = msSince(started, caughtUp)
	res.MBPerSec = float64(res.BacklogBytes) / bytesPerMB / (res.CaughtUpMs / 1000)
	if fromReady := res.CaughtUpMs - res.ReadyMs; fromReady > 0 {
		res.FromReadyMBPerSec = float64(res.BacklogBytes) / bytesPerMB / (fromReady / 1000)
	}
	logf("replication: catch-up: %d bytes in %.0f ms (%.1f MB/s)", res.BacklogBytes, res.CaughtUpMs, res.MBPerSec)
	return res, c.deleteTopic(ctx, catchupTopic)
}
