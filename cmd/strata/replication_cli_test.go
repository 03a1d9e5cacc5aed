package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/client/brokertest"
)

// describeWait bounds the wait for the cluster to show a change (a
// follower fenced, a leadership moved); describePoll is the pause between
// looks.
const (
	describeWait = 30 * time.Second
	describePoll = 100 * time.Millisecond
)

// describeRow is one partition row of topic describe, by column.
type describeRow struct {
	topic, partition, leader, epoch, replicas, isr, elr, lastKnownELR, offline string
}

// describeRows runs topic describe with args and returns its partition
// rows, failing on a header or row of the wrong shape.
func describeRows(t *testing.T, brokers string, args ...string) []describeRow {
	t.Helper()
	out, errOut, code := run(t, brokers, "", append([]string{"topic", "describe"}, args...)...)
	if code != 0 {
		t.Fatalf("strata topic describe %v: exit %d: %s", args, code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	const header = "TOPIC PARTITION LEADER EPOCH REPLICAS ISR ELR LAST KNOWN ELR OFFLINE LOG START LOG END SIZE BYTES/S RECORDS/S HOT"
	if got := strings.Join(strings.Fields(lines[0]), " "); got != header {
		t.Fatalf("topic describe header %q", lines[0])
	}
	var rows []describeRow
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 15 {
			t.Fatalf("topic describe row %q", l)
		}
		rows = append(rows, describeRow{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]})
	}
	return rows
}

// waitRows runs topic describe with args until ok holds of its rows.
func waitRows(t *testing.T, brokers, what string, ok func([]describeRow) bool, args ...string) []describeRow {
	t.Helper()
	deadline := time.Now().Add(describeWait)
	for {
		rows := describeRows(t, brokers, args...)
		if ok(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic describe %v: %s not seen within %v; last rows %+v", args, what, describeWait, rows)
		}
		time.Sleep(describePoll)
	}
}

