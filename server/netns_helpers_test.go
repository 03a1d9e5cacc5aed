package server

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A network lab for partition tests: each broker runs in a network
// namespace of its own with two links.
//
//	root namespace (the test)          hub namespace
//	  stnp-kN 10.78.N.1/30               br0 (bridge) ── hN
//	     │  route 10.77.0.N via 10.78.N.2                 │
//	     │                                                │
//	  client0 10.78.N.2/30 ── namespace stnp-bN ── cluster0 10.77.0.N/24
//
// The broker listens, advertises and votes on 10.77.0.N, the address of
// its cluster link: the other brokers reach it only across the bridge.
// The test reaches 10.77.0.N over the broker's own client link (the
// kernel accepts a packet for any local address on any link), so cutting
// a cluster link (the bridge's port hN down) partitions that broker from
// the other two while the test can still produce to it and read its
// metadata. A port down drops packets silently, as a real partition does:
// open connections hang until their timeouts rather than fail at once.
//
// Every name starts with netnsPrefix, so the leftovers of a crashed run
// are found and removed before the next one builds its own.
const (
	netnsPrefix = "stnp-"
	netnsHub    = netnsPrefix + "hub"
	// netnsBridge is the bridge in the hub namespace.
	netnsBridge = "br0"
	// netnsClientPort and netnsControllerPort are every broker's ports:
	// each namespace has its own stack, so they never collide.
	netnsClientPort     = 9092
	netnsControllerPort = 9093
)

// netnsLab is the namespaces and links of one test.
type netnsLab struct {
	size int
}

// netnsSkip skips the test where namespaces cannot be made: they need
// root and the ip tool.
func netnsSkip(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts three broker processes in network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (ip netns, veth, bridge)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip tool (iproute2) to create network namespaces")
	}
}

// newNetnsLab builds the hub, one namespace per broker and their links,
// and removes them all in t.Cleanup, failed or not.
func newNetnsLab(t *testing.T, size int) *netnsLab {
	t.Helper()
	l := &netnsLab{size: size}
	netnsRemoveLeftovers(t)
	t.Cleanup(func() { netnsRemoveLeftovers(t) })
	l.ip(t, "netns", "add", netnsHub)
	l.ip(t, "-n", netnsHub, "link", "set", "lo", "up")
	l.ip(t, "-n", netnsHub, "link", "add", netnsBridge, "type", "bridge")
	l.ip(t, "-n", netnsHub, "link", "set", netnsBridge, "up")
	for id := 1; id <= size; id++ {
		ns := l.ns(int32(id))
		l.ip(t, "netns", "add", ns)
		l.ip(t, "-n", ns, "link", "set", "lo", "up")
		// The cluster link: the broker's end in its namespace, the other
		// a port of the bridge.
		hub := l.hubPort(int32(id))
		l.ip(t, "-n", netnsHub, "link", "add", hub, "type", "veth", "peer", "name", "cluster0", "netns", ns)
		l.ip(t, "-n", netnsHub, "link", "set", hub, "master", netnsBridge, "up")
		l.ip(t, "-n", ns, "addr", "add", l.clusterIP(int32(id))+"/24", "dev", "cluster0")
		l.ip(t, "-n", ns, "link", "set", "cluster0", "up")
		// The client link: a point-to-point pair to the root namespace,
		// which routes the broker's cluster address over it.
		root := netnsPrefix + fmt.Sprintf("k%d", id)
		l.ip(t, "link", "add", root, "type", "veth", "peer", "name", "client0", "netns", ns)
		l.ip(t, "addr", "add", fmt.Sprintf("10.78.%d.1/30", id), "dev", root)
		l.ip(t, "link", "set", root, "up")
		l.ip(t, "-n", ns, "addr", "add", fmt.Sprintf("10.78.%d.2/30", id), "dev", "client0")
		l.ip(t, "-n", ns, "link", "set", "client0", "up")
		l.ip(t, "route", "add", l.clusterIP(int32(id))+"/32", "via", fmt.Sprintf("10.78.%d.2", id), "dev", root)
	}
	return l
}

func (l *netnsLab) ns(id int32) string        { return fmt.Sprintf("%sb%d", netnsPrefix, id) }
func (l *netnsLab) hubPort(id int32) string   { return fmt.Sprintf("h%d", id) }
func (l *netnsLab) clusterIP(id int32) string { return fmt.Sprintf("10.77.0.%d", id) }

// cut takes broker id's port of the bridge down: from then on nothing
// passes between it and the other brokers, in either direction. A test
// that fails before it heals leaves the port up for the next.
func (l *netnsLab) cut(t *testing.T, id int32) {
	t.Helper()
	l.ip(t, "-n", netnsHub, "link", "set", l.hubPort(id), "down")
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "-n", netnsHub, "link", "set", l.hubPort(id), "up").CombinedOutput(); err != nil {
			t.Errorf("heal %s: %v: %s", l.hubPort(id), err, out)
		}
	})
}

// heal brings broker id's port of the bridge up again.
func (l *netnsLab) heal(t *testing.T, id int32) {
	t.Helper()
	l.ip(t, "-n", netnsHub, "link", "set", l.hubPort(id), "up")
}

func (l *netnsLab) ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// netnsRemoveLeftovers deletes every namespace and root-namespace link
// whose name starts with netnsPrefix. Deleting a namespace deletes the
// veth ends in it, and with them their peers.
func netnsRemoveLeftovers(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(strings.TrimSpace(line), " "); strings.HasPrefix(name, netnsPrefix) {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link show: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		// "7: stnp-k1@if2: <...": the name, up to an @peer.
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(fields[1], ":"), "@")
		if strings.HasPrefix(name, netnsPrefix) {
			// A veth's peer goes with it: one listed later may be gone.
			out, err := exec.Command("ip", "link", "del", name).CombinedOutput()
			if err != nil && exec.Command("ip", "link", "show", "dev", name).Run() == nil {
				t.Errorf("ip link del %s: %v: %s", name, err, out)
			}
		}
	}
}

// newNetnsCluster is newTestCluster with each node in its namespace of
// the lab, listening and voting on its cluster address.
func newNetnsCluster(t *testing.T, l *netnsLab) *testCluster {
	c := &testCluster{t: t, nodes: map[int32]*clusterNode{}}
	var voters []string
	for id := int32(1); id <= int32(l.size); id++ {
		voters = append(voters, fmt.Sprintf("%d@%s:%d", id, l.clusterIP(id), netnsControllerPort))
	}
	base := t.TempDir()
	secretFile := filepath.Join(base, "cluster-secret")
	if err := os.WriteFile(secretFile, []byte("the cluster secret of this test cluster\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for id := int32(1); id <= int32(l.size); id++ {
		// `ip netns exec` execs the broker in place: the process the
		// test holds is the broker's, so kill reaches it.
		c.nodes[id] = &clusterNode{id: id, program: "ip", args: []string{"netns", "exec", l.ns(id), strataBin, "serve",
			"--node-id", fmt.Sprint(id), "--controller-voters", strings.Join(voters, ","),
			"--cluster-secret-file", secretFile,
			"--data-dir", filepath.Join(base, fmt.Sprint(id)),
			"--listen", fmt.Sprintf("%s:%d", l.clusterIP(id), netnsClientPort), "--admin", "",
			"--cores", "1", "--pin=false", "--log-level", "info",
			"--heartbeat-interval", clusterHeartbeat, "--session-timeout", clusterSession}}
	}
	c.startAll()
	return c
}
