package ringlog

import "github.com/strata-db/strata/segment"

// Reconfigure changes the settings a topic may alter while its log is
// open (segment.Core.Reconfigure says which). A change of flush policy
// applies to appends from now on; appends committed under FlushEveryAck
// that still wait for their sync get one at once, so that leaving the
// policy never strands an acknowledgement.
func (l *Log) Reconfigure(cfg segment.Config) error {
	l.enter()
	if err := l.usable(); err != nil {
		return err
	}
	if err := l.sync.Reconfigure(cfg); err != nil {
		return err
	}
	l.cfg = l.core.Config()
	wasEveryAck := l.everyAck
	l.everyAck = l.cfg.Flush == segment.FlushEveryAck
	l.intervalMs = 0
	if ms, ok := l.cfg.Flush.IntervalMs(); ok {
		l.intervalMs = max(ms, 1)
	}
	if wasEveryAck && !l.everyAck {
		l.tickDue, l.tickMs = true, l.cfg.NowMs()
	}
	l.pump()
	return nil
}
