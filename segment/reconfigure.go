package segment

import "fmt"

// Reconfigure changes the settings of an open log that a topic may alter
// at run time: SegmentBytes and SegmentMs (the active segment rolls by the
// new bounds at its next append; segments already closed keep their
// size), RetentionMs and RetentionBytes (the next ApplyRetention uses
// them), Flush, and AllocateStepBytes (zero: the default for the new
// SegmentBytes). The index sizes, fixed in every segment's files, and the
// driver's FS and clock stay as they were; a cfg that would change the
// index sizes is refused, and so is an invalid one, leaving the log as it
// was.
func (c *Core) Reconfigure(cfg Config) error {
	cfg.FS, cfg.NowMs = c.cfg.FS, c.cfg.NowMs
	n, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if n.IndexBytes != c.cfg.IndexBytes || n.IndexIntervalBytes != c.cfg.IndexIntervalBytes {
		return fmt.Errorf("segment: the index sizes (%d bytes, an entry every %d) cannot change while the log is open",
			c.cfg.IndexBytes, c.cfg.IndexIntervalBytes)
	}
	c.cfg = n
	return nil
}

// Reconfigure is Core.Reconfigure for the synchronous driver. Only the
// core takes the new settings: l.cfg stays the open-time config, which a
// compaction build reads on its own goroutine (its index sizes never
// change), and appends read the changing ones from the core.
func (l *Log) Reconfigure(cfg Config) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.core.Reconfigure(cfg)
}
