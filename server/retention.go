package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-db/strata/segment/ringlog"
)

// Retention in the broker. Each shard applies the time and size retention
// of its topics (retention.ms, retention.bytes) to the partitions it owns,
// every BrokerConfig.LogRetentionCheckInterval (Kafka's
// log.retention.check.interval.ms), on its own tick: the log deletes whole
// closed segments (segment.Core.ApplyRetention), the log start moves to the
// first segment left, and a fetch below it answers OFFSET_OUT_OF_RANGE.
// The deleted segments' files are unlinked at once; their data files close
// when no fetch answer holds them (segment_holds.go).

const (
	// LogRetentionCheckIntervalDefault is how often a shard applies
	// retention when BrokerConfig.LogRetentionCheckInterval is 0 (Kafka's
	// log.retention.check.interval.ms default).
	LogRetentionCheckIntervalDefault = 5 * time.Minute
	// LogRetentionCheckIntervalMin is the shortest interval accepted: the
	// shard's tick, which runs the check.
	LogRetentionCheckIntervalMin = tickInterval
)

// retentionInterval checks a configured retention check interval: 0 means
// the default, and one shorter than the shard's tick could not be honoured.
func retentionInterval(d time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return LogRetentionCheckIntervalDefault, nil
	case d < LogRetentionCheckIntervalMin:
		return 0, fmt.Errorf("server: log retention check interval %v is below the minimum %v", d, LogRetentionCheckIntervalMin)
	}
	return d, nil
}

// retentionCheckDue marks every open partition due for a retention check
// once the interval has passed since the shard's last check.
func (bs *brokerShard) retentionCheckDue(now int64) {
	interval := bs.b.cfg.LogRetentionCheckInterval.Milliseconds()
	if bs.nextRetentionMs == 0 || bs.nextRetentionMs-now > interval {
		// The first check comes one interval after the shard starts, as
		// Kafka's does: opening the partitions is work enough at start.
		// A wall clock stepped back starts the wait again rather than
		// putting the next check off by the step.
		bs.nextRetentionMs = now + interval
		return
	}
	if now < bs.nextRetentionMs {
		return
	}
	bs.nextRetentionMs = now + interval
	for _, p := range bs.slots {
		if p != nil && !p.closing {
			p.retentionDue = true
		}
	}
}

// applyRetention runs a due retention check of one partition. A log that
// refuses for now (a roll's syncs are in flight: they name the segment
// retention may delete) stays due and is tried again on the next tick;
// nothing waits or loops for it. An offline partition is skipped: its log
// refuses every operation until the broker restarts.
func (bs *brokerShard) applyRetention(p *partition) {
	if !p.retentionDue {
		return
	}
	if p.offline() {
		p.retentionDue = false
		return
	}
	start := p.log.LogStart()
	// Only what every in-sync replica holds may go: a follower behind the
	// leader's log start could not catch up, and a follower that trimmed
	// past the high watermark could not serve it as the next leader.
	err := p.log.ApplyRetentionBelow(bs.sh.now(), p.highWatermark())
	if errors.Is(err, ringlog.ErrBusy) {
		return
	}
	p.retentionDue = false
	if err != nil {
		// A storage failure took the log offline; checkStorage logs and
		// reports it. Anything else (an index that could not be loaded)
		// leaves the log as it was, to be tried at the next check.
		bs.b.log.Warn("retention", "topic", p.topic, "partition", p.index, "err", err)
		bs.checkStorage(p)
		return
	}
	if moved := p.log.LogStart(); moved != start {
		bs.b.log.Debug("retention moved the log start", "topic", p.topic, "partition", p.index,
			"from", start, "to", moved, "bytes", p.log.Size())
	}
}

// closeDeletedFiles closes the data files of deleted segments whose last
// fetch answer has let go.
func (bs *brokerShard) closeDeletedFiles(p *partition) {
	if len(p.deleted) == 0 {
		return
	}
	if err := p.closeDeleted(false); err != nil {
		bs.b.log.Warn("close deleted segment file", "topic", p.topic, "partition", p.index, "err", err)
	}
}
