package server

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/client/brokertest"
	"github.com/strata-db/strata/schema/fb"
)

// strataBin is the strata binary the multi-process tests run, built once
// by TestMain.
var strataBin string

func TestMain(m *testing.M) {
	dir, err := brokertest.TempDir()
	if err == nil {
		strataBin, err = brokertest.Build(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build strata:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Cluster test timing. The session is shorter than the default so that a
// fence comes within seconds; every wait is on a condition, bounded by
// clusterWait.
const (
	clusterHeartbeat = "300ms"
	clusterSession   = "3s"
	clusterWait      = 30 * time.Second
	clusterPoll      = 100 * time.Millisecond
)

// clusterNode is one `strata serve` process.
type clusterNode struct {
	id int32
	// program runs with args (strataBin when empty).
	program string
	args    []string
	admin   string // the metrics listener's address; "" when it has none
	cmd     *exec.Cmd
	addr    string // client address, from its ready line
	mu      sync.Mutex
	lines   []string // its stderr, for failure reports
	done    chan struct{}
}

type testCluster struct {
	t     *testing.T
	nodes map[int32]*clusterNode
}

// freePorts reserves n distinct loopback ports, all held until every one
// is taken, and frees them for the nodes to bind. Every port a node binds
// comes from here: a node listening on port 0 could be given another
// node's controller port while that one is free and not yet bound.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

func newTestCluster(t *testing.T, size int) *testCluster { return newTestClusterAdmin(t, size, false) }

// newTestClusterAdmin is newTestCluster with, when admin is set, each
// node's admin (metrics) listener on a port of its own.
func newTestClusterAdmin(t *testing.T, size int, admin bool) *testCluster {
	return newTestClusterArgs(t, size, admin)
}

// newTestClusterArgs is newTestClusterAdmin with more flags for every
// node, after the usual ones (a flag given twice takes the last value).
func newTestClusterArgs(t *testing.T, size int, admin bool, extra ...string) *testCluster {
	c := &testCluster{t: t, nodes: map[int32]*clusterNode{}}
	ports := freePorts(t, 3*size)
	var voters []string
	for id := int32(1); id <= int32(size); id++ {
		voters = append(voters, fmt.Sprintf("%d@%s", id, ports[id-1]))
	}
	base := t.TempDir()
	secretFile := filepath.Join(base, "cluster-secret")
	if err := os.WriteFile(secretFile, []byte("the cluster secret of this test cluster\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for id := int32(1); id <= int32(size); id++ {
		c.nodes[id] = &clusterNode{id: id, args: []string{"serve",
			"--node-id", fmt.Sprint(id), "--controller-voters", strings.Join(voters, ","),
			"--cluster-secret-file", secretFile,
			"--data-dir", filepath.Join(base, fmt.Sprint(id)), "--listen", ports[size+int(id)-1], "--admin", "",
			"--cores", "1", "--pin=false", "--log-level", "info",
			"--heartbeat-interval", clusterHeartbeat, "--session-timeout", clusterSession}}
		if admin {
			n := c.nodes[id]
			n.admin = ports[2*size+int(id)-1]
			n.args = append(n.args, "--admin", n.admin) // the last --admin is taken
		}
		c.nodes[id].args = append(c.nodes[id].args, extra...)
	}
	c.startAll()
	return c
}

// startAll starts every node (killed, and their stderr shown, when the
// test ends failed) and waits until each is ready. The voters wait for
// each other to form a quorum: all start before any is waited for.
func (c *testCluster) startAll() {
	t := c.t
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.kill()
		}
		if t.Failed() {
			for id, n := range c.nodes {
				n.mu.Lock()
				t.Logf("node %d stderr:\n%s", id, strings.Join(n.lines, "\n"))
				n.mu.Unlock()
			}
		}
	})
	for _, n := range c.nodes {
		c.start(n)
	}
	for _, n := range c.nodes {
		c.waitReady(n)
	}
}

// start runs the node's process and follows its stderr.
func (c *testCluster) start(n *clusterNode) {
	program := n.program
	if program == "" {
		program = strataBin
	}
	n.cmd = exec.Command(program, n.args...)
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	n.done = make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			line := s.Text()
			n.mu.Lock()
			n.lines = append(n.lines, line)
			n.mu.Unlock()
			if addr, ok := brokertest.ReadyAddr(line); ok {
				ready <- addr
			}
		}
		n.cmd.Wait()
		close(n.done)
	}()
	n.mu.Lock()
	n.addr = ""
	n.mu.Unlock()
	go func() {
		select {
		case a := <-ready:
			n.mu.Lock()
			n.addr = a
			n.mu.Unlock()
		case <-n.done:
		}
	}()
}

