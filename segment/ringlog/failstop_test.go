package ringlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
)

// Fail-stop property test of the ring driver, the twin of segment's
// TestFailStopNoAckedAppendLost: random short sequences of bursts of
// appends in flight, flushes, interval ticks, truncations, deletions and
// clean reopens, on real files and a real ring, through a crashFS that
// fails one operation of a random kind at a random point (a ring write,
// short write or fdatasync, or a synchronous-path fdatasync, folder fsync,
// write, fallocate, ftruncate, rename or create). The folder is then
// rewritten to what a power cut would leave and opened again: every append
// acknowledged durable (AppendDone under FlushEveryAck, or a FlushDone)
// must be there byte for byte, every frame there must have been appended at
// its offset, the epoch list must name exactly the epochs of the frames
// there, nothing may be acknowledged once the log has failed, and every
// failure must be ErrFailed wrapping segment.ErrStorageFailed. Faults hit
// the epoch file's writes too.
const (
	// ringFailStopSequencesDefault is what a plain `go test` runs: the
	// issue's bar of 10,000, a few seconds on tmpfs. Each sequence opens
	// real files and drives a real ring, and the race detector makes that
	// about five times slower, so under -race (make test) the default is
	// ringFailStopSequencesRace; STRATA_RINGLOG_FAILSTOP_SEQUENCES=n sets
	// any number (the long mode).
	ringFailStopSequencesDefault = 10000
	ringFailStopSequencesRace    = 1000
	ringFailStopSequencesEnv     = "STRATA_RINGLOG_FAILSTOP_SEQUENCES"
	// ringFailStopSeedEnv reruns one sequence by the seed a failure names.
	ringFailStopSeedEnv = "STRATA_RINGLOG_FAILSTOP_SEED"
	// ringFailStopStepsMax bounds a sequence's operations.
	ringFailStopStepsMax = 24
	// ringFailStopBurstMax bounds the appends one step puts in flight.
	ringFailStopBurstMax = 8
	// ringFailStopNthMax bounds which operation of its kind the fault hits.
	ringFailStopNthMax = 10
	// ringFailStopFiredFractionMin is the share of sequences whose fault
	// must fire, so that the test cannot quietly test nothing.
	ringFailStopFiredFractionMin = 0.5
	// shmDir is tmpfs where there is one: fdatasync costs nothing there,
	// and what is durable is modelled by crashFS anyway.
	shmDir = "/dev/shm"
)

