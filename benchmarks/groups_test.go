package main

import (
	"os"
	"strings"
	"testing"
)

// TestQuickGroups runs the consumer-group section alone at --quick scale:
// three real broker processes, a scale-out from 3 to 6 consumers and back
// under a steady producer, and the commit rate of one coordinator. It
// checks that the figures are consistent with each other, not what they
// are.
func TestQuickGroups(t *testing.T) {
	res, mdPath := runQuick(t, "groups smoke test", "--suites=false", "--peer=false", "--replication=false", "--compression-rounds", "0")
	g := res.Groups
	if g == nil || len(res.Strata) != 0 || res.Replication != nil {
		t.Fatalf("groups %v, suites %d, replication %v: want the groups section alone", g, len(res.Strata), res.Replication)
	}
	if len(g.Rounds) != quickGroupsRounds || g.LoadBefore == "" || g.LoadAfter == "" {
		t.Fatalf("rounds %d, load %q %q", len(g.Rounds), g.LoadBefore, g.LoadAfter)
	}
	for i, r := range g.Rounds {
		// 3 -> 6: each of the three keeps 2 of its 4 and gives 2 up; 6 ->
		// 3: each stayer keeps its 2 and takes 2 of the leavers'.
		for _, ch := range []groupsChange{r.Out, r.In} {
			if len(ch.Kept) != groupsPartitions/2 || len(ch.MovedPauseMs) != groupsPartitions/2 || ch.SettleMs <= 0 {
				t.Errorf("round %d: %d kept, %d moved, settled in %v ms", i, len(ch.Kept), len(ch.MovedPauseMs), ch.SettleMs)
			}
			for _, k := range ch.Kept {
				if k.GapMs <= 0 || k.SteadyGapMs <= 0 || k.PauseMs < 0 {
					t.Errorf("round %d: kept %+v", i, k)
				}
			}
			for _, p := range ch.MovedPauseMs {
				if p <= 0 {
					t.Errorf("round %d: moved pause %v", i, p)
				}
			}
		}
	}
	if len(g.Commits) != len(groupsCommitters) {
		t.Fatalf("commit runs %+v", g.Commits)
	}
	for i, c := range g.Commits {
		if c.Committers != groupsCommitters[i] || len(c.PerSec) != quickGroupsRounds || c.MedianPerSec <= 0 || c.P50Ms <= 0 || c.P50Ms > c.P99Ms {
			t.Errorf("commit run %+v", c)
		}
	}
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "## Consumer groups") || !strings.Contains(string(md), "Offset commits to one coordinator") {
		t.Errorf("markdown lacks the groups section:\n%s", md)
	}
}
