package replica

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// scriptSettleRoundsMax bounds `settle`: a script that needs more rounds
// than this to go quiet has a machine that never stops talking.
const scriptSettleRoundsMax = 200

// TestScripts runs the scripts in testdata/*.txt against the simulated
// cluster of cluster_test.go. Each command prints what happened (every
// message delivered, truncation, crash, controller change and produce
// answer); the invariants of the simulation are checked after every
// command. Commands (ids are replica ids 1..n):
//
//	init replicas=<n> min-insync=<m> [window=<offsets>] [inflight=<n>] [lag=<ms>] [cut=<batches>]
//	images [id=<n>]                     deliver the images published so far
//	produce [to=<leader>] [acks=all|1|0] [count=1]
//	deliver [from=<n>] [to=<n>] [kind=fetch|response|alter|result] [seq=<n>] [count=<n>] [keep]
//	                                    (keep: a copy stays in flight, a duplicate)
//	drop [from=<n>] [to=<n>] [kind=...] lose messages in flight
//	sync [id=<n>]  |  tick ms=<ms>
//	crash id=<n>  |  fence id=<n>  |  unfence id=<n>  |  restart id=<n>
//	settle                              images, messages and syncs until quiet
//	net  |  state
func TestScripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			h := &scriptHarness{}
			datadriven.RunTest(t, path, h.run)
		})
	}
}

type scriptHarness struct {
	c   *cluster
	out strings.Builder
}

func (h *scriptHarness) run(t *testing.T, d *datadriven.TestData) (out string) {
	h.out.Reset()
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(simFailure); ok {
				t.Fatalf("%s: %v\n%s", d.Pos, f.err, h.out.String())
			}
			panic(r)
		}
	}()
	if d.Cmd != "init" && h.c == nil {
		d.Fatalf(t, "init first")
	}
	switch d.Cmd {
	case "init":
		n, minInsync := 3, 2
		d.MaybeScanArgs(t, "replicas", &n)
		d.MaybeScanArgs(t, "min-insync", &minInsync)
		cfg := Config{FetchWindowOffsets: 16, FetchesInFlightMax: 4}
		d.MaybeScanArgs(t, "window", &cfg.FetchWindowOffsets)
		d.MaybeScanArgs(t, "inflight", &cfg.FetchesInFlightMax)
		d.MaybeScanArgs(t, "lag", &cfg.LagTimeMaxMs)
		h.c = newCluster(n, minInsync, cfg)
		d.MaybeScanArgs(t, "cut", &h.c.maxBatches)
		h.c.trace = h.tracef
		h.c.checkInvariants(d.Pos)
		return h.state()
	case "images":
		for _, r := range h.c.replicas {
			if id := h.intArg(t, d, "id", r.id); id == r.id {
				for len(r.images) > 0 {
					h.c.deliverImage(r)
				}
			}
		}
	case "produce":
		acks := AcksAll
		switch v := h.strArg(t, d, "acks", "all"); v {
		case "all":
		case "1":
			acks = AcksOne
		case "0":
			acks = AcksNone
		default:
			d.Fatalf(t, "acks=%s", v)
		}
		h.c.produce(h.intArg(t, d, "to", h.c.ctrl.leader), acks, int64(h.intArg(t, d, "count", 1)))
	case "deliver", "drop":
		h.deliver(t, d, d.Cmd == "drop")
	case "sync":
		for _, r := range h.c.replicas {
			if id := h.intArg(t, d, "id", r.id); id == r.id && r.up {
				h.tracef("sync %d: durable %d", r.id, len(r.log))
				h.c.sync(r)
			}
		}
	case "tick":
		h.c.tick(int64(h.intArg(t, d, "ms", simTickMs)))
		h.tracef("now %d ms", h.c.nowMs)
	case "crash":
		h.c.crash(h.c.replica(h.intArg(t, d, "id", 0)))
	case "fence":
		h.c.fence(h.intArg(t, d, "id", 0))
	case "unfence":
		h.c.unfence(h.intArg(t, d, "id", 0))
	case "restart":
		h.c.restart(h.c.replica(h.intArg(t, d, "id", 0)))
	case "settle":
		h.settle(t, d)
	case "net":
		for _, e := range h.c.net {
			h.tracef("%s", e)
		}
	case "state":
		return h.state()
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	for _, a := range h.c.answers {
		h.tracef("%s", a)
	}
	h.c.answers = nil
	h.c.checkInvariants(d.Pos)
	if h.out.Len() == 0 {
		return "ok\n"
	}
	return h.out.String()
}

