package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// The offset-commit rate of the consumer-group section (groups.go). Each
// committer has its own empty group (every group of the cluster lives on
// the one offsets partition, so one coordinator answers all) and its own
// connection, and sends an admin OffsetCommit of one partition as soon as
// the last was answered: the coordinator's whole commit path (validation,
// one Offset record, one batch appended acks=all, the answer released once
// the high watermark passed it), without a member's heartbeats beside it.

// groupsCommitIOTimeout bounds one commit's round trip.
const groupsCommitIOTimeout = 10 * time.Second

// commitRun is one committer count's figures.
type commitRun struct {
	Committers   int       `json:"committers"`
	PerSec       []float64 `json:"commits_per_sec"`
	MedianPerSec float64   `json:"median_commits_per_sec"`
	// P50Ms and P99Ms are the commits' round trips, over every round.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// wireConn is one connection speaking the wire, a request at a time.
type wireConn struct {
	conn net.Conn
	enc  *schema.Encoder
	corr int32
	buf  []byte
}

func dialWire(addr string) (*wireConn, error) {
	c, err := net.DialTimeout("tcp", addr, groupsCommitIOTimeout)
	if err != nil {
		return nil, err
	}
	return &wireConn{conn: c, enc: schema.NewEncoder()}, nil
}

// call sends m and reads its answer into env.
func (w *wireConn) call(m *fb.MessageT, env *schema.Envelope) error {
	w.corr++
	w.conn.SetDeadline(time.Now().Add(groupsCommitIOTimeout))
	if _, err := w.conn.Write(w.enc.Encode(&schema.EnvelopeHeader{CorrelationID: w.corr, ClientID: "groups-bench"}, m)); err != nil {
		return err
	}
	var p [schema.LengthPrefixBytes]byte
	if _, err := io.ReadFull(w.conn, p[:]); err != nil {
		return err
	}
	n, err := schema.PeekMessageLength(p[:])
	if err != nil {
		return err
	}
	w.buf = append(w.buf[:0], p[:]...)
	w.buf = slices.Grow(w.buf, n-len(p))[:n]
	if _, err := io.ReadFull(w.conn, w.buf[len(p):]); err != nil {
		return err
	}
	if err := env.DecodeResponse(w.buf); err != nil {
		return err
	}
	return env.Err()
}

// findCoordinator asks addr for the group's coordinator until one is
// named.
func findCoordinator(ctx context.Context, addr, group string) (string, error) {
	deadline := time.Now().Add(clusterWaitTimeout)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		w, err := dialWire(addr)
		if err == nil {
			var env schema.Envelope
			err = w.call(&fb.MessageT{Type: fb.MessageFindCoordinatorRequest, Value: &fb.FindCoordinatorRequestT{GroupId: group}}, &env)
			w.conn.Close()
			if err == nil {
				r, derr := env.FindCoordinatorResponse()
				switch {
				case derr != nil:
					err = derr
				case r.ErrorCode() != fb.ErrorCodeNone:
					err = fmt.Errorf("find coordinator: %s", schema.ErrorName(r.ErrorCode()))
				default:
					return net.JoinHostPort(string(r.Host()), strconv.Itoa(int(r.Port()))), nil
				}
			}
		}
		last = err
		sleepCtx(ctx, clusterPollInterval)
	}
	return "", fmt.Errorf("no coordinator for %s: %v", group, last)
}

// commitOnce sends one admin commit and checks its answer.
func commitOnce(w *wireConn, group string, offset int64) error {
	var env schema.Envelope
	err := w.call(&fb.MessageT{Type: fb.MessageOffsetCommitRequest, Value: &fb.OffsetCommitRequestT{GroupId: group, MemberEpoch: -1,
		Topics: []*fb.OffsetCommitTopicT{{Name: groupsTopic, Partitions: []*fb.OffsetCommitPartitionT{{Partition: 0, CommittedOffset: offset}}}}}}, &env)
	if err != nil {
		return err
	}
	r, err := env.OffsetCommitResponse()
	if err != nil {
		return err
	}
	if r.ErrorCode() != fb.ErrorCodeNone {
		return fmt.Errorf("commit: %s %s", schema.ErrorName(r.ErrorCode()), r.ErrorMessage())
	}
	var t fb.OffsetCommitTopicResponse
	var p fb.OffsetCommitPartitionResponse
	if r.TopicsLength() != 1 || !r.Topics(&t, 0) || t.PartitionsLength() != 1 || !t.Partitions(&p, 0) {
		return errors.New("commit: the answer names no partition")
	}
	if p.ErrorCode() != fb.ErrorCodeNone {
		return fmt.Errorf("commit: %s", schema.ErrorName(p.ErrorCode()))
	}
	return nil
}

// runCommitRate measures n committers for rounds of length d.
func runCommitRate(ctx context.Context, c *cluster, n, rounds int, d time.Duration) (*commitRun, error) {
	run := &commitRun{Committers: n}
	conns := make([]*wireConn, n)
	defer func() {
		for _, w := range conns {
			if w != nil {
				w.conn.Close()
			}
		}
	}()
	groups := make([]string, n)
	seed := c.liveAddrs()[0]
	for i := range n {
		groups[i] = fmt.Sprintf("groups-bench-commit-%d-%d", n, i)
		coord, err := findCoordinator(ctx, seed, groups[i])
		if err != nil {
			return nil, err
		}
		if conns[i], err = dialWire(coord); err != nil {
			return nil, err
		}
		if err := commitOnce(conns[i], groups[i], 0); err != nil { // the group exists from here
			return nil, err
		}
	}
	var lat []float64
	offset := int64(1)
	for range rounds {
		var wg sync.WaitGroup
		counts := make([]int, n)
		lats := make([][]float64, n)
		errs := make([]error, n)
		start := time.Now()
		end := start.Add(d)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for off := offset; time.Now().Before(end) && ctx.Err() == nil; off++ {
					t0 := time.Now()
					if err := commitOnce(conns[i], groups[i], off); err != nil {
						errs[i] = err
						return
					}
					lats[i] = append(lats[i], ms(time.Since(t0)))
					counts[i]++
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("%d committers: %w", n, err)
		}
		elapsed := time.Since(start).Seconds()
		total := 0
		for i := range n {
			total += counts[i]
			lat = append(lat, lats[i]...)
		}
		offset += int64(total) + 1
		run.PerSec = append(run.PerSec, float64(total)/elapsed)
	}
	run.MedianPerSec = median(run.PerSec)
	slices.Sort(lat)
	if len(lat) > 0 {
		run.P50Ms = lat[len(lat)/2]
		run.P99Ms = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return run, nil
}
