package group

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func members(ids ...string) []assignMember {
	var out []assignMember
	for _, id := range ids {
		out = append(out, assignMember{id: id, topics: []string{"t", "u"}})
	}
	return out
}

// checkComplete fails unless every partition of a subscribed topic has
// exactly one owner, and that owner subscribes to its topic.
func checkComplete(t *testing.T, in assignInput, out map[string]partSet) {
	t.Helper()
	owner := map[TopicPartition]string{}
	for _, m := range in.members {
		for tp := range out[m.id] {
			if o, ok := owner[tp]; ok {
				t.Fatalf("%v given to %s and %s", tp, o, m.id)
			}
			owner[tp] = m.id
			subscribed := false
			for _, topic := range m.topics {
				subscribed = subscribed || topic == tp.Topic
			}
			if !subscribed || tp.Partition >= in.topics[tp.Topic] {
				t.Fatalf("%v given to %s, which does not subscribe to it or it does not exist", tp, m.id)
			}
		}
	}
	for topic, n := range in.topics {
		for p := int32(0); p < n; p++ {
			tp := TopicPartition{topic, p}
			if _, ok := owner[tp]; !ok {
				for _, m := range in.members {
					for _, mt := range m.topics {
						if mt == topic {
							t.Fatalf("%v is subscribed by %s but owned by nobody", tp, m.id)
						}
					}
				}
			}
		}
	}
}

func moved(prev, next map[string]partSet) int {
	n := 0
	for id, s := range next {
		n += len(s.minus(prev[id]))
	}
	return n
}

// TestUniformBalancedAndSticky: equal subscriptions are balanced to within
// one, and a member joining takes only its share, all of it from others'
// surplus: nobody else loses more than it must.
func TestUniformBalancedAndSticky(t *testing.T) {
	in := assignInput{members: members("a", "b", "c"), topics: map[string]int32{"t": 7, "u": 5}}
	first := assignUniform(in)
	checkComplete(t, in, first)
	for id, s := range first {
		if len(s) < 4 || len(s) > 4 {
			t.Fatalf("%s holds %d of 12 among 3", id, len(s))
		}
	}
	in.members, in.prev = members("a", "b", "c", "d"), first
	second := assignUniform(in)
	checkComplete(t, in, second)
	for id, s := range second {
		if len(s) != 3 {
			t.Fatalf("%s holds %d of 12 among 4", id, len(s))
		}
	}
	if got := moved(first, second); got != 3 {
		t.Fatalf("adding a fourth member moved %d partitions, want 3 (its share)", got)
	}
	if third := assignUniform(assignInput{members: in.members, topics: in.topics, prev: second}); moved(second, third) != 0 {
		t.Fatalf("recomputing an unchanged group moved partitions")
	}
}

// TestUniformHeterogeneous: with different subscriptions every partition
// still goes to a subscriber, and no single move can even the counts.
func TestUniformHeterogeneous(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		in := assignInput{topics: map[string]int32{}}
		names := []string{"t0", "t1", "t2", "t3"}
		for _, n := range names {
			in.topics[n] = int32(rng.IntN(6))
		}
		for i := range rng.IntN(5) + 1 {
			m := assignMember{id: fmt.Sprintf("m%d", i)}
			for _, n := range names {
				if rng.IntN(2) == 0 {
					m.topics = append(m.topics, n)
				}
			}
			in.members = append(in.members, m)
		}
		out := assignUniform(in)
		checkComplete(t, in, out)
		for _, a := range in.members {
			for tp := range out[a.id] {
				for _, b := range in.members {
					for _, bt := range b.topics {
						if bt == tp.Topic && len(out[b.id]) < len(out[a.id])-1 {
							t.Fatalf("round %d: %v could move from %s (%d) to %s (%d)", round, tp, a.id, len(out[a.id]), b.id, len(out[b.id]))
						}
					}
				}
			}
		}
	}
}

// TestRangeCoPartitionedAndSticky: a fresh range assignment gives each
// member the same partition numbers of topics with equal counts, in
// contiguous ranges; after a member leaves, the others keep theirs.
func TestRangeCoPartitionedAndSticky(t *testing.T) {
	in := assignInput{members: members("a", "b", "c"), topics: map[string]int32{"t": 5, "u": 5}}
	first := assignRange(in)
	checkComplete(t, in, first)
	want := map[string][]int32{"a": {0, 1}, "b": {2, 3}, "c": {4}}
	for id, ps := range want {
		for _, topic := range []string{"t", "u"} {
			for _, p := range ps {
				if !first[id].has(TopicPartition{topic, p}) {
					t.Fatalf("%s lacks %s-%d: %v", id, topic, p, first[id].sorted())
				}
			}
		}
	}
	in.members, in.prev = members("a", "c"), first
	second := assignRange(in)
	checkComplete(t, in, second)
	for _, id := range []string{"a", "c"} {
		if !first[id].subsetOf(second[id]) {
			t.Fatalf("%s lost partitions when b left: %v -> %v", id, first[id].sorted(), second[id].sorted())
		}
	}
}

// TestUniformScaleOut: one member held everything and three join; the
// first keeps its share of what it held and the rest is spread evenly.
func TestUniformScaleOut(t *testing.T) {
	in := assignInput{members: members("a"), topics: map[string]int32{"t": 200, "u": 101}}
	first := assignUniform(in)
	in.members, in.prev = members("a", "b", "c", "d"), first
	second := assignUniform(in)
	checkComplete(t, in, second)
	for id, s := range second {
		if len(s) < 75 || len(s) > 76 {
			t.Fatalf("%s holds %d of 301 among 4", id, len(s))
		}
	}
	if !second["a"].subsetOf(first["a"]) || len(second["a"]) != 76 {
		t.Fatalf("a kept %d of its own, want 76 (it held the most, so it gets the extra one)", len(second["a"].and(first["a"])))
	}
	if got := moved(first, second); got != 301-76 {
		t.Fatalf("scaling out moved %d partitions, want %d", got, 301-76)
	}
}