func (c *testCluster) waitReady(n *clusterNode) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		n.mu.Lock()
		addr := n.addr
		n.mu.Unlock()
		if addr != "" {
			return
		}
		select {
		case <-n.done:
			c.t.Fatalf("node %d exited before it was ready", n.id)
		case <-time.After(clusterPoll):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d not ready within %v", n.id, clusterWait)
		}
	}
}

func (n *clusterNode) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
	}
}

func (n *clusterNode) clientAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// metadata asks node n for every topic.
func (c *testCluster) metadata(n *clusterNode) *fb.MetadataResponseT {
	c.t.Helper()
	cl := newTestClient(c.t, n.clientAddr())
	env, _ := cl.call(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{}})
	cl.conn.Close()
	return env.Message.Value.(*fb.MetadataResponseT)
}

// waitMetadata polls node n's Metadata until cond holds.
func (c *testCluster) waitMetadata(n *clusterNode, what string, cond func(*fb.MetadataResponseT) bool) *fb.MetadataResponseT {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		md := c.metadata(n)
		if cond(md) {
			return md
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d: %s not seen within %v; last metadata: brokers %v topics %v", n.id, what, clusterWait,
				brokerIDs(md), describeTopics(md))
		}
		time.Sleep(clusterPoll)
	}
}

// describeQuorum asks node n for the quorum's state.
func (c *testCluster) describeQuorum(n *clusterNode) *fb.DescribeQuorumResponseT {
	c.t.Helper()
	cl := newTestClient(c.t, n.clientAddr())
	env, _ := cl.call(&fb.MessageT{Type: fb.MessageDescribeQuorumRequest, Value: &fb.DescribeQuorumRequestT{}})
	cl.conn.Close()
	return env.Message.Value.(*fb.DescribeQuorumResponseT)
}

// createTopic creates a topic through node n, retrying while no
// controller can take it (an election under way).
func (c *testCluster) createTopic(n *clusterNode, name string, partitions int32, rf int16) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		cl := newTestClient(c.t, n.clientAddr())
		env, _ := cl.call(&fb.MessageT{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{
			Topics: []*fb.CreatableTopicT{{Name: name, NumPartitions: partitions, ReplicationFactor: rf}}}})
		cl.conn.Close()
		r := env.Message.Value.(*fb.CreateTopicsResponseT).Topics[0]
		switch r.ErrorCode {
		case fb.ErrorCodeNone:
			return
		case fb.ErrorCodeTopicAlreadyExists:
			// An earlier try whose answer timed out did commit.
			return
		case fb.ErrorCodeRequestTimedOut, fb.ErrorCodeNotController:
		default:
			c.t.Fatalf("create topic %s on node %d: %v %s", name, n.id, r.ErrorCode, r.ErrorMessage)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("create topic %s on node %d: still %v after %v", name, n.id, r.ErrorCode, clusterWait)
		}
		time.Sleep(clusterPoll)
	}
}

// brokerIDs lists the live (unfenced) brokers of a Metadata answer.
func brokerIDs(md *fb.MetadataResponseT) []int32 {
	var ids []int32
	for _, b := range md.Brokers {
		if !b.Fenced {
			ids = append(ids, b.NodeId)
		}
	}
	slices.Sort(ids)
	return ids
}