func (h *scriptHarness) tracef(format string, args ...any) {
	fmt.Fprintf(&h.out, format+"\n", args...)
}

// deliver hands over (or loses) the messages in flight that match the
// filters, oldest first, at most count of them; messages they cause are
// left in flight. With keep, each delivered message also stays in flight.
func (h *scriptHarness) deliver(t *testing.T, d *datadriven.TestData, drop bool) {
	from, to := h.intArg(t, d, "from", -100), h.intArg(t, d, "to", -100)
	kind := h.strArg(t, d, "kind", "")
	seq := h.intArg(t, d, "seq", -1)
	count := int(h.intArg(t, d, "count", 1<<20))
	pending := slices.Clone(h.c.net)
	for _, e := range pending {
		if count == 0 {
			break
		}
		if (from != -100 && e.from != from) || (to != -100 && e.to != to) || (kind != "" && kindOf(e.msg) != kind) ||
			(seq >= 0 && seqOf(e.msg) != uint64(seq)) {
			continue
		}
		i := slices.IndexFunc(h.c.net, func(x envelope) bool {
			return x.from == e.from && x.to == e.to && fmt.Sprint(x.msg) == fmt.Sprint(e.msg)
		})
		if i < 0 {
			continue
		}
		count--
		if drop {
			h.tracef("lose %s", h.c.net[i])
			h.c.net = slices.Delete(h.c.net, i, i+1)
		} else {
			h.c.deliver(i, d.HasArg("keep"))
		}
	}
}

func seqOf(m any) uint64 {
	switch m := m.(type) {
	case FetchRequest:
		return m.Seq
	case FetchResponse:
		return m.Seq
	}
	return 1 << 63
}

func kindOf(m any) string {
	switch m.(type) {
	case FetchRequest:
		return "fetch"
	case FetchResponse:
		return "response"
	case AlterPartition:
		return "alter"
	case AlterPartitionResult:
		return "result"
	}
	return "?"
}

// settle delivers images and messages in order and syncs every replica
// until nothing is in flight; it prints only what it did in the end.
func (h *scriptHarness) settle(t *testing.T, d *datadriven.TestData) {
	quiet := h.c.trace
	var delivered int
	h.c.trace = func(format string, args ...any) {
		if strings.HasPrefix(format, "deliver") || strings.HasPrefix(format, "image") || strings.HasPrefix(format, "  send") {
			delivered++
			return
		}
		quiet(format, args...)
	}
	defer func() { h.c.trace = quiet }()
	for range scriptSettleRoundsMax {
		busy := len(h.c.net) > 0
		for _, r := range h.c.replicas {
			busy = busy || len(r.images) > 0
			for len(r.images) > 0 {
				h.c.deliverImage(r)
			}
			if r.up && r.durable < int64(len(r.log)) {
				busy = true
				h.c.sync(r)
			}
		}
		for len(h.c.net) > 0 {
			h.c.deliver(0, false)
		}
		h.c.checkInvariants(d.Pos)
		if !busy {
			h.tracef("settled after %d deliveries", delivered)
			return
		}
	}
	d.Fatalf(t, "not settled after %d rounds", scriptSettleRoundsMax)
}

func (h *scriptHarness) state() string {
	c := h.c
	var b strings.Builder
	fmt.Fprintf(&b, "controller: leader=%d leader-epoch=%d partition-epoch=%d isr=%v elr=%v\n",
		c.ctrl.leader, c.ctrl.leaderEpoch, c.ctrl.partitionEpoch, c.ctrl.isr, c.ctrl.elr)
	for _, r := range c.replicas {
		if !r.up {
			fmt.Fprintf(&b, "replica %d: down durable=%d %s\n", r.id, r.durable, formatLog(r.log))
			continue
		}
		st := r.p.Status()
		fmt.Fprintf(&b, "replica %d: %s epoch=%d isr=%v", r.id, st.Role, st.LeaderEpoch, st.ISR)
		if st.PendingISR != nil {
			fmt.Fprintf(&b, " pending-isr=%v", st.PendingISR)
		}
		fmt.Fprintf(&b, " hw=%d durable=%d end=%d %s\n", st.HighWatermark, st.DurableEnd, st.LogEnd, formatLog(r.log))
	}
	return b.String()
}

func (h *scriptHarness) intArg(t *testing.T, d *datadriven.TestData, key string, def int32) int32 {
	v := int(def)
	d.MaybeScanArgs(t, key, &v)
	return int32(v)
}

func (h *scriptHarness) strArg(t *testing.T, d *datadriven.TestData, key, def string) string {
	v := def
	d.MaybeScanArgs(t, key, &v)
	return v
}
