package ringlog

// Fail takes the log offline as a storage failure would: every append not
// yet acknowledged fails, and nothing is accepted after it. Its owner
// calls it when the log and what the owner knows of it disagree (the
// broker's replica state and the log's end), which is a bug: serving on
// would serve the wrong records under the right offsets, so the log stops
// as it does when the disk fails, and is recovered by a restart.
func (l *Log) Fail(err error) {
	if l.err != nil || l.closed {
		return
	}
	l.enter()
	l.fatal(err)
}
