package brokertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Cluster timings: short, so that a stopped broker's leaderships move and
// a killed one is fenced within seconds.
const (
	clusterHeartbeat = "300ms"
	clusterSession   = "3s"
)

// Cluster is a Strata cluster of broker processes, each also a controller
// voter, on loopback.
type Cluster struct {
	// Nodes by node id (1..size); Nodes[0] is nil.
	Nodes []*Broker
}

// StartCluster runs size brokers that are also the controller's voters,
// with a cluster secret, and returns once every one is ready (has joined
// the cluster). Every port, client and controller, is held by the harness
// for the test's life (see portHold), so no other test's socket takes one
// while a node restarts. The nodes are stopped when the test ends.
func StartCluster(t testing.TB, bin string, size int) *Cluster {
	t.Helper()
	var holds []*portHold
	t.Cleanup(func() {
		for _, h := range holds {
			h.release()
		}
	})
	hold := func() string {
		h, err := holdPort("127.0.0.1")
		if err != nil {
			t.Fatalf("start cluster: %v", err)
		}
		holds = append(holds, h)
		return h.addr
	}
	voters := make([]string, size)
	for i := range voters {
		voters[i] = fmt.Sprintf("%d@%s", i+1, hold())
	}
	base := t.TempDir()
	secret := filepath.Join(base, "cluster-secret")
	if err := os.WriteFile(secret, []byte("the secret of a brokertest cluster\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Nodes: make([]*Broker, size+1)}
	for id := 1; id <= size; id++ {
		c.Nodes[id] = &Broker{Bin: bin, DataDir: filepath.Join(base, fmt.Sprint(id)), Addr: hold(), args: []string{
			"--node-id", fmt.Sprint(id), "--controller-voters", strings.Join(voters, ","),
			"--cluster-secret-file", secret, "--cores", "1",
			"--heartbeat-interval", clusterHeartbeat, "--session-timeout", clusterSession}}
	}
	t.Cleanup(func() {
		for _, n := range c.Nodes[1:] {
			n.Kill()
		}
	})
	// The voters wait for each other to form a quorum: all start at once.
	errs := make(chan error, size)
	for _, n := range c.Nodes[1:] {
		go func() { errs <- n.start(n.Addr) }()
	}
	var failed []string
	for range size {
		if err := <-errs; err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		t.Fatalf("start cluster: %s", strings.Join(failed, "\n"))
	}
	return c
}

// Addrs are the nodes' client addresses, in node id order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, 0, len(c.Nodes)-1)
	for _, n := range c.Nodes[1:] {
		addrs = append(addrs, n.Addr)
	}
	return addrs
}