// TestDescribeShowsReplication runs three brokers: a topic created with
// --replication-factor 3 is described with every broker in every ISR, and
// nothing is under-replicated or unavailable. Once the broker holding a
// partition of a topic of replication factor 1 is killed, topic describe
// shows it offline in every replica set, the ISRs without it, and that
// partition with no leader, out of its ISR and in its ELR;
// --under-replicated-partitions and --unavailable-partitions pick those
// partitions out, and cluster describe lists them.
func TestDescribeShowsReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	c := brokertest.StartCluster(t, brokertestBin(), 3)
	all := strings.Join(c.Addrs(), ",")
	mustRun := func(brokers string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, brokers, "", args...)
		if code != 0 {
			t.Fatalf("strata %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	mustRun(all, "topic", "create", "replicated", "--partitions", "2", "--replication-factor", "3")
	mustRun(all, "topic", "create", "solo", "--partitions", "3", "--replication-factor", "1")
	want := "" +
		"TOPIC       PARTITIONS  REPLICATION\n" +
		"replicated  2           3\n" +
		"solo        3           1\n"
	if out := mustRun(all, "topic", "list"); out != want {
		t.Fatalf("topic list:\n%s\nwant\n%s", out, want)
	}
	waitRows(t, all, "both partitions led with all three in sync", func(rows []describeRow) bool {
		for _, r := range rows {
			if r.leader == "none" || len(strings.Split(r.replicas, ",")) != 3 ||
				len(strings.Split(r.isr, ",")) != 3 || r.elr != "-" || r.lastKnownELR != "-" || r.offline != "-" {
				return false
			}
		}
		return len(rows) == 2
	}, "replicated")
	solo := waitRows(t, all, "every partition led", func(rows []describeRow) bool {
		return len(rows) == 3 && !slices.ContainsFunc(rows, func(r describeRow) bool { return r.leader == "none" })
	}, "solo")
	if rows := describeRows(t, all, "--under-replicated-partitions", "--unavailable-partitions"); len(rows) != 0 {
		t.Fatalf("a healthy cluster has partitions to show: %+v", rows)
	}
	out := mustRun(all, "cluster", "describe")
	if !strings.Contains(out, "\nunder-replicated partitions: 0\n\nunavailable partitions: 0\n") {
		t.Fatalf("cluster describe of a healthy cluster:\n%s", out)
	}

	// Kill the broker that holds solo's partition 0.
	victim := solo[0].replicas
	var live []string
	for id := 1; id < len(c.Nodes); id++ {
		if fmt.Sprint(id) == victim {
			c.Nodes[id].Kill()
		} else {
			live = append(live, c.Nodes[id].Addr)
		}
	}
	alive := strings.Join(live, ",")
	without := func(set string) bool { return set != "-" && !slices.Contains(strings.Split(set, ","), victim) }
	waitRows(t, alive, "the killed broker offline and out of every ISR", func(rows []describeRow) bool {
		for _, r := range rows {
			if r.offline != victim || !without(r.isr) || len(strings.Split(r.isr, ",")) != 2 || r.leader == "none" ||
				r.leader == victim {
				return false
			}
		}
		return len(rows) == 2
	}, "replicated")
	rows := waitRows(t, alive, "solo's partition 0 without a leader", func(rows []describeRow) bool {
		return len(rows) == 3 && rows[0].leader == "none" && rows[0].offline == victim &&
			rows[1].leader != "none" && rows[2].leader != "none"
	}, "solo")
	// Its one replica left the ISR but stays eligible: nothing committed
	// was lost with it.
	if rows[0].isr != "-" || rows[0].elr != victim || rows[1].offline != "-" || rows[2].offline != "-" {
		t.Fatalf("solo after the kill: %+v", rows)
	}

	// As in Kafka, a partition whose ISR is smaller than its replicas is
	// under-replicated whether or not it has a leader: solo's partition 0
	// is both.
	under := describeRows(t, alive, "--under-replicated-partitions")
	if len(under) != 3 || under[0].topic != "replicated" || under[1].topic != "replicated" ||
		under[2].topic != "solo" || under[2].partition != "0" {
		t.Fatalf("--under-replicated-partitions: %+v", under)
	}
	unavailable := describeRows(t, alive, "--unavailable-partitions")
	if len(unavailable) != 1 || unavailable[0].topic != "solo" || unavailable[0].partition != "0" {
		t.Fatalf("--unavailable-partitions: %+v", unavailable)
	}
	if both := describeRows(t, alive, "--under-replicated-partitions", "--unavailable-partitions"); len(both) != 3 {
		t.Fatalf("both filters: %+v", both)
	}
	if one := describeRows(t, alive, "solo", "--under-replicated-partitions"); len(one) != 1 || one[0].partition != "0" {
		t.Fatalf("solo's under-replicated partitions: %+v", one)
	}

	out = mustRun(alive, "cluster", "describe")
	sections := func(title string) []string {
		t.Helper()
		i := strings.Index(out, "\n"+title+": ")
		if i < 0 {
			t.Fatalf("cluster describe has no %q:\n%s", title, out)
		}
		block := strings.SplitN(out[i+1:], "\n\n", 2)[0]
		return strings.Split(block, "\n")
	}
	ur := sections("under-replicated partitions")
	if ur[0] != "under-replicated partitions: 3" || len(ur) != 5 ||
		strings.Join(strings.Fields(ur[1]), " ") != "TOPIC PARTITION LEADER EPOCH REPLICAS ISR ELR OFFLINE" {
		t.Fatalf("cluster describe, under-replicated:\n%s", strings.Join(ur, "\n"))
	}
	for _, l := range ur[2:] {
		if f := strings.Fields(l); (f[0] != "replicated" && f[0] != "solo") || f[7] != victim {
			t.Fatalf("cluster describe, under-replicated row %q", l)
		}
	}
	ua := sections("unavailable partitions")
	if ua[0] != "unavailable partitions: 1" || len(ua) != 3 {
		t.Fatalf("cluster describe, unavailable:\n%s", strings.Join(ua, "\n"))
	}
	if f := strings.Fields(ua[2]); f[0] != "solo" || f[1] != "0" || f[2] != "none" || f[7] != victim {
		t.Fatalf("cluster describe, unavailable row %q", ua[2])
	}
}
