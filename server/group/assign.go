package group

import (
	"maps"
	"slices"
)

// assignInput is what an assignor sees: the members in id order with the
// existing topics each subscribes to (sorted), the partition counts of
// those topics, and the previous target assignment, which both assignors
// keep as far as balance allows (sticky).
type assignInput struct {
	members []assignMember
	topics  map[string]int32
	prev    map[string]partSet
}

type assignMember struct {
	id     string
	topics []string
}

// assign runs the named assignor. Every partition of a subscribed topic
// goes to exactly one member subscribed to its topic; every member gets a
// (possibly empty) set.
func assign(name string, in assignInput) map[string]partSet {
	var out map[string]partSet
	switch name {
	case AssignorRange:
		out = assignRange(in)
	case AssignorUniform:
		out = assignUniform(in)
	default:
		panic("group: invariant: assignor " + name + " was accepted but does not exist")
	}
	return out
}

func knownAssignor(name string) bool { return name == AssignorUniform || name == AssignorRange }

// keepable is the part of a member's previous target that is still valid:
// the partition exists and the member still subscribes to its topic.
func keepable(in assignInput, m assignMember, topicSubscribed func(string) bool) []TopicPartition {
	var out []TopicPartition
	for _, tp := range in.prev[m.id].sorted() {
		n, ok := in.topics[tp.Topic]
		if ok && tp.Partition < n && topicSubscribed(tp.Topic) {
			out = append(out, tp)
		}
	}
	return out
}

// assignUniform spreads all subscribed partitions over the members so that
// counts differ by at most one where subscriptions allow it, moving as few
// partitions from their previous owner as it can. It keeps every member's
// still-valid previous partitions, gives each unowned partition to the
// least-loaded member subscribed to its topic, then moves partitions one
// at a time from a member to a subscribed one holding at least two fewer,
// which lowers the sum of squared counts each time and so ends. With equal
// subscriptions the result is balanced to within one; with different ones
// no single move can improve it.
func assignUniform(in assignInput) map[string]partSet {
	out := map[string]partSet{}
	subs := map[string]map[string]bool{}
	owner := map[TopicPartition]string{}
	kept := map[string][]TopicPartition{}
	for _, m := range in.members {
		out[m.id] = partSet{}
		subs[m.id] = map[string]bool{}
		for _, t := range m.topics {
			subs[m.id][t] = true
		}
		kept[m.id] = keepable(in, m, func(t string) bool { return subs[m.id][t] })
	}
	quota := homogeneousQuotas(in, kept)
	for _, m := range in.members {
		for _, tp := range kept[m.id] {
			if _, taken := owner[tp]; !taken && (quota == nil || len(out[m.id]) < quota[m.id]) {
				owner[tp] = m.id
				out[m.id][tp] = struct{}{}
			}
		}
	}
	eligible := func(topic string) []string {
		var ids []string
		for _, m := range in.members {
			if subs[m.id][topic] {
				ids = append(ids, m.id)
			}
		}
		return ids
	}
	for _, t := range slices.Sorted(maps.Keys(in.topics)) {
		cands := eligible(t)
		for p := int32(0); p < in.topics[t]; p++ {
			tp := TopicPartition{t, p}
			if _, taken := owner[tp]; taken || len(cands) == 0 {
				continue
			}
			best := cands[0]
			for _, id := range cands[1:] {
				if len(out[id]) < len(out[best]) {
					best = id
				}
			}
			owner[tp] = best
			out[best][tp] = struct{}{}
		}
	}
	for moveOne(in, out, subs) {
	}
	return out
}

// homogeneousQuotas is, when every member subscribes to the same topics,
// how many partitions each may keep: p/n, and p/n+1 for p mod n of them,
// those that held the most first. Capping what members keep makes the
// greedy fill exactly balanced, so a group scaling out from one member to
// many does not pay one move per partition. It is nil for different
// subscriptions, where the move loop balances.
func homogeneousQuotas(in assignInput, kept map[string][]TopicPartition) map[string]int {
	if len(in.members) == 0 {
		return nil
	}
	for _, m := range in.members[1:] {
		if !slices.Equal(m.topics, in.members[0].topics) {
			return nil
		}
	}
	total := 0
	for _, t := range in.members[0].topics {
		total += int(in.topics[t])
	}
	n := len(in.members)
	order := slices.Clone(in.members)
	slices.SortStableFunc(order, func(a, b assignMember) int { return len(kept[b.id]) - len(kept[a.id]) })
	quota := map[string]int{}
	for i, m := range order {
		quota[m.id] = total / n
		if i < total%n {
			quota[m.id]++
		}
	}
	return quota
}

