package group

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScripts runs the scripts in testdata/*.txt against one coordinator.
// After every command the harness replays the whole log written so far
// onto a fresh coordinator and checks that it describes the same state,
// so every script also tests that the records carry all of it.
//
// Commands (defaults in brackets):
//
//	init [session=45000] [interval=5000] [rebalance=300000] [retention=7d] [max-size=1000] [assignor=uniform]
//	topics now=<ms>                      (input: one "name partitions" a line)
//	hb g=<group> m=<member> now=<ms> [epoch=last|join|leave|static-leave|<n>]
//	   [instance=] [topics=(a,b)] [regex=] [assignor=] [owned=(t-0,...)|view]
//	tick now=<ms>
//	commit g= [m=] [epoch=last] now=<ms> offsets=(t-0=5,...)
//	fetch g= [m=] [epoch=last]
//	failover now=<ms>                    (a new coordinator replays the log)
//	describe
//
// hb's owned defaults to what the member last received (its view), and
// its epoch to the last one it received.
func TestScripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			h := newHarness(Config{})
			datadriven.RunTest(t, path, h.run)
		})
	}
}

type harness struct {
	cfg    Config
	c      *Coordinator
	log    []Record
	topics map[string]int32
	views  map[string][]TopicPartition
	epochs map[string]int32
	// instances is each member's instance id, so scripts name it once.
	instances map[string]string
}

func newHarness(cfg Config) *harness {
	return &harness{cfg: cfg, c: New(cfg), topics: map[string]int32{},
		views: map[string][]TopicPartition{}, epochs: map[string]int32{}, instances: map[string]string{}}
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	var recs []Record
	var out string
	now := int64Arg(t, d, "now", 0)
	switch d.Cmd {
	case "init":
		cfg := Config{
			SessionTimeoutMs:    int64Arg(t, d, "session", 0),
			HeartbeatIntervalMs: int64Arg(t, d, "interval", 0),
			RebalanceTimeoutMs:  int64Arg(t, d, "rebalance", 0),
			OffsetsRetentionMs:  int64Arg(t, d, "retention", 0),
			MaxGroupSize:        int(int64Arg(t, d, "max-size", 0)),
			Assignor:            strArg(d, "assignor", ""),
		}
		*h = *newHarness(cfg)
		return "ok"
	case "topics":
		h.topics = map[string]int32{}
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				n, err := strconv.Atoi(f[1])
				if err != nil {
					d.Fatalf(t, "bad count %q", f[1])
				}
				h.topics[f[0]] = int32(n)
			}
		}
		recs = h.c.SetTopics(h.topics, now)
	case "hb":
		out, recs = h.heartbeat(t, d, now)
	case "tick":
		recs = h.c.Tick(now)
	case "commit":
		out, recs = h.commit(t, d, now)
	case "fetch":
		req := FetchRequest{GroupID: strArg(d, "g", ""), MemberID: strArg(d, "m", "")}
		req.MemberEpoch = int32(int64Arg(t, d, "epoch", int64(h.epochs[req.MemberID])))
		got, code := h.c.FetchOffsets(req)
		if code != ErrNone {
			return code.String()
		}
		var b strings.Builder
		for _, f := range got {
			fmt.Fprintf(&b, "%s=%d\n", f.TopicPartition, f.Offset)
		}
		if b.Len() == 0 {
			return "no offsets"
		}
		return b.String()
	case "failover":
		c, err := Replay(h.cfg, h.log, now)
		if err != nil {
			d.Fatalf(t, "replay: %v", err)
		}
		h.c = c
		recs = h.c.SetTopics(h.topics, now)
		out = "replayed " + strconv.Itoa(len(h.log)) + " records\n"
	case "describe":
		return h.c.Describe()
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	h.log = append(h.log, recs...)
	h.checkReplay(t, d, now)
	var b strings.Builder
	b.WriteString(out)
	for _, r := range recs {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "no records"
	}
	return b.String()
}

func (h *harness) checkReplay(t *testing.T, d *datadriven.TestData, now int64) {
	c, err := Replay(h.cfg, h.log, now)
	if err != nil {
		d.Fatalf(t, "replay: %v", err)
	}
	if got, want := c.Describe(), h.c.Describe(); got != want {
		d.Fatalf(t, "replayed state differs:\n%s\nlive:\n%s", got, want)
	}
	c, err = replayCompacted(h.cfg, h.log, now)
	if err != nil {
		d.Fatalf(t, "replay of the compacted log: %v", err)
	}
	if got, want := c.Describe(), h.c.Describe(); got != want {
		d.Fatalf(t, "state replayed from the compacted log differs:\n%s\nlive:\n%s", got, want)
	}
}

func (h *harness) heartbeat(t *testing.T, d *datadriven.TestData, now int64) (string, []Record) {
	req := HeartbeatRequest{GroupID: strArg(d, "g", ""), MemberID: strArg(d, "m", ""),
		ServerAssignor: strArg(d, "assignor", "")}
	req.InstanceID = strArg(d, "instance", h.instances[req.MemberID])
	h.instances[req.MemberID] = req.InstanceID
	switch e := strArg(d, "epoch", "last"); e {
	case "last":
		req.MemberEpoch = h.epochs[req.MemberID]
	case "join":
		req.MemberEpoch = EpochJoin
	case "leave":
		req.MemberEpoch = EpochLeave
	case "static-leave":
		req.MemberEpoch = EpochStaticLeave
	default:
		n, err := strconv.Atoi(e)
		if err != nil {
			d.Fatalf(t, "bad epoch %q", e)
		}
		req.MemberEpoch = int32(n)
	}
	if arg, ok := d.Arg("topics"); ok {
		req.Subscription = &Subscription{Topics: arg.Vals}
	}
	if re, ok := d.Arg("regex"); ok {
		req.Subscription = &Subscription{Regex: re.SingleVal(t)}
	}
	if arg, ok := d.Arg("owned"); ok && !(len(arg.Vals) == 1 && arg.Vals[0] == "view") {
		req.Owned = parseParts(t, d, arg.Vals)
	} else if req.MemberEpoch > 0 {
		req.Owned = h.views[req.MemberID]
	}
	resp, recs := h.c.Heartbeat(req, now)
	if resp.Error != ErrNone {
		return resp.Error.String() + "\n", recs
	}
	h.epochs[resp.MemberID] = resp.MemberEpoch
	h.views[resp.MemberID] = resp.Assignment
	if resp.MemberEpoch < 0 {
		delete(h.views, resp.MemberID)
	}
	return fmt.Sprintf("member=%s epoch=%d interval=%d assignment=%s\n",
		resp.MemberID, resp.MemberEpoch, resp.HeartbeatIntervalMs, fmtParts(resp.Assignment)), recs
}

func (h *harness) commit(t *testing.T, d *datadriven.TestData, now int64) (string, []Record) {
	req := CommitRequest{GroupID: strArg(d, "g", ""), MemberID: strArg(d, "m", "")}
	def := int64(-1)
	if req.MemberID != "" {
		def = int64(h.epochs[req.MemberID])
	}
	req.MemberEpoch = int32(int64Arg(t, d, "epoch", def))
	arg, _ := d.Arg("offsets")
	for _, v := range arg.Vals {
		tp, off, ok := strings.Cut(v, "=")
		n, err := strconv.ParseInt(off, 10, 64)
		if !ok || err != nil {
			d.Fatalf(t, "bad offset %q", v)
		}
		req.Offsets = append(req.Offsets, CommitOffset{TopicPartition: parseParts(t, d, []string{tp})[0], Offset: n})
	}
	resp, recs := h.c.CommitOffsets(req, now)
	if resp.Error != ErrNone {
		return resp.Error.String() + "\n", recs
	}
	var b strings.Builder
	for i, code := range resp.Partitions {
		fmt.Fprintf(&b, "%s %s\n", req.Offsets[i].TopicPartition, code)
	}
	return b.String(), recs
}

func parseParts(t *testing.T, d *datadriven.TestData, vals []string) []TopicPartition {
	var out []TopicPartition
	for _, v := range vals {
		i := strings.LastIndexByte(v, '-')
		n, err := strconv.Atoi(v[i+1:])
		if i <= 0 || err != nil {
			d.Fatalf(t, "bad partition %q", v)
		}
		out = append(out, TopicPartition{v[:i], int32(n)})
	}
	return out
}

func int64Arg(t *testing.T, d *datadriven.TestData, key string, def int64) int64 {
	if !d.HasArg(key) {
		return def
	}
	var v int64
	d.ScanArgs(t, key, &v)
	return v
}

func strArg(d *datadriven.TestData, key, def string) string {
	if arg, ok := d.Arg(key); ok && len(arg.Vals) > 0 {
		return arg.Vals[0]
	}
	return def
}
