package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/client/brokertest"
	"github.com/strata-db/strata/schema/fb"
)

// A replication cluster: clusterBrokers `strata serve` processes on this
// machine, each a controller voter and a broker with one shard, on
// loopback ports reserved up front so that a restarted broker comes back
// on the address the metadata already names.
const (
	clusterBrokers = 3
	// clusterShards is each broker's --cores: three brokers share the
	// machine's CPUs, one shard each.
	clusterShards = 1
	// clusterWaitTimeout bounds every wait for a cluster condition (a
	// topic fully in sync, a fence, a rejoin after restart).
	clusterWaitTimeout = 3 * time.Minute
	// clusterPollInterval is how often a wait asks the metadata again.
	clusterPollInterval = 20 * time.Millisecond
	// clusterAdminTimeout bounds one admin call inside a wait.
	clusterAdminTimeout = 5 * time.Second
	// clusterSecret is the quorum's shared secret; the cluster listens on
	// loopback only and lives for one benchmark run.
	clusterSecret = "the cluster secret of a Strata benchmark run\n"
)

// clusterTimeouts are a cluster's broker session settings: the defaults
// of `strata serve`, or the short ones the tests use.
type clusterTimeouts struct {
	Name              string  `json:"name"`
	HeartbeatInterval string  `json:"heartbeat_interval"`
	SessionTimeout    string  `json:"session_timeout"`
	sessionTimeout    float64 // seconds, for the bound the results state
}

var (
	// defaultTimeouts are server.DefaultHeartbeatInterval and
	// server.DefaultSessionTimeout (metadata.DefaultSessionTimeoutMs).
	defaultTimeouts = clusterTimeouts{Name: "default", HeartbeatInterval: "2s", SessionTimeout: "9s", sessionTimeout: 9}
	// shortTimeouts are the multi-process tests' (server/cluster_test.go).
	shortTimeouts = clusterTimeouts{Name: "short", HeartbeatInterval: "300ms", SessionTimeout: "3s", sessionTimeout: 3}
)

// cluster is the running brokers, by node id; a nil entry is one that is
// down (killed or stopped).
type cluster struct {
	strata   string
	timeouts clusterTimeouts
	args     map[int32][]string
	addrs    map[int32]string
	mu       sync.Mutex
	nodes    map[int32]*server
}

