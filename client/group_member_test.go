package client

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestMemberScripts runs the scripts in testdata/member/*.txt against the
// group member's state machine. Each command feeds one input and prints
// the actions the core asks for at that moment.
//
// Commands (defaults in brackets):
//
//	new [member=m1] [instance=] [topics=(a,b)] [regex=] [assignor=] [autocommit=0] [session=45000]
//	tick now=<ms>
//	found now=<ms>                        coordinator lookup answered
//	find-failed now=<ms> [fatal]          lookup failed (retriable unless fatal)
//	answer now=<ms> [error=CODE] [epoch=] [member=] [interval=] [assignment=(t-0,...)]
//	    [retriable]                       the code is worth a retry (REQUEST_TIMED_OUT)
//	hb-failed now=<ms>                    heartbeat got no answer
//	coordinator-lost now=<ms>             a commit found the coordinator moved
//	revoked now=<ms> parts=(t-0,...)      the application confirms a revocation
//	assigned now=<ms> parts=(t-0,...)     the application confirms an assignment
//	leave now=<ms>
//	subscribe now=<ms> [topics=(a,b)] [regex=]
//	state
//
// Actions print one a line: find-coordinator; heartbeat member= epoch=
// owned=[...] (the subscription too, as sub=, on joins and where it
// changed, though every heartbeat carries it); revoke [...] or lose [...]; assign [...]; commit;
// fail: ERR; left.
//
// After every command the harness checks the protocol's safety rule: a
// heartbeat reports owned every partition the application was handed and
// has not confirmed letting go of, so a partition is never reported gone
// before its OnRevoked ran.
func TestMemberScripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/member/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			h := &memberHarness{}
			datadriven.RunTest(t, path, h.run)
		})
	}
}

type memberHarness struct {
	m *memberCore
	// app is what the application was handed (assign actions) and has not
	// confirmed giving up.
	app tpSet
	// lastSub is the subscription of the last heartbeat printed.
	lastSub string
}

func (h *memberHarness) run(t *testing.T, d *datadriven.TestData) string {
	now := memberIntArg(t, d, "now", 0)
	if d.Cmd != "new" && h.m == nil {
		d.Fatalf(t, "no member: start the script with new")
	}
	switch d.Cmd {
	case "new":
		cfg := memberConfig{
			groupID:              "g",
			memberID:             memberStrArg(d, "member", "m1"),
			instanceID:           memberStrArg(d, "instance", ""),
			regex:                memberStrArg(d, "regex", ""),
			assignor:             memberStrArg(d, "assignor", ""),
			autoCommitIntervalMs: memberIntArg(t, d, "autocommit", 0),
			sessionTimeoutMs:     memberIntArg(t, d, "session", 0),
			rebalanceTimeoutMs:   -1,
			// 100 ms doubling to 1 s, as the client's defaults.
			backoffMs: func(attempt int) int64 { return min(int64(100)<<min(attempt-1, 10), 1000) },
		}
		if cfg.regex == "" {
			cfg.topics = memberListArg(d, "topics", []string{"a"})
		}
		h.m, h.app, h.lastSub = newMemberCore(cfg), tpSet{}, ""
	case "tick":
	case "found":
		h.m.coordinatorFound(now)
	case "find-failed":
		h.m.coordinatorFailed(errors.New("lookup refused"), !d.HasArg("fatal"), now)
	case "answer":
		a := memberAnswer{code: memberStrArg(d, "error", ""), memberID: memberStrArg(d, "member", ""),
			epoch: int32(memberIntArg(t, d, "epoch", 0)), intervalMs: memberIntArg(t, d, "interval", 0),
			retriable: d.HasArg("retriable")}
		for _, s := range memberListArg(d, "assignment", nil) {
			a.assignment = append(a.assignment, parseTP(t, d, s))
		}
		h.m.heartbeatAnswered(a, now)
	case "hb-failed":
		h.m.heartbeatFailed(now)
	case "coordinator-lost":
		h.m.coordinatorLost(now)
	case "revoked":
		parts := h.parts(t, d)
		for _, tp := range parts {
			delete(h.app, tp)
		}
		h.m.revoked(parts, now)
	case "assigned":
		h.m.assigned(h.parts(t, d))
	case "leave":
		h.m.leave(now)
	case "subscribe":
		h.m.subscribe(memberListArg(d, "topics", nil), memberStrArg(d, "regex", ""), now)
	case "state":
		m := h.m
		return fmt.Sprintf("state=%s member=%s epoch=%d held=%s assigning=%s revoking=%s target=%s\n",
			[]string{"joining", "stable", "leaving", "left", "failed"}[m.state], m.memberID, m.epoch,
			tpList(m.held.sorted()), tpList(m.assigning.sorted()), tpList(m.revoking.sorted()), tpList(m.target.sorted()))
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	return h.actions(t, d, now)
}

func (h *memberHarness) parts(t *testing.T, d *datadriven.TestData) []TopicPartition {
	var out []TopicPartition
	for _, s := range memberListArg(d, "parts", nil) {
		out = append(out, parseTP(t, d, s))
	}
	return out
}

// actions prints what the core asks for now and checks the safety rule.
func (h *memberHarness) actions(t *testing.T, d *datadriven.TestData, now int64) string {
	var b strings.Builder
	for _, a := range h.m.actions(now) {
		switch a.kind {
		case actFindCoordinator:
			b.WriteString("find-coordinator\n")
		case actHeartbeat:
			hb := a.hb
			fmt.Fprintf(&b, "heartbeat member=%s epoch=%d", hb.memberID, hb.epoch)
			if hb.instanceID != "" {
				fmt.Fprintf(&b, " instance=%s", hb.instanceID)
			}
			if hb.epoch >= 0 {
				fmt.Fprintf(&b, " owned=%s", tpList(hb.owned))
			}
			sub := "[" + strings.Join(hb.topics, " ") + "]"
			if hb.regex != "" {
				sub = "/" + hb.regex + "/"
			}
			if hb.epoch >= 0 && (hb.epoch == memberEpochJoin || sub != h.lastSub) {
				fmt.Fprintf(&b, " sub=%s", sub)
			}
			h.lastSub = sub
			b.WriteString("\n")
			if hb.epoch >= 0 {
				owned := setOfTP(hb.owned)
				for tp := range h.app {
					if !owned.has(tp) {
						d.Fatalf(t, "heartbeat reports %s-%d gone before the application confirmed letting go of it", tp.Topic, tp.Partition)
					}
				}
			}
		case actRevoke:
			verb := "revoke"
			if a.lost {
				verb = "lose"
			}
			fmt.Fprintf(&b, "%s %s\n", verb, tpList(a.parts))
		case actAssign:
			for _, tp := range a.parts {
				h.app[tp] = struct{}{}
			}
			fmt.Fprintf(&b, "assign %s\n", tpList(a.parts))
		case actCommit:
			b.WriteString("commit\n")
		case actFail:
			fmt.Fprintf(&b, "fail: %v\n", a.err)
		case actLeft:
			b.WriteString("left\n")
		}
	}
	if b.Len() == 0 {
		return "(nothing)\n"
	}
	return b.String()
}

func tpList(parts []TopicPartition) string {
	s := make([]string, len(parts))
	for i, tp := range parts {
		s[i] = tp.Topic + "-" + strconv.Itoa(int(tp.Partition))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func parseTP(t *testing.T, d *datadriven.TestData, s string) TopicPartition {
	i := strings.LastIndexByte(s, '-')
	p, err := strconv.Atoi(s[i+1:])
	if i <= 0 || err != nil {
		d.Fatalf(t, "bad partition %q (want topic-N)", s)
	}
	return TopicPartition{Topic: s[:i], Partition: int32(p)}
}

func memberStrArg(d *datadriven.TestData, key, def string) string {
	for _, a := range d.CmdArgs {
		if a.Key == key && len(a.Vals) > 0 {
			return a.Vals[0]
		}
	}
	return def
}

func memberIntArg(t *testing.T, d *datadriven.TestData, key string, def int64) int64 {
	s := memberStrArg(d, key, "")
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.Fatalf(t, "%s=%q: %v", key, s, err)
	}
	return n
}

func memberListArg(d *datadriven.TestData, key string, def []string) []string {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			var out []string
			for _, v := range a.Vals {
				if v != "" {
					out = append(out, v)
				}
			}
			return out
		}
	}
	return def
}
