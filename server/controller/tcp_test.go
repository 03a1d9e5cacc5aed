package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-db/strata/server/controller/transport"
)

// testSecret is the cluster secret of the test quorums.
var testSecret = []byte("the cluster secret of the tests!")

// tcpCluster is a quorum over loopback TCP on real files with real
// tickers.
type tcpCluster struct {
	tb     testing.TB
	dir    string
	tickMs int64
	ids    []uint64
	addrs  map[uint64]string
	nodes  map[uint64]*Node
}

func newTCPCluster(tb testing.TB, voters int, tickMs int64) *tcpCluster {
	c := &tcpCluster{tb: tb, dir: tb.TempDir(), tickMs: tickMs, addrs: map[uint64]string{}, nodes: map[uint64]*Node{}}
	lns := map[uint64]net.Listener{}
	for i := 1; i <= voters; i++ {
		id := uint64(i)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		c.ids = append(c.ids, id)
		c.addrs[id] = ln.Addr().String()
		lns[id] = ln
	}
	for _, id := range c.ids {
		c.start(id, lns[id])
	}
	return c
}

func (c *tcpCluster) start(id uint64, ln net.Listener) {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", c.addrs[id]); err != nil {
			c.tb.Fatal(err)
		}
	}
	tr, err := transport.NewTCP(transport.TCPConfig{ID: id, Listener: ln, Peers: c.addrs, Secret: testSecret})
	if err != nil {
		c.tb.Fatal(err)
	}
	n, err := New(Config{ID: id, Voters: c.ids, Dir: filepath.Join(c.dir, fmt.Sprint(id)), Transport: tr, TickMs: c.tickMs})
	if err != nil {
		c.tb.Fatal(err)
	}
	if err := n.Start(); err != nil {
		c.tb.Fatal(err)
	}
	c.nodes[id] = n
}

func (c *tcpCluster) stop(id uint64) {
	if n := c.nodes[id]; n != nil {
		if err := n.Stop(); err != nil {
			c.tb.Errorf("stop voter %d: %v", id, err)
		}
		delete(c.nodes, id)
	}
}

func (c *tcpCluster) stopAll() {
	for _, id := range c.ids {
		c.stop(id)
	}
}

// waitLeader waits until a running voter leads, checking every tick.
func (c *tcpCluster) waitLeader() *Node {
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if n.Leader() == n.ID() {
				return n
			}
		}
		<-time.After(time.Duration(c.tickMs) * time.Millisecond)
	}
	c.tb.Fatal("no leader elected")
	return nil
}

// propose sends cmd to whichever voter leads until one commits it.
func (c *tcpCluster) propose(ctx context.Context, cmd Command) (Result, error) {
	for {
		l := c.waitLeader()
		res, err := l.Propose(ctx, cmd)
		var nl *NotLeaderError
		if errors.As(err, &nl) && ctx.Err() == nil {
			continue
		}
		return res, err
	}
}

func TestTCPClusterReplicatesAndReportsLag(t *testing.T) {
	c := newTCPCluster(t, 3, 10)
	defer c.stopAll()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	l := c.waitLeader()
	registerBrokers(t, l, 3)
	for i := range 20 {
		if _, err := createTopic(ctx, l, i, 3); err != nil {
			t.Fatalf("create topic %d: %v", i, err)
		}
	}
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Voters) != 3 {
		t.Fatalf("leader status lists %d voters, want 3", len(st.Voters))
	}
	// Every follower catches up and serves a linearizable read with the
	// same topics.
	for _, n := range c.nodes {
		im, err := n.Read(ctx)
		if err != nil {
			t.Fatalf("read on voter %d: %v", n.ID(), err)
		}
		if len(im.Topics()) != 20 {
			t.Fatalf("voter %d sees %d topics, want 20", n.ID(), len(im.Topics()))
		}
	}
	// A follower answers commands with the leader's id.
	for _, n := range c.nodes {
		if n.ID() == l.ID() {
			continue
		}
		_, err := n.Propose(ctx, DeleteTopic("topic-1"))
		var nl *NotLeaderError
		if !errors.As(err, &nl) || nl.Leader != l.ID() {
			t.Fatalf("follower %d: %v, want NotLeaderError{%d}", n.ID(), err, l.ID())
		}
	}
	// The leader fails over: stop it and the others elect a new one that
	// has every committed topic.
	c.stop(l.ID())
	if _, err := c.propose(ctx, DeleteTopic("topic-1")); err != nil {
		t.Fatalf("delete after failover: %v", err)
	}
	l2 := c.waitLeader()
	im, err := l2.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := im.TopicByName("topic-1"); ok || len(im.Topics()) != 19 {
		t.Fatalf("after failover: %d topics, topic-1 present %v", len(im.Topics()), ok)
	}
}
