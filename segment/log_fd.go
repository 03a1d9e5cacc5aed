package segment

// SpanFD returns the descriptor of the data file a span lies in, opening
// it if it was closed, so a caller can send the span's bytes zero-copy
// (splice or sendfile at span.Pos). The descriptor belongs to the Log and
// stays valid until the segment is deleted or the Log closes. A closed or
// failed (offline) log refuses.
func (l *Log) SpanFD(s Span) (uintptr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	f, err := l.dataFile(s.Segment)
	if err != nil {
		return 0, err
	}
	return f.Fd(), nil
}
