package metadata

import "slices"

// Preferred-leader elections, as Kafka's auto.leader.rebalance.enable: a
// partition's preferred leader is its first replica, and creation spreads
// first replicas over the brokers (assignReplicas), so leadership is
// balanced while every broker is up. A broker that is fenced or shuts
// down loses its leaderships, and catching up again puts it back in the
// ISRs but not in the lead. So every leader-imbalance interval, Tick on
// the controller leader elects the preferred replica of every partition
// where it is live, in the ISR and not leading.
//
// A periodic check rather than one after each ISR change: the ISR grows
// the moment a follower reaches the high watermark, and moving leadership
// then would make every returning broker take its partitions back while
// it is still loading its logs and catching up the rest. The interval
// lets a broker settle first, as Kafka's leader.imbalance.check.interval
// does.
const (
	// DefaultLeaderImbalanceCheckIntervalMs is Kafka's
	// leader.imbalance.check.interval.seconds (300 s).
	DefaultLeaderImbalanceCheckIntervalMs = 300_000
	// maxPreferredElectionsPerCheck bounds the records of one check (one
	// Raft entry), as Kafka's controller bounds its elections per pass;
	// when more partitions wait, the next Tick runs another check.
	maxPreferredElectionsPerCheck = 1000
)

// preferredElections returns the preferred-leader elections due, at most
// maxPreferredElectionsPerCheck, and whether more remain.
func (s *State) preferredElections() ([]Record, bool) {
	var out []Record
	for _, t := range s.sortedTopics() {
		for i, p := range t.partitions {
			preferred := p.replicas[0]
			if p.leader == preferred || !slices.Contains(p.isr, preferred) || !s.isLive(preferred) {
				continue
			}
			if len(out) == maxPreferredElectionsPerCheck {
				return out, true
			}
			// The election rules pick the first live ISR member in replica
			// order: the preferred replica.
			if rec, ok := changeRecord(t, int32(i), settle(t, p, p.isr, s.isLive, true)); ok {
				out = append(out, rec)
			}
		}
	}
	return out, false
}

// rebalanceLeaders runs the preferred-leader check when it is due.
func (c *Controller) rebalanceLeaders(nowMs int64) ([]Record, error) {
	if c.imbalanceCheckMs < 0 || nowMs < c.nextImbalanceCheckMs {
		return nil, nil
	}
	records, more := c.state.preferredElections()
	c.nextImbalanceCheckMs = nowMs + c.imbalanceCheckMs
	if more {
		c.nextImbalanceCheckMs = nowMs
	}
	return c.commit(records)
}
