package segment

import "testing"

// TestAgeRollAcrossReopen: segment.ms counts from a segment's first
// append, also across a close or a crash and the open after it: the
// recovered active segment's age is taken from its first frame's first
// timestamp, so the next append does not roll it (an unset age clock made
// every reopened segment look decades old and roll at once), and the
// append once it is SegmentMs old does. A first timestamp in the future
// counts from the open.
func TestAgeRollAcrossReopen(t *testing.T) {
	const segmentMs = 1000
	for _, crash := range []bool{false, true} {
		fs := NewMemFS()
		cfg := memConfig(fs)
		cfg.SegmentMs = segmentMs
		now := int64(50_000)
		cfg.NowMs = func() int64 { return now }
		l, err := Open("/p", cfg)
		if err != nil {
			t.Fatal(err)
		}
		seed := uint64(0)
		appendAt := func(ms, ts int64) {
			t.Helper()
			now = ms
			seed++
			if _, err := l.Append(testFrame(1, 100, ts, seed)); err != nil {
				t.Fatal(err)
			}
		}
		reopen := func(ms int64) {
			t.Helper()
			if crash {
				if err := l.Flush(); err != nil {
					t.Fatal(err)
				}
				fs.Crash()
			} else if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			now = ms
			if l, err = Open("/p", cfg); err != nil {
				t.Fatal(err)
			}
		}
		segments := func(when string, want int) {
			t.Helper()
			if n := len(l.SegmentBases()); n != want {
				t.Fatalf("crash %v, %s: %d segments, want %d", crash, when, n, want)
			}
		}
		appendAt(50_000, 50_000)
		appendAt(50_100, 50_100)
		reopen(50_200)
		appendAt(50_300, 50_300)
		segments("an append 300 ms after the first, after a reopen", 1)
		appendAt(51_000, 51_000)
		segments("an append 1000 ms after the first", 2)
		// The next segment's first record claims a time 10 s ahead.
		appendAt(52_000, 62_000)
		segments("an append 1000 ms after the second segment's first", 3)
		reopen(52_100)
		appendAt(53_000, 53_000)
		segments("an append 900 ms after a reopen, the first timestamp in the future", 3)
		appendAt(53_100, 53_100)
		segments("an append 1000 ms after a reopen, the first timestamp in the future", 4)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
