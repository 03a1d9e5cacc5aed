package segment

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-db/strata/schema"
	"pgregory.net/rapid"
)

type modelFrame struct {
	base, next int64
	maxTs      int64
	b          []byte
}

// model is the simple truth the log is checked against: a list of frames,
// a log start, and how much of the list is acknowledged as durable.
type model struct {
	frames   []modelFrame
	logStart int64
	acked    int64 // everything below is durable
}

func (m *model) end() int64 {
	if len(m.frames) == 0 {
		return 0
	}
	return m.frames[len(m.frames)-1].next
}

// from returns the index of the first frame with next > offset.
func (m *model) from(offset int64) int {
	for i, f := range m.frames {
		if f.next > offset {
			return i
		}
	}
	return len(m.frames)
}

// expect bounds frames starting at index i the way a read does.
func (m *model) expect(i int, maxBytes, upper int64) []byte {
	var out []byte
	for ; i < len(m.frames); i++ {
		f := m.frames[i]
		if upper >= 0 && f.next > upper {
			break
		}
		if len(out) > 0 && int64(len(out)+len(f.b)) > maxBytes {
			break
		}
		out = append(out, f.b...)
		if int64(len(out)) >= maxBytes {
			break
		}
	}
	return out
}

func (m *model) truncate(end int64) {
	k := 0
	for k < len(m.frames) && m.frames[k].next <= end {
		k++
	}
	m.frames = m.frames[:k]
	m.logStart = min(m.logStart, m.end())
	m.acked = min(m.acked, m.end())
}

func readSpans(t *rapid.T, l *Log, spans []Span) []byte {
	b, err := l.ReadSpans(nil, spans)
	if err != nil {
		t.Fatalf("read spans: %v", err)
	}
	return b
}

func TestLogMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		fs := NewMemFS()
		now := int64(0)
		cfg := memConfig(fs)
		cfg.NowMs = func() int64 { return now }
		cfg.SegmentBytes = rapid.SampledFrom([]int64{1024, 4096}).Draw(t, "segBytes")
		cfg.IndexBytes = rapid.SampledFrom([]int64{16, 64, 4096}).Draw(t, "indexBytes")
		// 0: one step is the whole segment; the others grow a segment in
		// several steps, some smaller than a frame.
		cfg.AllocateStepBytes = rapid.SampledFrom([]int64{0, 128, 300, 1000}).Draw(t, "stepBytes")
		cfg.SegmentMs = rapid.SampledFrom([]int64{Unlimited, 300}).Draw(t, "segMs")
		cfg.RetentionMs = rapid.SampledFrom([]int64{Unlimited, 400}).Draw(t, "retMs")
		cfg.RetentionBytes = rapid.SampledFrom([]int64{Unlimited, 5000}).Draw(t, "retBytes")
		policy := rapid.IntRange(0, 2).Draw(t, "policy")
		cfg.Flush = []FlushPolicy{FlushEveryAck, FlushNever, FlushIntervalMs(50)}[policy]
		l, err := Open("/p", cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := &model{}
		seed := uint64(0)
		reopen := func(crash bool) {
			if crash {
				if rapid.Bool().Draw(t, "torn") {
					fs.CrashTorn(rapid.Uint64().Draw(t, "tearSeed"))
				} else {
					fs.Crash()
				}
			} else if err := l.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			l, err = Open("/p", cfg)
			if err != nil {
				t.Fatalf("open after crash=%v: %v", crash, err)
			}
			if l.End() < m.acked || l.End() > m.end() {
				t.Fatalf("after crash=%v end %d, acked %d, written %d", crash, l.End(), m.acked, m.end())
			}
			if crash {
				end := l.End()
				k := m.from(end)
				if k < len(m.frames) && m.frames[k].base != end {
					t.Fatalf("crash left end %d inside a frame", end)
				}
				m.truncate(end)
			}
			m.acked = m.end()
		}
		ops := map[string]func(*rapid.T){
			"append": func(t *rapid.T) {
				seed++
				recs := uint32(rapid.IntRange(1, 5).Draw(t, "recs"))
				f := testFrame(recs, rapid.IntRange(1, 600).Draw(t, "body"), rapid.Int64Range(0, 1000).Draw(t, "ts"), seed)
				now += rapid.Int64Range(0, 60).Draw(t, "tick")
				if l.LeaderEpoch() < l.LatestEpoch() {
					// Replicated frames of a newer epoch came after the
					// leader's epoch was set.
					if _, err := l.Append(f); !errors.Is(err, ErrEpochRegress) {
						t.Fatalf("append under epoch %d after epoch %d: %v", l.LeaderEpoch(), l.LatestEpoch(), err)
					}
					return
				}
				base, err := l.Append(f)
				if err != nil {
					t.Fatalf("append: %v", err)
				}
				if base != m.end() {
					t.Fatalf("append got base %d, want %d", base, m.end())
				}
				m.frames = append(m.frames, modelFrame{base: base, next: base + int64(recs), maxTs: func() int64 { h, _ := schema.ParseFrameHeader(f); return h.MaxTimestampMs }(), b: f})
				if cfg.Flush == FlushEveryAck {
					m.acked = m.end()
				}
			},
			"replicate": func(t *rapid.T) {
				seed++
				recs := uint32(rapid.IntRange(1, 5).Draw(t, "recs"))
				f := testFrame(recs, rapid.IntRange(1, 600).Draw(t, "body"), rapid.Int64Range(0, 1000).Draw(t, "ts"), seed)
				now += rapid.Int64Range(0, 60).Draw(t, "tick")
				epoch := max(l.LatestEpoch(), 0) + rapid.Int32Range(0, 2).Draw(t, "epochStep")
				schema.PatchBaseOffset(f, m.end())
				schema.PatchLeaderEpoch(f, epoch)
				base, err := l.AppendReplicated(f)
				if err != nil || base != m.end() {
					t.Fatalf("replicated append at %d: %d, %v", m.end(), base, err)
				}
				m.frames = append(m.frames, modelFrame{base: base, next: base + int64(recs), maxTs: func() int64 { h, _ := schema.ParseFrameHeader(f); return h.MaxTimestampMs }(), b: f})
				if cfg.Flush == FlushEveryAck {
					m.acked = m.end()
				}
			},
			"epoch": func(t *rapid.T) {
				epoch := max(l.LeaderEpoch(), l.LatestEpoch()) + rapid.Int32Range(-1, 2).Draw(t, "epochStep")
				err := l.SetLeaderEpoch(epoch)
				if lower := epoch < max(l.LeaderEpoch(), l.LatestEpoch(), 0); lower != errors.Is(err, ErrEpochRegress) || !lower && err != nil {
					t.Fatalf("set leader epoch %d (leader %d, latest %d): %v", epoch, l.LeaderEpoch(), l.LatestEpoch(), err)
				}
			},
			"read": func(t *rapid.T) {
				off := rapid.Int64Range(m.logStart, m.end()).Draw(t, "off")
				maxBytes := rapid.Int64Range(1, 3000).Draw(t, "max")
				upper := int64(-1)
				if rapid.Bool().Draw(t, "bounded") {
					upper = rapid.Int64Range(off, m.end()).Draw(t, "upper")
				}
				spans, err := l.Read(off, maxBytes, upper)
				if err != nil {
					t.Fatalf("read %d: %v", off, err)
				}
				want := m.expect(m.from(off), maxBytes, upper)
				if got := readSpans(t, l, spans); !bytes.Equal(got, want) {
					t.Fatalf("read(%d, %d, %d): got %d bytes, want %d", off, maxBytes, upper, len(got), len(want))
				}
			},
			"readBelowStart": func(t *rapid.T) {
				if m.logStart == 0 {
					t.Skip()
				}
				if _, err := l.Read(m.logStart-1, 100, -1); !errors.Is(err, ErrOffsetOutOfRange) {
					t.Fatalf("read below start: %v", err)
				}
			},
			"readByTime": func(t *rapid.T) {
				ts := rapid.Int64Range(-5, 1005).Draw(t, "ts")
				maxBytes := rapid.Int64Range(1, 3000).Draw(t, "max")
				spans, err := l.ReadByTime(ts, maxBytes, -1)
				if err != nil {
					t.Fatalf("read by time %d: %v", ts, err)
				}
				i := m.from(m.logStart)
				for i < len(m.frames) && m.frames[i].maxTs < ts {
					i++
				}
				want := m.expect(i, maxBytes, -1)
				if got := readSpans(t, l, spans); !bytes.Equal(got, want) {
					t.Fatalf("readByTime(%d, %d): got %d bytes, want %d", ts, maxBytes, len(got), len(want))
				}
			},
			"roll": func(t *rapid.T) {
				if err := l.Roll(); err != nil {
					t.Fatalf("roll: %v", err)
				}
			},
			"truncate": func(t *rapid.T) {
				off := rapid.Int64Range(m.logStart, m.end()).Draw(t, "off")
				if err := l.Truncate(off); err != nil {
					t.Fatalf("truncate %d: %v", off, err)
				}
				if k := m.from(off); k < len(m.frames) {
					m.truncate(m.frames[k].base)
					m.acked = m.end()
				}
			},
			"deleteBefore": func(t *rapid.T) {
				off := rapid.Int64Range(m.logStart, m.end()).Draw(t, "off")
				if err := l.DeleteRecordsBefore(off); err != nil {
					t.Fatalf("delete before %d: %v", off, err)
				}
				m.logStart = max(m.logStart, off)
			},
			"retention": func(t *rapid.T) {
				now += rapid.Int64Range(0, 300).Draw(t, "tick")
				if err := l.ApplyRetention(now); err != nil {
					t.Fatalf("retention: %v", err)
				}
				newStart := l.LogStart()
				bases := l.SegmentBases()
				if newStart < m.logStart || (newStart > m.logStart && newStart != bases[0]) || bases[len(bases)-1] > m.end() {
					t.Fatalf("retention moved log start %d -> %d, segments %v", m.logStart, newStart, bases)
				}
				if newStart > m.logStart && cfg.RetentionBytes == Unlimited {
					for _, f := range m.frames {
						if f.next > m.logStart && f.next <= newStart && f.maxTs >= now-cfg.RetentionMs {
							t.Fatalf("retention at %d deleted frame %d with timestamp %d", now, f.base, f.maxTs)
						}
					}
				}
				if cfg.RetentionBytes != Unlimited && len(bases) > 1 && l.Size() > cfg.RetentionBytes && cfg.RetentionMs == Unlimited {
					t.Fatalf("retention left %d bytes in %d segments, bound %d", l.Size(), len(bases), cfg.RetentionBytes)
				}
				m.logStart = newStart
			},
			"flush": func(t *rapid.T) {
				if err := l.Flush(); err != nil {
					t.Fatalf("flush: %v", err)
				}
				m.acked = m.end()
			},
			"reopen": func(t *rapid.T) { reopen(false) },
			"crash":  func(t *rapid.T) { reopen(true) },
			"": func(t *rapid.T) {
				if l.End() != m.end() || l.LogStart() != m.logStart {
					t.Fatalf("log [%d, %d), model [%d, %d)", l.LogStart(), l.End(), m.logStart, m.end())
				}
				if err := l.CheckConsistency(); err != nil {
					t.Fatal(err)
				}
				var headers []schema.FrameHeader
				for _, f := range splitFrames(t, readAll(t, l, m.logStart)) {
					h, _ := schema.ParseFrameHeader(f)
					headers = append(headers, h)
				}
				if err := checkEpochModel(l.Epochs(), headers, l.End()); err != nil {
					t.Fatal(err)
				}
				if err := l.CheckEpochs(); err != nil {
					t.Fatal(err)
				}
			},
		}
		t.Repeat(ops)
		got := readAll(t, l, m.logStart)
		want := m.expect(m.from(m.logStart), 1<<40, -1)
		if !bytes.Equal(got, want) {
			t.Fatalf("final contents differ: %d bytes, want %d", len(got), len(want))
		}
		if err := l.Close(); err != nil {
			t.Fatal(fmt.Errorf("final close: %w", err))
		}
	})
}
