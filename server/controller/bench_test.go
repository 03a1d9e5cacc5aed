package controller

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-db/strata/server/metadata"
)

// benchClients is how many callers propose at once in the throughput
// benchmark (brokers heartbeating concurrently).
const benchClients = 64

// BenchmarkProposeTCP3 measures committed metadata commands per second on
// a 3-voter quorum over loopback TCP and real files, with the default
// ticks: broker heartbeats from benchClients concurrent callers, each
// waiting for its commit.
func BenchmarkProposeTCP3(b *testing.B) {
	c := newTCPCluster(b, 3, DefaultTickMs)
	defer c.stopAll()
	l := c.waitLeader()
	registerBrokers(b, l, 3)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				id := int32(1 + next.Load()%3)
				if _, err := l.Propose(ctx, BrokerHeartbeat(metadata.HeartbeatRequest{ID: id, Epoch: 1, AppliedOffset: 1 << 20})); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d proposals failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkFailoverTCP3 measures the time from stopping the leader of a
// 3-voter quorum (loopback TCP, real files, default ticks: election 1 s,
// heartbeat 100 ms) until the next proposal commits on a new leader.
func BenchmarkFailoverTCP3(b *testing.B) {
	c := newTCPCluster(b, 3, DefaultTickMs)
	defer c.stopAll()
	registerBrokers(b, c.waitLeader(), 3)
	ctx := context.Background()
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		l := c.waitLeader()
		id := l.ID()
		start := time.Now()
		c.stop(id)
		if _, err := c.propose(ctx, BrokerHeartbeat(metadata.HeartbeatRequest{ID: 1, Epoch: 1, AppliedOffset: 1 << 20})); err != nil {
			b.Fatalf("failover %d: %v", i, err)
		}
		total += time.Since(start)
		b.StopTimer()
		c.start(id, nil)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
}
