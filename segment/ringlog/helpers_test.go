package ringlog

import (
	"runtime"
	"testing"
	"time"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

const (
	testPrefix     = 0x5e6
	testRingSize   = 256
	testWaitLimit  = 10 * time.Second // a lost completion fails, never hangs
	testBatchCQEs  = 256
	testMaxResults = 1 << 14
)

// makeFrame builds a sealed frame of records records and a body of bodyLen
// bytes derived from seed.
func makeFrame(records uint32, bodyLen int, maxTs int64, seed uint64) []byte {
	bodyLen = max(bodyLen, int(records))
	h := schema.FrameHeader{RecordCount: records, FirstTimestampMs: maxTs, MaxTimestampMs: maxTs}
	b := schema.AppendFrameHeader(nil, &h, bodyLen)
	x := seed*0x9e3779b97f4a7c15 + 7
	for range bodyLen {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b = append(b, byte(x))
	}
	schema.SealFrame(b)
	return b
}

// shardRing locks the test goroutine to its thread and creates a ring with
// the shard's flags, as a shard does.
func shardRing(t testing.TB) *ring.Ring {
	t.Helper()
	runtime.LockOSThread()
	r, err := ring.New(testRingSize, ring.Options{Flags: ring.ShardFlags, CQEntries: 4 * testRingSize})
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("ring.New: %v", err)
	}
	t.Cleanup(func() {
		r.Close()
		runtime.UnlockOSThread()
	})
	return r
}

type appendResult struct {
	done bool
	base int64
	err  error
}

// sink records results by token (tokens are small integers in the tests).
type sink struct {
	appends  []appendResult
	nAppends int
	flushes  []appendResult
	nFlushes int
	// check, when set, runs inside AppendDone (e.g. a durability check).
	check func(token uint64, base int64, err error)
}

func newSink() *sink {
	return &sink{appends: make([]appendResult, testMaxResults), flushes: make([]appendResult, testMaxResults)}
}

func (s *sink) AppendDone(token uint64, base int64, err error) {
	if s.appends[token].done {
		panic("append reported twice")
	}
	s.appends[token] = appendResult{done: true, base: base, err: err}
	s.nAppends++
	if s.check != nil {
		s.check(token, base, err)
	}
}

func (s *sink) FlushDone(token uint64, err error) {
	if s.flushes[token].done {
		panic("flush reported twice")
	}
	s.flushes[token] = appendResult{done: true, err: err}
	s.nFlushes++
}

// shard is the test's shard loop: it submits, waits and routes completions.
type shard struct {
	t       testing.TB
	r       *ring.Ring
	l       *Log
	batch   []*ring.CQE
	cqes    []ring.CQE
	reverse bool // hand each batch to the log in reverse order
}

func newShard(t testing.TB, r *ring.Ring, l *Log) *shard {
	return &shard{t: t, r: r, l: l, batch: make([]*ring.CQE, testBatchCQEs), cqes: make([]ring.CQE, 0, testBatchCQEs)}
}

// until runs the loop until cond holds, failing after testWaitLimit.
func (s *shard) until(cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(testWaitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("condition not met within %v; stats %+v", testWaitLimit, s.l.Stats())
		}
		if _, err := s.r.SubmitAndWaitTimeout(1, 100*time.Millisecond); err != nil && err != unix.ETIME {
			s.t.Fatalf("submit and wait: %v", err)
		}
		s.reap()
	}
}

// reap hands every ready completion to the log.
func (s *shard) reap() {
	n := s.r.PeekBatchCQE(s.batch)
	s.cqes = s.cqes[:0]
	for _, c := range s.batch[:n] {
		s.cqes = append(s.cqes, *c)
	}
	s.r.CQAdvance(uint32(n))
	for i := range s.cqes {
		c := s.cqes[i]
		if s.reverse {
			c = s.cqes[len(s.cqes)-1-i]
		}
		if c.UserData>>32 != testPrefix {
			s.t.Fatalf("completion %#x is not the log's", c.UserData)
		}
		s.l.Complete(c)
	}
}

func testConfig(pol segment.FlushPolicy) segment.Config {
	return segment.Config{
		SegmentBytes:       64 << 10,
		IndexIntervalBytes: 1 << 10,
		IndexBytes:         1 << 10,
		SegmentMs:          segment.Unlimited,
		RetentionMs:        segment.Unlimited,
		RetentionBytes:     segment.Unlimited,
		Flush:              pol,
	}
}

// preadSpans reads the spans' bytes from their descriptors, as a test's
// stand-in for the splice a shard does.
func preadSpans(t testing.TB, l *Log, dst []byte, spans []segment.Span) []byte {
	t.Helper()
	for _, sp := range spans {
		fd, err := l.Fd(sp.Segment)
		if err != nil {
			t.Fatal(err)
		}
		start := len(dst)
		dst = append(dst, make([]byte, sp.Len)...)
		if n, err := unix.Pread(fd, dst[start:], sp.Pos); err != nil || int64(n) != sp.Len {
			t.Fatalf("pread %d bytes at %d: %d, %v", sp.Len, sp.Pos, n, err)
		}
	}
	return dst
}

// readAll reads every frame from offset to the end through Read.
func readAll(t testing.TB, l *Log, offset int64, maxBytes int) []byte {
	t.Helper()
	var out []byte
	for offset < l.End() {
		spans, err := l.Read(offset, maxBytes, -1)
		if err != nil {
			t.Fatalf("read at %d: %v", offset, err)
		}
		if len(spans) == 0 {
			t.Fatalf("no spans at %d, end %d", offset, l.End())
		}
		out = preadSpans(t, l, out, spans)
		offset = spans[len(spans)-1].NextOffset
	}
	return out
}