// reservePorts holds n distinct loopback ports until all are taken and
// then frees them for the brokers: a broker binding port 0 could be given
// another's controller port while that one is not yet bound.
func reservePorts(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// startCluster starts clusterBrokers brokers under dir with the given
// timeouts (and extra serve flags) and waits for each to be ready. They
// are not pinned: three one-shard brokers share the machine's CPUs as the
// kernel places them.
func startCluster(ctx context.Context, strata, dir string, t clusterTimeouts, logLevel string, extra ...string) (*cluster, error) {
	ports, err := reservePorts(2 * clusterBrokers)
	if err != nil {
		return nil, err
	}
	secretFile := filepath.Join(dir, "cluster-secret")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(secretFile, []byte(clusterSecret), 0o600); err != nil {
		return nil, err
	}
	var voters []string
	for id := 1; id <= clusterBrokers; id++ {
		voters = append(voters, fmt.Sprintf("%d@%s", id, ports[id-1]))
	}
	c := &cluster{strata: strata, timeouts: t, args: map[int32][]string{}, addrs: map[int32]string{}, nodes: map[int32]*server{}}
	for id := int32(1); id <= clusterBrokers; id++ {
		c.addrs[id] = ports[clusterBrokers+int(id)-1]
		c.args[id] = []string{"serve", "--node-id", strconv.Itoa(int(id)), "--controller-voters", strings.Join(voters, ","),
			"--cluster-secret-file", secretFile, "--data-dir", filepath.Join(dir, strconv.Itoa(int(id))),
			"--listen", c.addrs[id], "--admin", "", "--cores", strconv.Itoa(clusterShards), "--pin=false",
			"--log-level", logLevel, "--heartbeat-interval", t.HeartbeatInterval, "--session-timeout", t.SessionTimeout}
		c.args[id] = append(c.args[id], extra...)
	}
	// The voters wait for each other to form a quorum: start them all
	// before waiting for any.
	errs := make([]error, clusterBrokers+1)
	var wg sync.WaitGroup
	for id := int32(1); id <= clusterBrokers; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[id] = c.start(ctx, id)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// start runs broker id and waits for its ready line.
func (c *cluster) start(ctx context.Context, id int32) error {
	s, err := startServer(exec.CommandContext(ctx, c.strata, c.args[id]...), brokertest.ReadyAddr, nil)
	if err != nil {
		return fmt.Errorf("broker %d: %w", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = s
	c.mu.Unlock()
	return nil
}

// kill9 kills broker id with SIGKILL, waits until it is gone, and returns
// when the signal was sent.
func (c *cluster) kill9(id int32) time.Time {
	c.mu.Lock()
	s := c.nodes[id]
	c.nodes[id] = nil
	c.mu.Unlock()
	at := time.Now()
	_ = s.cmd.Process.Kill()
	<-s.exited
	return at
}

// close kills every broker that runs: the cluster's data is thrown away,
// and a graceful stop of the last voters would wait for a controller
// quorum that the earlier stops took away.
func (c *cluster) close() {
	for id := int32(1); id <= clusterBrokers; id++ {
		c.mu.Lock()
		s := c.nodes[id]
		c.mu.Unlock()
		if s != nil {
			c.kill9(id)
		}
	}
}

// liveAddrs are the client addresses of the brokers that run.
func (c *cluster) liveAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id := int32(1); id <= clusterBrokers; id++ {
		if c.nodes[id] != nil {
			out = append(out, c.addrs[id])
		}
	}
	return out
}

// allAddrs are every broker's client address, down or not: loadgen's
// seed list.
func (c *cluster) allAddrs() string {
	var out []string
	for id := int32(1); id <= clusterBrokers; id++ {
		out = append(out, c.addrs[id])
	}
	return strings.Join(out, ",")
}

// dial connects a client to the brokers that run now.
func (c *cluster) dial(ctx context.Context) (*client.Client, error) {
	return client.Dial(ctx, client.Config{Brokers: c.liveAddrs(), ClientID: "benchmarks"})
}

// describe is one topic's metadata and the controller's id, asked of a
// fresh client on the live brokers (a cached connection to a killed
// broker would only slow the answer).
func (c *cluster) describe(ctx context.Context, topic string) (client.TopicInfo, int32, error) {
	actx, cancel := context.WithTimeout(ctx, clusterAdminTimeout)
	defer cancel()
	cl, err := c.dial(actx)
	if err != nil {
		return client.TopicInfo{}, 0, err
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)
	ts, err := admin.DescribeTopics(actx, topic)
	if err != nil {
		return client.TopicInfo{}, 0, err
	}
	info, err := admin.DescribeCluster(actx)
	if err != nil || len(ts) != 1 {
		return client.TopicInfo{}, 0, fmt.Errorf("describe %s: %d topics, %v", topic, len(ts), err)
	}
	return ts[0], info.ControllerID, nil
}

// waitTopic polls topic's metadata until cond holds, bounded by
// clusterWaitTimeout, and returns the metadata that met it and when.
func (c *cluster) waitTopic(ctx context.Context, topic, what string, cond func(client.TopicInfo) bool) (client.TopicInfo, time.Time, error) {
	deadline := time.Now().Add(clusterWaitTimeout)
	var last client.TopicInfo
	var lastErr error
	for {
		t, _, err := c.describe(ctx, topic)
		if err == nil && cond(t) {
			return t, time.Now(), nil
		}
		if err == nil {
			last = t
		}
		lastErr = err
		if time.Now().After(deadline) {
			return last, time.Time{}, fmt.Errorf("%s: %s not seen within %s (last metadata %+v, last error %v)",
				topic, what, clusterWaitTimeout, last.Partitions, lastErr)
		}
		select {
		case <-ctx.Done():
			return last, time.Time{}, ctx.Err()
		case <-time.After(clusterPollInterval):
		}
	}
}

// fullyInSync holds when every partition is led and has every replica in
// its ISR.
func fullyInSync(t client.TopicInfo) bool {
	if len(t.Partitions) == 0 {
		return false
	}
	for _, p := range t.Partitions {
		if p.Leader < 0 || len(p.ISR) != len(p.Replicas) {
			return false
		}
	}
	return true
}

// inNoISR holds when broker id is in no partition's ISR.
func inNoISR(id int32) func(client.TopicInfo) bool {
	return func(t client.TopicInfo) bool {
		for _, p := range t.Partitions {
			if slices.Contains(p.ISR, id) || p.Leader < 0 {
				return false
			}
		}
		return len(t.Partitions) > 0
	}
}

// createTopic creates a replicated topic, retrying while no controller
// can take it.
func (c *cluster) createTopic(ctx context.Context, spec client.TopicSpec) error {
	deadline := time.Now().Add(clusterWaitTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, clusterAdminTimeout)
		cl, err := c.dial(actx)
		if err == nil {
			err = client.NewAdmin(cl).CreateTopics(actx, spec)
			cl.Close()
		}
		cancel()
		if err == nil || client.ErrorCode(err) == fb.ErrorCodeTopicAlreadyExists {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create topic %s: %w", spec.Name, err)
		}
		time.Sleep(clusterPollInterval)
	}
}

// deleteTopic removes a topic a measure made, so the next measure's
// write-back does not include it.
func (c *cluster) deleteTopic(ctx context.Context, topic string) error {
	actx, cancel := context.WithTimeout(ctx, clusterAdminTimeout)
	defer cancel()
	cl, err := c.dial(actx)
	if err != nil {
		return err
	}
	defer cl.Close()
	return client.NewAdmin(cl).DeleteTopics(actx, topic)
}

// leaderBytes is the sum of the segment bytes of topic's partitions on
// their leaders (DescribeLogDirs answers for the partitions a broker
// leads).
func (c *cluster) leaderBytes(ctx context.Context, topic string) (int64, error) {
	actx, cancel := context.WithTimeout(ctx, clusterAdminTimeout)
	defer cancel()
	cl, err := c.dial(actx)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)
	var total int64
	seen := map[int32]bool{}
	for _, addr := range c.liveAddrs() {
		info, err := admin.DescribeLogDirs(actx, addr, topic)
		if err != nil {
			return 0, fmt.Errorf("describe log dirs of %s: %w", addr, err)
		}
		for _, t := range info.Topics {
			for _, p := range t.Partitions {
				if p.Err != nil {
					return 0, fmt.Errorf("%s partition %d on %s: %w", topic, p.Partition, addr, p.Err)
				}
				if !seen[p.Partition] {
					seen[p.Partition] = true
					total += p.SizeBytes
				}
			}
		}
	}
	return total, nil
}