// moveOne moves one partition from the most loaded member that can give
// one to a subscribed member holding at least two fewer, and reports
// whether it found such a move. It takes the giver's last partition in
// order, so repeated runs move the same ones.
func moveOne(in assignInput, out map[string]partSet, subs map[string]map[string]bool) bool {
	givers := make([]assignMember, len(in.members))
	copy(givers, in.members)
	slices.SortStableFunc(givers, func(a, b assignMember) int { return len(out[b.id]) - len(out[a.id]) })
	for _, from := range givers {
		held := out[from.id].sorted()
		for i := len(held) - 1; i >= 0; i-- {
			tp := held[i]
			var to string
			for _, m := range in.members {
				if m.id != from.id && subs[m.id][tp.Topic] && len(out[m.id]) < len(out[from.id])-1 &&
					(to == "" || len(out[m.id]) < len(out[to])) {
					to = m.id
				}
			}
			if to != "" {
				delete(out[from.id], tp)
				out[to][tp] = struct{}{}
				return true
			}
		}
	}
	return false
}

// assignRange gives each member, topic by topic, a share of the topic's
// partitions: with n subscribers and p partitions, p mod n members get
// p/n+1 and the rest p/n. A fresh assignment gives contiguous ranges in
// member order, so topics with equal partition counts and subscribers are
// co-partitioned (member i holds the same partition numbers of each). A
// member keeps its previous partitions of the topic up to its share, and
// the larger shares go first to members that held more than p/n.
func assignRange(in assignInput) map[string]partSet {
	out := map[string]partSet{}
	for _, m := range in.members {
		out[m.id] = partSet{}
	}
	for _, t := range slices.Sorted(maps.Keys(in.topics)) {
		var subs []assignMember
		for _, m := range in.members {
			if _, ok := slices.BinarySearch(m.topics, t); ok {
				subs = append(subs, m)
			}
		}
		if len(subs) == 0 {
			continue
		}
		n := in.topics[t]
		q, extra := int(n)/len(subs), int(n)%len(subs)
		prevOf := map[string][]TopicPartition{}
		for _, m := range subs {
			for _, tp := range keepable(in, m, func(topic string) bool { return topic == t }) {
				prevOf[m.id] = append(prevOf[m.id], tp)
			}
		}
		quota := map[string]int{}
		for _, m := range subs {
			quota[m.id] = q
		}
		for _, m := range subs {
			if extra > 0 && len(prevOf[m.id]) > q {
				quota[m.id]++
				extra--
			}
		}
		for _, m := range subs {
			if extra > 0 && quota[m.id] == q {
				quota[m.id]++
				extra--
			}
		}
		taken := partSet{}
		for _, m := range subs {
			for _, tp := range prevOf[m.id] {
				if len(out[m.id]) < quotaSoFar(out[m.id], t, quota[m.id]) && !taken.has(tp) {
					out[m.id][tp] = struct{}{}
					taken[tp] = struct{}{}
				}
			}
		}
		next := 0
		for p := int32(0); p < n; p++ {
			tp := TopicPartition{t, p}
			if taken.has(tp) {
				continue
			}
			for countTopic(out[subs[next].id], t) >= quota[subs[next].id] {
				next++
			}
			out[subs[next].id][tp] = struct{}{}
		}
	}
	return out
}

// quotaSoFar is the size s may grow to while it holds fewer than quota
// partitions of topic t.
func quotaSoFar(s partSet, t string, quota int) int {
	return len(s) - countTopic(s, t) + quota
}

func countTopic(s partSet, t string) int {
	n := 0
	for tp := range s {
		if tp.Topic == t {
			n++
		}
	}
	return n
}