func describeTopics(md *fb.MetadataResponseT) string {
	var b strings.Builder
	for _, t := range md.Topics {
		fmt.Fprintf(&b, "%s[", t.Name)
		for _, p := range t.Partitions {
			fmt.Fprintf(&b, " p%d leader %d epoch %d isr %v", p.Partition, p.LeaderId, p.LeaderEpoch, p.Isr)
		}
		b.WriteString(" ] ")
	}
	return b.String()
}

func topicOf(md *fb.MetadataResponseT, name string) *fb.TopicMetadataT {
	for _, t := range md.Topics {
		if t.Name == name && t.ErrorCode == fb.ErrorCodeNone {
			return t
		}
	}
	return nil
}

// TestClusterFailover runs three `strata serve` processes, each a voter
// and a broker: a replicated topic is spread over them; killing the
// controller leader elects another, metadata commands keep working, the
// killed broker is fenced and its leaderships move to ISR members with new
// leader epochs; restarted, it registers again and is live; a broker
// stopped gracefully hands its leaderships over before it exits.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	c := newTestCluster(t, 3)
	const topic, partitions = "events", 6
	c.createTopic(c.nodes[1], topic, partitions, 3)

	// Every broker's metadata converges: three live brokers, every
	// partition led, replicas on all three.
	var before *fb.MetadataResponseT
	for _, n := range c.nodes {
		before = c.waitMetadata(n, "three brokers and the topic", func(md *fb.MetadataResponseT) bool {
			tm := topicOf(md, topic)
			return slices.Equal(brokerIDs(md), []int32{1, 2, 3}) && tm != nil && len(tm.Partitions) == partitions &&
				md.ControllerId > 0
		})
	}
	tm := topicOf(before, topic)
	leaders := map[int32]int{}
	for _, p := range tm.Partitions {
		if len(p.Replicas) != 3 || len(p.Isr) != 3 || !slices.Contains(p.Isr, p.LeaderId) {
			t.Fatalf("partition %d: replicas %v isr %v leader %d", p.Partition, p.Replicas, p.Isr, p.LeaderId)
		}
		leaders[p.LeaderId]++
	}
	if len(leaders) != 3 {
		t.Fatalf("leaders %v: want every broker to lead some of %d partitions", leaders, partitions)
	}

	// Any broker describes the quorum as the leader sees it.
	for _, n := range c.nodes {
		q := c.describeQuorum(n)
		if q.ErrorCode != fb.ErrorCodeNone || q.LeaderId != before.ControllerId || len(q.Voters) != 3 || q.LogEnd == 0 {
			t.Fatalf("describe quorum on node %d: %+v (controller %d)", n.id, q, before.ControllerId)
		}
		for i, v := range q.Voters {
			if v.VoterId != int32(i+1) || v.LogEnd > q.LogEnd || v.Lag != q.LogEnd-v.LogEnd {
				t.Fatalf("describe quorum on node %d: voter %+v of log end %d", n.id, v, q.LogEnd)
			}
		}
	}

	// The leader of a partition serves it; the others do not.
	p0 := tm.Partitions[0]
	for id, n := range c.nodes {
		cl := newTestClient(t, n.clientAddr())
		env, _ := cl.call(produceMsg(fb.AcksAll, topic, 0, batch(t, 0, 5, 1000)))
		cl.conn.Close()
		code := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0].ErrorCode
		if (id == p0.LeaderId) != (code == fb.ErrorCodeNone) {
			t.Fatalf("produce to partition 0 (leader %d) on broker %d: %v", p0.LeaderId, id, code)
		}
	}

	// Kill the controller leader.
	killed := c.nodes[before.ControllerId]
	killed.kill()
	var survivors []*clusterNode
	for _, n := range c.nodes {
		if n != killed {
			survivors = append(survivors, n)
		}
	}
	s := survivors[0]

	// Another voter is elected, and metadata commands work through any
	// survivor.
	c.createTopic(survivors[1], "after-failover", 2, 2)
	c.waitMetadata(s, "a new controller and the new topic", func(md *fb.MetadataResponseT) bool {
		return md.ControllerId > 0 && md.ControllerId != killed.id && topicOf(md, "after-failover") != nil
	})

	// The new leader reports the killed voter behind or inactive, and the
	// others caught up.
	q := c.describeQuorum(s)
	if q.ErrorCode != fb.ErrorCodeNone || q.LeaderId == killed.id || len(q.Voters) != 3 {
		t.Fatalf("describe quorum after failover: %+v", q)
	}

	// The killed broker's session lapses: it is fenced (gone from the
	// brokers), and each partition it led has a new leader from its ISR
	// with a higher leader epoch.
	after := c.waitMetadata(s, "the killed broker fenced and its partitions moved", func(md *fb.MetadataResponseT) bool {
		if slices.Contains(brokerIDs(md), killed.id) {
			return false
		}
		tm := topicOf(md, topic)
		for _, p := range tm.Partitions {
			if p.LeaderId == killed.id || p.LeaderId < 0 || slices.Contains(p.Isr, killed.id) {
				return false
			}
		}
		return true
	})
	for i, p := range topicOf(after, topic).Partitions {
		old := tm.Partitions[i]
		if !slices.Contains(old.Isr, p.LeaderId) || !slices.Contains(p.Isr, p.LeaderId) {
			t.Fatalf("partition %d: leader %d not from the ISR %v (was %v)", i, p.LeaderId, p.Isr, old.Isr)
		}
		if old.LeaderId == killed.id && p.LeaderEpoch <= old.LeaderEpoch {
			t.Fatalf("partition %d moved from %d to %d without a new leader epoch (%d -> %d)", i, old.LeaderId, p.LeaderId, old.LeaderEpoch, p.LeaderEpoch)
		}
	}

	// Restarted, the broker registers a new incarnation and is live again
	// (StartBroker returns only once it is unfenced).
	c.start(killed)
	c.waitReady(killed)
	c.waitMetadata(s, "the restarted broker live", func(md *fb.MetadataResponseT) bool {
		return slices.Contains(brokerIDs(md), killed.id)
	})
	c.waitMetadata(killed, "the cluster from the restarted broker", func(md *fb.MetadataResponseT) bool {
		return slices.Equal(brokerIDs(md), []int32{1, 2, 3}) && topicOf(md, "after-failover") != nil
	})
	for _, v := range c.describeQuorum(killed).Voters {
		if v.VoterId == killed.id && !v.Active {
			t.Fatalf("restarted voter %d reported inactive: %+v", killed.id, v)
		}
	}

	// A graceful stop hands the broker's leaderships over first.
	md := c.metadata(s)
	var leader *clusterNode
	for _, p := range topicOf(md, topic).Partitions {
		if n := c.nodes[p.LeaderId]; n != s {
			leader = n
			break
		}
	}
	if leader == nil {
		t.Fatalf("node %d leads every partition: %s", s.id, describeTopics(md))
	}
	leader.cmd.Process.Signal(syscall.SIGTERM)
	<-leader.done
	if code := leader.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("node %d exited with %d after SIGTERM", leader.id, code)
	}
	leader.mu.Lock()
	for _, line := range leader.lines {
		if strings.Contains(line, "controlled shutdown failed") {
			t.Errorf("node %d: %s", leader.id, line)
		}
	}
	leader.mu.Unlock()
	c.waitMetadata(s, "the stopped broker's leaderships moved", func(md *fb.MetadataResponseT) bool {
		for _, p := range topicOf(md, topic).Partitions {
			if p.LeaderId == leader.id || p.LeaderId < 0 {
				return false
			}
		}
		return true
	})
}
