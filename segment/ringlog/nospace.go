package ringlog

// A full file system is a condition, not a failure (docs/storage.md, "A
// full disk"). A FALLOCATE or WRITE that completes with -ENOSPC (or
// -EDQUOT) stored nothing past what it reports, and dropped no page that
// was stored before: unlike -EIO, or any fdatasync error, it leaves what
// is on disk known. So instead of taking the log offline the log holds:
//
//   - a growth that found no room is not recorded (Grown is not called);
//     the append that needed it and every one after it wait, unwritten,
//     as they wait for any growth;
//   - a write that found no room keeps what it wrote (rec.written) and
//     waits, its bytes past that unwritten; appends after it may have
//     been written whole, but none commits before it (commits are in
//     prepare order), so nothing past the committed end is ever served
//     or acknowledged;
//   - nothing new is submitted while the log holds; syncs of what was
//     written go on, and appends are still accepted (into the window of
//     appendsMax) so that the caller decides what to refuse;
//   - Tick, noSpaceRetryIntervalMs after the last refusal, submits the
//     held writes' rests and lets the waiting appends start again (the
//     growth is planned again by the core). Room freed meanwhile
//     (retention, a deleted topic, an operator) lets them through; no
//     room holds them again.
//
// A held log is not idle: a caller that must close it while the disk is
// still full (a deleted topic, a stopping broker) fails it with Fail,
// which reports every held append failed. Recovery after a crash or a
// reopen walks the frames: a frame whose write was held is cut there, as
// any torn tail is.

// noSpaceRetryIntervalMs is how long a held log waits before trying its
// held work again: room freed by retention or an operator is used within
// this much (and the shard's tick) of being freed, and a still-full disk
// costs one refused FALLOCATE or WRITE per interval.
const noSpaceRetryIntervalMs = 250

// holdForSpace records that an allocation or a write found no room.
func (l *Log) holdForSpace(err error) {
	l.stats.NoSpace++
	l.noSpace, l.spaceShort = true, true
	l.noSpaceErr = err
	l.noSpaceRetryMs = l.cfg.NowMs() + noSpaceRetryIntervalMs
}

// retrySpace submits the held writes again and lets waiting appends start.
func (l *Log) retrySpace() {
	l.noSpace = false
	for s := l.commit; s < l.start; s++ {
		rec := &l.recs[s%appendsMax]
		if rec.state != stNoSpace {
			continue
		}
		rec.state = stWriting
		if err := l.submitWrite(rec); err != nil {
			rec.state = stWritten // never reached the kernel
			l.fatal(err)
			return
		}
	}
	l.pump()
}

// NoSpace reports whether the log is short of room: a growth or write
// found none and no retry has succeeded since; and the error it got then.
func (l *Log) NoSpace() (bool, error) { return l.spaceShort, l.noSpaceErr }

// roomFound notes a growth or write that succeeded: room is back, unless
// the log holds again (a later completion found none).
func (l *Log) roomFound() {
	if !l.noSpace {
		l.spaceShort = false
	}
}
