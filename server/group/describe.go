package group

import (
	"fmt"
	"strings"
)

// Describe writes the durable state of every group, one line per group,
// member and offset, in a fixed order: the form scripts compare, and the
// state a coordinator rebuilt by Replay must equal. Sessions are not in
// it: they restart on failover.
func (c *Coordinator) Describe() string {
	var b strings.Builder
	for _, id := range c.sortedGroupIDs() {
		g := c.groups[id]
		empty := ""
		if g.emptySinceMs >= 0 {
			empty = fmt.Sprintf(" empty-since=%d", g.emptySinceMs)
		}
		if g.memberSeq > 0 {
			empty += fmt.Sprintf(" member-seq=%d", g.memberSeq)
		}
		fmt.Fprintf(&b, "group %s epoch=%d assignment-epoch=%d%s\n", g.id, g.epoch, g.assignmentEpoch, empty)
		for _, mid := range g.sortedMemberIDs() {
			m := g.members[mid]
			fmt.Fprintf(&b, "  member %s", m.id)
			if m.instanceID != "" {
				fmt.Fprintf(&b, " instance=%s", m.instanceID)
			}
			fmt.Fprintf(&b, " epoch=%d prev=%d", m.epoch, m.prevEpoch)
			if m.rebalanceTimeoutMs > 0 {
				fmt.Fprintf(&b, " rebalance=%d", m.rebalanceTimeoutMs)
			}
			if m.regex != "" {
				fmt.Fprintf(&b, " regex=%q", m.regex)
			} else {
				fmt.Fprintf(&b, " topics=%v", m.topics)
			}
			fmt.Fprintf(&b, " owns=%s", fmtParts(m.assigned.sorted()))
			if len(m.pending) > 0 {
				fmt.Fprintf(&b, " revoking=%s", fmtParts(m.pending.sorted()))
			}
			fmt.Fprintf(&b, " target=%s\n", fmtParts(g.target[m.id].sorted()))
		}
		for _, tp := range sortedOffsets(g) {
			o := g.offsets[tp]
			fmt.Fprintf(&b, "  offset %s=%d at=%d\n", tp, o.Offset, o.CommitMs)
		}
	}
	if b.Len() == 0 {
		return "no groups\n"
	}
	return b.String()
}

func sortedOffsets(g *group) []TopicPartition {
	s := partSet{}
	for tp := range g.offsets {
		s[tp] = struct{}{}
	}
	return s.sorted()
}
