package metadata

import "strconv"

// Listener is one address a broker accepts connections on.
type Listener struct {
	Name string // e.g. "PLAINTEXT"
	Host string
	Port uint16
}

func (l Listener) String() string {
	return l.Name + "://" + l.Host + ":" + strconv.Itoa(int(l.Port))
}

// broker is the replicated state of one registered broker. Its last
// heartbeat is not here: that is the controller leader's soft state and
// never enters the log.
type broker struct {
	id          int32
	incarnation IncarnationID
	// epoch counts the broker's registrations; each new incarnation gets the
	// next one, and requests carrying an older epoch are stale.
	epoch int64
	// registerOffset is the log offset of the record that registered this
	// incarnation. The broker is caught up, and may be unfenced, once it
	// has applied that record.
	registerOffset uint64
	listeners      []Listener
	rack           string
	fenced         bool
	shuttingDown   bool
}

// live reports whether the broker may lead or join an ISR.
func (b *broker) live() bool { return !b.fenced && !b.shuttingDown }

// topic is the replicated state of one topic.
type topic struct {
	id         TopicID
	name       string
	configs    map[string]string // normalised values; see config.go
	partitions []*partition
}

// uncleanAllowed reports whether the topic allows electing a replica that
// is not in the ISR.
func (t *topic) uncleanAllowed() bool {
	return t.configs[ConfigUncleanLeaderElection] == "true"
}

// partition is the replicated state of one partition.
type partition struct {
	replicas []int32 // in preference order; replicas[0] is the preferred leader
	isr      []int32 // in replica order
	leader   int32   // NoLeader when none
	// leaderEpoch increases on every leader change; followers truncate by it.
	leaderEpoch int32
	// partitionEpoch increases on every change to the partition, so that a
	// leader's AlterPartition built on an old view is refused.
	partitionEpoch int32
	// elr is the eligible leader replicas (KIP-966), in replica order:
	// replicas out of the ISR that still hold every record below the high
	// watermark, so that one may lead when no ISR member can. Empty
	// whenever the ISR holds min.insync.replicas members. See election.go.
	elr []int32
	// lastKnownELR, in replica order, holds the replicas that left the
	// ELR because they lost their logs (an unclean shutdown, an offline
	// replica): the best an unclean election can do. Empty once the
	// partition has a leader.
	lastKnownELR []int32
}

// flushesBeforeAck reports whether the topic's flush policy is sync (the
// default): every replica's log is durable below the end it reports.
func (t *topic) flushesBeforeAck() bool {
	v, ok := t.configs[ConfigFlushPolicy]
	return !ok || v == FlushSync
}

// minISR is the topic's min.insync.replicas.
func (t *topic) minISR() int {
	return int(configInt(t.configs, ConfigMinInsyncReplicas, defaultMinInsyncReplicas))
}
