package replica

import "fmt"

// Defaults, each Kafka's where Kafka has the setting.
const (
	// lagTimeMaxMsDefault is replica.lag.time.max.ms: a follower that has
	// not caught up to the leader's log end for this long leaves the ISR.
	lagTimeMaxMsDefault = 30_000
	// fetchesInFlightMaxDefault is how many fetches a follower keeps in
	// flight to its leader while it is behind (Kafka keeps one).
	fetchesInFlightMaxDefault = 4
	// fetchWindowOffsetsDefault is how many offsets one pipelined fetch
	// covers: fetch k asks for the batches whose base offset lies in its
	// window, so that windows in flight never overlap.
	fetchWindowOffsetsDefault = 1 << 14
	// fetchMaxWaitMsDefault is replica.fetch.wait.max.ms: how long the
	// leader holds a fetch that finds no new data.
	fetchMaxWaitMsDefault = 500
	// fetchTimeoutMsDefault is how long a follower waits for the oldest
	// fetch in flight before it gives the pipeline up and starts again
	// (a lost request or answer). It is well above fetchMaxWaitMsDefault.
	fetchTimeoutMsDefault = 5_000
	// fetchBackoffMsDefault is replica.fetch.backoff.ms: the wait after an
	// error answer (not leader, a fenced epoch) before fetching again.
	fetchBackoffMsDefault = 1_000
	// fetchBackoffUnknownEpochMs is the wait, at most, after an answer
	// of UNKNOWN_LEADER_EPOCH: the leader has not yet taken the image that
	// made it leader, which every broker receives at about the same time,
	// so it will have in a moment. Waiting the whole FetchBackoffMs there
	// would hold acks=all produces to a new leader for that long after
	// every failover.
	fetchBackoffUnknownEpochMs = 50
	// alterPartitionTimeoutMsDefault is how long the leader waits for the
	// controller's answer to an ISR change before it may send another
	// (the compare-and-set on the partition epoch makes a retry safe).
	alterPartitionTimeoutMsDefault = 5_000

	// fetchesInFlightLimit bounds FetchesInFlightMax: every window in
	// flight may hold an answer buffered until the ones before it arrive.
	fetchesInFlightLimit = 64
)

// Config is one replica's settings for one partition.
type Config struct {
	// ID is this replica's broker id.
	ID int32
	// LagTimeMaxMs: see lagTimeMaxMsDefault (0 takes the default).
	LagTimeMaxMs int64
	// FetchesInFlightMax: see fetchesInFlightMaxDefault.
	FetchesInFlightMax int
	// FetchWindowOffsets: see fetchWindowOffsetsDefault.
	FetchWindowOffsets int64
	// FetchMaxWaitMs: see fetchMaxWaitMsDefault.
	FetchMaxWaitMs int64
	// FetchTimeoutMs: see fetchTimeoutMsDefault.
	FetchTimeoutMs int64
	// FetchBackoffMs: see fetchBackoffMsDefault.
	FetchBackoffMs int64
	// AlterPartitionTimeoutMs: see alterPartitionTimeoutMsDefault.
	AlterPartitionTimeoutMs int64
	// AckUnsynced is set for a topic whose flush policy is not sync
	// (never, or an interval): an append then counts for acks=1 and for
	// the high watermark once the driver has it in its log, as in Kafka.
	// Unset (the default, flush policy sync), it counts once it is
	// durable (LogDurable), so the high watermark never passes the
	// durable end of an ISR member and a crash that loses every page
	// cache loses nothing acknowledged.
	AckUnsynced bool
}

func (c Config) withDefaults() (Config, error) {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.LagTimeMaxMs, lagTimeMaxMsDefault)
	def(&c.FetchWindowOffsets, fetchWindowOffsetsDefault)
	def(&c.FetchMaxWaitMs, fetchMaxWaitMsDefault)
	def(&c.FetchTimeoutMs, fetchTimeoutMsDefault)
	def(&c.FetchBackoffMs, fetchBackoffMsDefault)
	def(&c.AlterPartitionTimeoutMs, alterPartitionTimeoutMsDefault)
	if c.FetchesInFlightMax == 0 {
		c.FetchesInFlightMax = fetchesInFlightMaxDefault
	}
	switch {
	case c.ID < 0:
		return c, fmt.Errorf("replica: negative broker id %d", c.ID)
	case c.LagTimeMaxMs < 0 || c.FetchWindowOffsets < 1 || c.FetchMaxWaitMs < 0 ||
		c.FetchBackoffMs < 0 || c.AlterPartitionTimeoutMs < 1:
		return c, fmt.Errorf("replica: a negative or zero limit in %+v", c)
	case c.FetchesInFlightMax < 1 || c.FetchesInFlightMax > fetchesInFlightLimit:
		return c, fmt.Errorf("replica: FetchesInFlightMax %d outside 1..%d", c.FetchesInFlightMax, fetchesInFlightLimit)
	case c.FetchTimeoutMs <= c.FetchMaxWaitMs:
		return c, fmt.Errorf("replica: FetchTimeoutMs %d must exceed FetchMaxWaitMs %d", c.FetchTimeoutMs, c.FetchMaxWaitMs)
	}
	return c, nil
}
