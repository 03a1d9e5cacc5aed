package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/strata-db/strata/client"
)

// The scale-out and scale-in of the consumer-group section (groups.go).

const groupsGroup = "groups-bench-scale"

// startScaleMember dials a client of its own (as a process would) and runs
// a member's Poll loop on a goroutine.
func startScaleMember(ctx context.Context, c *cluster, name string) (*scaleMember, error) {
	cl, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	m := &scaleMember{name: name, cl: cl, done: make(chan error, 1),
		seen: map[int32][]time.Time{}, held: map[int32]time.Time{}, let: map[int32]time.Time{}}
	gc, err := client.NewGroupConsumer(cl, client.GroupConfig{GroupID: groupsGroup, Topics: []string{groupsTopic},
		Reset: client.ResetLatest, MaxWaitMs: 50,
		OnAssigned: func(_ context.Context, parts []client.TopicPartition) {
			now := time.Now()
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, tp := range parts {
				m.held[tp.Partition] = now
			}
		},
		OnRevoked: func(_ context.Context, parts []client.TopicPartition) {
			now := time.Now()
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, tp := range parts {
				delete(m.held, tp.Partition)
				m.let[tp.Partition] = now
			}
		}})
	if err != nil {
		cl.Close()
		return nil, err
	}
	m.gc = gc
	pctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	go func() {
		var failed error
		for pctx.Err() == nil {
			wctx, wcancel := context.WithTimeout(pctx, 200*time.Millisecond)
			recs, err := gc.Poll(wctx)
			wcancel()
			now := time.Now()
			if err != nil && pctx.Err() == nil && wctx.Err() == nil {
				failed = err
				break
			}
			var got [groupsPartitions]bool
			for _, r := range recs {
				if r.Partition >= 0 && r.Partition < groupsPartitions {
					got[r.Partition] = true
				}
			}
			m.mu.Lock()
			for p, ok := range got {
				if ok {
					m.seen[int32(p)] = append(m.seen[int32(p)], now)
				}
			}
			m.mu.Unlock()
		}
		cctx, ccancel := context.WithTimeout(context.Background(), clusterWaitTimeout)
		defer ccancel()
		if err := gc.Close(cctx); err != nil && failed == nil {
			failed = err
		}
		cl.Close()
		m.done <- failed
	}()
	return m, nil
}

// stop closes the member (revoking and leaving) and waits for it.
func (m *scaleMember) stop() error {
	m.cancel()
	return <-m.done
}

// awaitShares waits until each member holds its share of the partitions.
func awaitShares(ctx context.Context, members []*scaleMember) (time.Time, error) {
	deadline := time.Now().Add(groupsSettleTimeout)
	share := groupsPartitions / len(members)
	for {
		ok := true
		for _, m := range members {
			if m.holds() != share {
				ok = false
				break
			}
		}
		if ok {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d members did not each hold %d partitions within %v", len(members), share, groupsSettleTimeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(clusterPollInterval):
		}
	}
}

// ownersAt is, per partition, the member holding it.
func ownersAt(members []*scaleMember) map[int32]*scaleMember {
	out := map[int32]*scaleMember{}
	for _, m := range members {
		m.mu.Lock()
		for p := range m.held {
			out[p] = m
		}
		m.mu.Unlock()
	}
	return out
}

// analyze measures one change that began at start and settled at settled,
// with before the owners at start, after those at settled, stayers the
// members present throughout.
func analyze(ch *groupsChange, start, settled time.Time, steadyWindow time.Duration, before, after map[int32]*scaleMember, stayers []*scaleMember) {
	ch.SettleMs = msSince(start, settled)
	for p := range int32(groupsPartitions) {
		ob, oa := before[p], after[p]
		if ob == nil || oa == nil {
			continue
		}
		if ob == oa {
			if !contains(stayers, ob) {
				continue
			}
			ob.mu.Lock()
			since, held := ob.held[p]
			ob.mu.Unlock()
			if !held || since.After(start) {
				continue // let go and taken back meanwhile
			}
			gap := ob.longestGap(p, start, settled)
			steady := ob.longestGap(p, start.Add(-steadyWindow), start)
			ch.Kept = append(ch.Kept, keptGap{Member: ob.name, Partition: p, GapMs: ms(gap), SteadyGapMs: ms(steady),
				PauseMs: max(ms(gap)-ms(steady), 0)})
			continue
		}
		ob.mu.Lock()
		letAt := ob.let[p]
		ob.mu.Unlock()
		oa.mu.Lock()
		gotAt := oa.held[p]
		oa.mu.Unlock()
		last, ok1 := ob.lastBefore(p, letAt)
		first, ok2 := oa.firstAfter(p, gotAt)
		if ok1 && ok2 {
			ch.MovedPauseMs = append(ch.MovedPauseMs, msSince(last, first))
		}
	}
}

func contains(ms []*scaleMember, m *scaleMember) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runScaleRounds runs (a): rounds of groupsBase -> 2*groupsBase ->
// groupsBase consumers under a steady producer.
func runScaleRounds(ctx context.Context, c *cluster, rounds int, steady time.Duration) ([]groupsRound, error) {
	cl, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	stopProducer, err := steadyProducer(ctx, cl)
	if err != nil {
		return nil, err
	}
	var base []*scaleMember
	defer func() {
		var wg sync.WaitGroup
		for _, m := range base {
			wg.Add(1)
			go func() { defer wg.Done(); m.stop() }()
		}
		wg.Wait()
	}()
	for i := range groupsBase {
		m, err := startScaleMember(ctx, c, fmt.Sprintf("base-%d", i))
		if err != nil {
			return nil, err
		}
		base = append(base, m)
	}
	if _, err := awaitShares(ctx, base); err != nil {
		return nil, err
	}
	var out []groupsRound
	for round := range rounds {
		sleepCtx(ctx, steady)
		var r groupsRound
		before := ownersAt(base)
		start := time.Now()
		extra := make([]*scaleMember, 0, groupsBase)
		for i := range groupsBase {
			m, err := startScaleMember(ctx, c, fmt.Sprintf("extra-%d-%d", round, i))
			if err != nil {
				return nil, err
			}
			extra = append(extra, m)
		}
		all := append(append([]*scaleMember{}, base...), extra...)
		settled, err := awaitShares(ctx, all)
		if err != nil {
			return nil, err
		}
		after := ownersAt(all)
		sleepCtx(ctx, steady)
		analyze(&r.Out, start, settled, steady, before, after, base)
		logf("groups: round %d: scale-out settled in %.0f ms, %d kept, %d moved", round+1, r.Out.SettleMs, len(r.Out.Kept), len(r.Out.MovedPauseMs))

		before = ownersAt(all)
		start = time.Now()
		var wg sync.WaitGroup
		errs := make([]error, len(extra))
		for i, m := range extra {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = m.stop() }()
		}
		if settled, err = awaitShares(ctx, base); err != nil {
			return nil, err
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("a leaving consumer: %w", err)
			}
		}
		after = ownersAt(base)
		sleepCtx(ctx, steady)
		analyze(&r.In, start, settled, steady, before, after, base)
		logf("groups: round %d: scale-in settled in %.0f ms, %d kept, %d moved", round+1, r.In.SettleMs, len(r.In.Kept), len(r.In.MovedPauseMs))
		out = append(out, r)
	}
	if err := stopProducer(); err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	return out, nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