func TestRingFailStopNoAckedAppendLost(t *testing.T) {
	n := ringFailStopSequencesDefault
	if raceEnabled {
		n = ringFailStopSequencesRace
	}
	if s := os.Getenv(ringFailStopSequencesEnv); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("%s=%q", ringFailStopSequencesEnv, s)
		}
		n = v
	}
	if testing.Short() {
		n /= 10
	}
	first := uint64(0)
	if s := os.Getenv(ringFailStopSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q", ringFailStopSeedEnv, s)
		}
		first, n = v, 1
	}
	r := shardRing(t)
	root := t.TempDir()
	if st, err := os.Stat(shmDir); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp(shmDir, "strata-ringlog-failstop-"); err == nil {
			root = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	fired, onEpochFile := 0, 0
	kinds := make([]int, faultKinds)
	for i := 0; i < n; i++ {
		seq := &ringFailStop{t: t, r: r, seed: first + uint64(i), dir: filepath.Join(root, strconv.Itoa(i))}
		seq.run()
		if seq.fs.hasFired() {
			fired++
			kinds[seq.kind]++
			if strings.Contains(seq.fs.firedOnFile(), epochFileName) {
				onEpochFile++
			}
		}
		if err := os.RemoveAll(seq.dir); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d sequences, %d with an injected failure (%d in the epoch file); by kind %v", n, fired, onEpochFile, kinds[1:])
	if float64(fired) < ringFailStopFiredFractionMin*float64(n) {
		t.Fatalf("only %d of %d sequences had their fault injected", fired, n)
	}
	if onEpochFile == 0 && n >= 1000 {
		t.Fatal("no fault hit the epoch file")
	}
}

// ringFailStop is one sequence: its log, model and sink.
type ringFailStop struct {
	t    *testing.T
	r    *ring.Ring
	seed uint64
	dir  string
	kind faultKind
	nth  int
	fs   *crashFS
	l    *Log
	ops  []string

	frames   []ringFrame // accepted, in offset order
	logStart int64
	acked    int64 // frames ending at or below it were acknowledged durable
	possible map[int64][][]byte
	flushes  map[uint64]int64 // flush token -> offsets it covers
	nextTok  uint64
	everyAck bool
}

type ringFrame struct {
	base, next int64
	b          []byte
}

func (q *ringFailStop) fatalf(format string, args ...any) {
	q.t.Helper()
	q.t.Fatalf("seed %d (%s=%d), fault %v #%d, ops %s: %s", q.seed, ringFailStopSeedEnv, q.seed,
		q.kind, q.nth, strings.Join(q.ops, " "), fmt.Sprintf(format, args...))
}

func (q *ringFailStop) end() int64 {
	if len(q.frames) == 0 {
		return 0
	}
	return q.frames[len(q.frames)-1].next
}

// checkRefusal checks an error the log returned or reported.
func (q *ringFailStop) checkRefusal(what string, err error) {
	q.t.Helper()
	if !q.fs.hasFired() {
		q.fatalf("%s failed with nothing injected: %v", what, err)
	}
	if !errors.Is(err, ErrFailed) || !errors.Is(err, segment.ErrStorageFailed) {
		q.fatalf("%s failed with %v, not ErrFailed and ErrStorageFailed", what, err)
	}
}

// AppendDone implements Sink.
func (q *ringFailStop) AppendDone(token uint64, base int64, err error) {
	if err != nil {
		q.checkRefusal("append", err)
		return
	}
	if q.l.Err() != nil {
		q.fatalf("append at %d acknowledged after the failure %v", base, q.l.Err())
	}
	if q.everyAck {
		for _, f := range q.frames {
			if f.base == base {
				q.acked = max(q.acked, f.next)
			}
		}
	}
}

// FlushDone implements Sink.
func (q *ringFailStop) FlushDone(token uint64, err error) {
	if err != nil {
		q.checkRefusal("flush", err)
		return
	}
	if q.l.Err() != nil {
		q.fatalf("flush acknowledged after the failure %v", q.l.Err())
	}
	q.acked = max(q.acked, q.flushes[token])
}

func (q *ringFailStop) run() {
	q.t.Helper()
	rng := rand.New(rand.NewPCG(q.seed, 0x72696e676c6f67))
	q.kind = faultKind(1 + rng.IntN(int(faultKinds)-1))
	q.nth = 1 + rng.IntN(ringFailStopNthMax)
	q.fs = newCrashFS(q.kind, q.nth)
	q.possible = make(map[int64][][]byte)
	q.flushes = make(map[uint64]int64)
	now := int64(0)
	pol := []segment.FlushPolicy{segment.FlushEveryAck, segment.FlushNever, segment.FlushIntervalMs(20)}[rng.IntN(3)]
	q.everyAck = pol == segment.FlushEveryAck
	cfg := testConfig(pol)
	cfg.FS = q.fs
	cfg.NowMs = func() int64 { return now }
	cfg.SegmentBytes = []int64{2048, 4096}[rng.IntN(2)]
	cfg.IndexIntervalBytes = 256
	cfg.IndexBytes = 64
	// 0: one step is the whole segment; the others grow each segment
	// through several FALLOCATE steps, some smaller than a frame.
	cfg.AllocateStepBytes = []int64{0, 512, 1000}[rng.IntN(3)]
	open := func() {
		q.l = nil
		l, err := Open(q.r, q.dir, cfg, testPrefix, q)
		q.ops = append(q.ops, "open")
		if err != nil {
			if !q.fs.hasFired() {
				q.fatalf("open with nothing injected: %v", err)
			}
			return
		}
		l.faults = q.fs
		q.l = l
	}
	open()
	var sh *shard
	if q.l != nil {
		sh = newShard(q.t, q.r, q.l)
	}
	steps := 1 + rng.IntN(ringFailStopStepsMax)
	for step := 0; step < steps && q.l != nil; step++ {
		l := q.l
		switch x := rng.IntN(100); {
		case x < 50:
			k := 1 + rng.IntN(ringFailStopBurstMax)
			// A burst of leader appends, or (1 in 3) of a follower's
			// appends at the leader's offsets, some of a newer epoch.
			replicated := rng.IntN(3) == 0
			if replicated {
				q.ops = append(q.ops, "replicate*"+strconv.Itoa(k))
			} else {
				q.ops = append(q.ops, "append*"+strconv.Itoa(k))
			}
			for i := 0; i < k; i++ {
				recs := uint32(1 + rng.IntN(4))
				f := makeFrame(recs, 1+rng.IntN(500), int64(rng.IntN(1000)), rng.Uint64())
				q.nextTok++
				var base int64
				var err error
				if replicated {
					epoch := max(l.LatestEpoch(), 0) + int32(rng.IntN(4)/3)
					schema.PatchBaseOffset(f, q.end())
					schema.PatchLeaderEpoch(f, epoch)
					h, herr := schema.CheckFrame(f)
					if herr != nil {
						q.fatalf("replicated frame: %v", herr)
					}
					base, err = l.AppendReplicated(f, h, q.nextTok)
				} else {
					stale := l.LeaderEpoch() < l.LatestEpoch()
					base, err = l.Append(f, q.nextTok)
					if stale && l.Err() == nil {
						// Replicated frames of a newer epoch came
						// after the leader's epoch was set.
						if !errors.Is(err, segment.ErrEpochRegress) {
							q.fatalf("append under epoch %d after epoch %d: %v", l.LeaderEpoch(), l.LatestEpoch(), err)
						}
						q.ops = append(q.ops, "stale")
						break
					}
				}
				if err != nil {
					q.checkRefusal("append", err)
					break
				}
				if base != q.end() {
					q.fatalf("append got base %d, want %d", base, q.end())
				}
				q.frames = append(q.frames, ringFrame{base: base, next: base + int64(recs), b: f})
				q.possible[base] = append(q.possible[base], f)
			}
			if replicated && l.Err() == nil {
				// Frames that do not fit change nothing.
				stats := l.Stats()
				f := makeFrame(1, 10, 0, 1)
				schema.PatchBaseOffset(f, q.end()+1)
				h, _ := schema.CheckFrame(f)
				if _, err := l.AppendReplicated(f, h, 0); !errors.Is(err, segment.ErrOffsetMismatch) || l.Stats() != stats {
					q.fatalf("replicated frame past the end: %v", err)
				}
				if latest := l.LatestEpoch(); latest > 0 {
					schema.PatchBaseOffset(f, q.end())
					schema.PatchLeaderEpoch(f, latest-1)
					h, _ := schema.CheckFrame(f)
					if _, err := l.AppendReplicated(f, h, 0); !errors.Is(err, segment.ErrEpochRegress) || l.Stats() != stats {
						q.fatalf("replicated frame of epoch %d after %d: %v", latest-1, latest, err)
					}
				}
			}
			if rng.IntN(2) == 0 {
				sh.until(l.Idle)
			} else {
				sh.reap()
			}
		case x < 56:
			// A leader change, sometimes to an older epoch (refused).
			epoch := max(l.LeaderEpoch(), l.LatestEpoch()) + int32(rng.IntN(3)) - 1
			q.ops = append(q.ops, "epoch="+strconv.Itoa(int(epoch)))
			lower := epoch < max(l.LeaderEpoch(), l.LatestEpoch(), 0)
			switch err := l.SetLeaderEpoch(epoch); {
			case err == nil && lower:
				q.fatalf("lower leader epoch %d accepted", epoch)
			case err != nil && lower && l.Err() == nil:
				if !errors.Is(err, segment.ErrEpochRegress) {
					q.fatalf("lower leader epoch %d: %v", epoch, err)
				}
			case err != nil:
				q.checkRefusal("epoch", err)
			}
		case x < 67:
			q.ops = append(q.ops, "flush")
			q.nextTok++
			q.flushes[q.nextTok] = q.end()
			l.Flush(q.nextTok)
			sh.until(l.Idle)
		case x < 76:
			now += int64(rng.IntN(40))
			q.ops = append(q.ops, "tick")
			l.Tick(now)
			sh.until(l.Idle)
		case x < 85:
			sh.until(l.Idle)
			off := q.logStart + rng.Int64N(q.end()-q.logStart+1)
			q.ops = append(q.ops, "truncate@"+strconv.FormatInt(off, 10))
			err := l.Truncate(off)
			if err != nil {
				q.checkRefusal("truncate", err)
			}
			k := 0
			for k < len(q.frames) && q.frames[k].next <= off {
				k++
			}
			if k == len(q.frames) {
				break
			}
			// A failed truncation may or may not have cut: either way
			// nothing from the cut on is owed any more.
			cut := q.frames[k].base
			q.acked = min(q.acked, cut)
			if err == nil {
				q.frames = q.frames[:k]
				q.logStart = min(q.logStart, cut)
			}
		case x < 92:
			// Only committed offsets: accepted appends may be in flight.
			off := q.logStart + rng.Int64N(max(l.End()-q.logStart, 0)+1)
			q.ops = append(q.ops, "delete@"+strconv.FormatInt(off, 10))
			err := l.DeleteRecordsBefore(off)
			if errors.Is(err, ErrBusy) {
				q.ops = append(q.ops, "busy")
				sh.until(l.Idle)
				err = l.DeleteRecordsBefore(off)
			}
			if err != nil {
				q.checkRefusal("delete", err)
			} else {
				q.logStart = max(q.logStart, off)
			}
		default:
			sh.until(l.Idle)
			q.ops = append(q.ops, "reopen")
			if err := l.Close(); err != nil {
				q.checkRefusal("close", err)
				q.l = nil
				break
			}
			q.acked = q.end()
			open()
			if q.l != nil {
				sh = newShard(q.t, q.r, q.l)
			}
		}
	}
	if q.l != nil {
		sh.until(q.l.Idle)
		if err := q.l.Err(); (err != nil) != q.fs.hasFired() && !(err == nil && q.kind == faultShortWrite) {
			q.fatalf("injected %v, log error %v", q.fs.hasFired(), err)
		}
		// The power cut: the log's files close without a sync or a
		// checkpoint (as after a failure), then the folder is rewritten
		// to its durable state.
		q.l.sync.Fail(errors.New("power cut"))
		if err := q.l.Close(); err == nil {
			q.fatalf("close at the power cut: %v", err)
		}
	}
	q.ops = append(q.ops, "crash")
	if err := q.fs.crash(q.dir); err != nil {
		q.fatalf("crash: %v", err)
	}
	q.checkAfterCrash(cfg)
}

// checkAfterCrash opens the crashed folder with the synchronous driver on
// the plain filesystem and checks it against the model.
func (q *ringFailStop) checkAfterCrash(cfg segment.Config) {
	q.t.Helper()
	cfg.FS = nil
	sl, err := segment.Open(q.dir, cfg)
	if err != nil {
		q.fatalf("open after the crash: %v", err)
	}
	defer sl.Close()
	if err := sl.CheckConsistency(); err != nil {
		q.fatalf("after the crash: %v", err)
	}
	if sl.End() < q.acked {
		q.fatalf("log ends at %d after the crash, %d was acknowledged", sl.End(), q.acked)
	}
	var got []byte
	for off := sl.LogStart(); off < sl.End(); {
		spans, err := sl.Read(off, 1<<20, -1)
		if err != nil || len(spans) == 0 {
			q.fatalf("read at %d after the crash: %d spans, %v", off, len(spans), err)
		}
		if got, err = sl.ReadSpans(got, spans); err != nil {
			q.fatalf("read spans at %d after the crash: %v", off, err)
		}
		off = spans[len(spans)-1].NextOffset
	}
	present := make(map[int64][]byte)
	var headers []schema.FrameHeader
	for len(got) > 0 {
		h, err := schema.CheckFrame(got)
		if err != nil {
			q.fatalf("frame after the crash: %v", err)
		}
		headers = append(headers, h)
		f := got[:h.Length]
		got = got[h.Length:]
		ok := false
		for _, want := range q.possible[h.BaseOffset] {
			ok = ok || bytes.Equal(f, want)
		}
		if !ok {
			q.fatalf("frame at %d after the crash was never appended there", h.BaseOffset)
		}
		present[h.BaseOffset] = f
	}
	for _, f := range q.frames {
		if f.next <= q.acked && f.base >= sl.LogStart() && !bytes.Equal(present[f.base], f.b) {
			q.fatalf("acknowledged frame [%d, %d) lost (log [%d, %d))", f.base, f.next, sl.LogStart(), sl.End())
		}
	}
	if err := checkEpochModel(sl.Epochs(), headers, sl.End()); err != nil {
		q.fatalf("after the crash: %v", err)
	}
	if err := sl.CheckEpochs(); err != nil {
		q.fatalf("after the crash: %v", err)
	}
}

// checkEpochModel checks an epoch list against the frames read from the
// log start to the end (segment's test of the same name): each frame's
// epoch is the one the list gives its base offset, each change of epoch
// along the frames has its entry at exactly that frame, no entry lies
// below the first frame but the one covering it, and none at or past the
// end.
func checkEpochModel(entries []segment.EpochEntry, frames []schema.FrameHeader, end int64) error {
	epochOf := func(offset int64) int32 {
		for i := len(entries) - 1; i >= 0; i-- {
			if entries[i].StartOffset <= offset {
				return entries[i].Epoch
			}
		}
		return segment.NoEpoch
	}
	for i, e := range entries {
		if e.StartOffset >= end || (i > 0 && (e.Epoch <= entries[i-1].Epoch || e.StartOffset <= entries[i-1].StartOffset)) {
			return fmt.Errorf("epochs %v of a log ending at %d", entries, end)
		}
	}
	changes := 0
	for i, h := range frames {
		if got := epochOf(h.BaseOffset); got != h.LeaderEpoch {
			return fmt.Errorf("frame at %d has epoch %d, the list %v says %d", h.BaseOffset, h.LeaderEpoch, entries, got)
		}
		if i > 0 && h.LeaderEpoch != frames[i-1].LeaderEpoch {
			changes++
			if !slices.Contains(entries, segment.EpochEntry{Epoch: h.LeaderEpoch, StartOffset: h.BaseOffset}) {
				return fmt.Errorf("epoch %d begins at %d, the list %v says otherwise", h.LeaderEpoch, h.BaseOffset, entries)
			}
		}
	}
	above := 0
	for _, e := range entries {
		if len(frames) > 0 && e.StartOffset > frames[0].BaseOffset {
			above++
		}
	}
	if len(frames) > 0 && above != changes || len(frames) == 0 && len(entries) > 1 {
		return fmt.Errorf("epochs %v for %d changes of epoch among %d frames", entries, changes, len(frames))
	}
	return nil
}
