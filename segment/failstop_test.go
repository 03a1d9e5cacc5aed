package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/strata-db/strata/schema"
)

// Fail-stop property test: random short sequences of appends (leader and
// replicated), leader epoch changes, flushes, rolls, truncations, deletions
// and clean reopens run over an errFS that
// fails one operation of a random kind at a random point; the MemFS under it
// then crashes (dropping, or tearing, everything unsynced) and the log is
// opened again without faults. Every append that was acknowledged durable
// (under FlushEveryAck, or by a Flush that returned nil) must be there byte
// for byte at its offset; every frame there must be one that was appended at
// that offset; the epoch list must name exactly the epochs of the frames
// there (checkEpochModel); after the failure nothing is acknowledged and
// every operation returns ErrStorageFailed. Faults also hit the writes of
// the epoch file, which take the log offline like any other.
const (
	// failStopSequencesDefault is the number of sequences a plain `go test`
	// runs: the bar of 10,000, which takes a few seconds.
	failStopSequencesDefault = 10000
	// failStopSequencesEnv overrides it (STRATA_FAILSTOP_SEQUENCES=200000
	// for a long run).
	failStopSequencesEnv = "STRATA_FAILSTOP_SEQUENCES"
	// failStopSeedEnv runs one sequence by its seed, as printed on failure.
	failStopSeedEnv = "STRATA_FAILSTOP_SEED"
	// failStopStepsMax bounds a sequence's operations before the crash.
	failStopStepsMax = 40
	// failStopNthMax bounds which operation of its kind the fault hits.
	failStopNthMax = 12
	// failStopAfterFailureOpsMax is how many operations run after the
	// failure, each of which must be refused.
	failStopAfterFailureOpsMax = 3
	// failStopFiredFractionMin is the share of sequences whose fault must
	// actually fire, so that the test cannot quietly test nothing.
	failStopFiredFractionMin = 0.6
)

func TestFailStopNoAckedAppendLost(t *testing.T) {
	n := failStopSequencesDefault
	if s := os.Getenv(failStopSequencesEnv); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("%s=%q", failStopSequencesEnv, s)
		}
		n = v
	}
	if testing.Short() {
		n /= 10
	}
	first := uint64(0)
	if s := os.Getenv(failStopSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q", failStopSeedEnv, s)
		}
		first, n = v, 1
	}
	fired, onEpochFile := 0, 0
	kinds := make([]int, faultKinds)
	for i := 0; i < n; i++ {
		seed := first + uint64(i)
		sq := runFailStopSequence(seed)
		if sq.err != nil {
			t.Fatalf("seed %d (%s=%d), fault %v #%d, ops %s: %v", seed, failStopSeedEnv, seed, sq.kind, sq.nth, strings.Join(sq.ops, " "), sq.err)
		}
		if sq.fired {
			fired++
			kinds[sq.kind]++
		}
		if sq.onEpochFile {
			onEpochFile++
		}
	}
	t.Logf("%d sequences, %d with an injected failure (%d in the epoch file); by kind %v", n, fired, onEpochFile, kinds[1:])
	if onEpochFile == 0 && n >= 1000 {
		t.Fatal("no fault hit the epoch file")
	}
	if float64(fired) < failStopFiredFractionMin*float64(n) {
		t.Fatalf("only %d of %d sequences had their fault injected", fired, n)
	}
	for k := faultKind(1); k < faultKinds && n >= 1000; k++ {
		if kinds[k] == 0 {
			t.Fatalf("no sequence injected a %v fault", k)
		}
	}
}

type failStopRun struct {
	kind        faultKind
	nth         int
	fired       bool
	onEpochFile bool // the fault hit the epoch file (or its temp file)
	ops         []string
	err         error
}

// failStopModel is what the log must hold after the crash.
type failStopModel struct {
	frames   []modelFrame // as committed, acknowledged or not
	logStart int64
	acked    int64 // frames ending at or below it were acknowledged durable
	// possible holds every frame ever handed to the log, by the base
	// offset it was given: truncation reuses offsets.
	possible       map[int64][][]byte
	requestedStart int64 // the highest log start ever asked for
}

func (m *failStopModel) end() int64 {
	if len(m.frames) == 0 {
		return 0
	}
	return m.frames[len(m.frames)-1].next
}

func runFailStopSequence(seed uint64) (sq failStopRun) {
	r := rand.New(rand.NewPCG(seed, 0x6661696c73746f70))
	sq.kind = faultKind(1 + r.IntN(int(faultKinds)-1))
	sq.nth = 1 + r.IntN(failStopNthMax)
	mem := NewMemFS()
	efs := newErrFS(mem, sq.kind, sq.nth)
	now := int64(0)
	cfg := memConfig(efs)
	cfg.NowMs = func() int64 { return now }
	cfg.SegmentBytes = []int64{1024, 2048}[r.IntN(2)]
	cfg.IndexBytes = []int64{16, 64}[r.IntN(2)]
	cfg.AllocateStepBytes = []int64{0, 128, 300}[r.IntN(3)]
	cfg.Flush = []FlushPolicy{FlushEveryAck, FlushNever, FlushIntervalMs(50)}[r.IntN(3)]
	m := &failStopModel{possible: make(map[int64][][]byte)}
	failed := false
	afterFailure := 0
	// refused checks an operation's error: nil is only allowed before
	// the failure, and an error only after the fault fired, as the sticky
	// ErrStorageFailed.
	refused := func(op string, err error) (bool, error) {
		switch {
		case err == nil && failed:
			return false, fmt.Errorf("%s succeeded after the storage failure", op)
		case err == nil:
			return false, nil
		case !efs.hasFired():
			return true, fmt.Errorf("%s failed with nothing injected: %w", op, err)
		case op == "open" && !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.ENOSPC):
			// Open is no log yet: it returns the injected error itself.
			return true, fmt.Errorf("open failed with %v, not the injected error", err)
		case op != "open" && !errors.Is(err, ErrStorageFailed):
			return true, fmt.Errorf("%s failed with %v, not ErrStorageFailed", op, err)
		}
		failed = true
		sq.ops = append(sq.ops, "!"+op)
		return true, nil
	}
	l, err := Open("/p", cfg)
	sq.ops = append(sq.ops, "open")
	if _, err := refused("open", err); err != nil {
		sq.err = err
		return sq
	}
	if l == nil {
		// The fault hit recovery: Open wraps the error but is not a log,
		// so there is nothing sticky to check.
		failed = true
	}
	steps := 1 + r.IntN(failStopStepsMax)
	for step := 0; step < steps && l != nil && afterFailure <= failStopAfterFailureOpsMax; step++ {
		if failed {
			afterFailure++
		}
		var op string
		switch x := r.IntN(100); {
		case x < 52:
			recs := uint32(1 + r.IntN(4))
			f := testFrame(recs, 1+r.IntN(300), int64(r.IntN(1000)), r.Uint64())
			now += int64(r.IntN(40))
			op = "append"
			var base int64
			if x < 45 {
				stale := l.LeaderEpoch() < l.LatestEpoch()
				base, err = l.Append(f)
				if stale && !failed {
					// Replicated frames of a newer epoch came after
					// the leader's epoch was set.
					op = "append-stale"
					if !errors.Is(err, ErrEpochRegress) || l.End() != m.end() {
						sq.err = fmt.Errorf("append under epoch %d after epoch %d: %v, end %d", l.LeaderEpoch(), l.LatestEpoch(), err, l.End())
						return
					}
					break
				}
			} else {
				// A follower's append: the leader's offsets and an epoch
				// at or above the latest, or (1 in 5) a frame that does
				// not fit, which must change nothing.
				op = "replicate"
				at, epoch := l.End(), max(l.LatestEpoch(), 0)+int32(r.IntN(3))
				misfit := r.IntN(5) == 0
				if misfit && l.LatestEpoch() > 0 && r.IntN(2) == 0 {
					epoch = l.LatestEpoch() - 1
				} else if misfit {
					at += int64(1 + r.IntN(3))
				}
				schema.PatchBaseOffset(f, at)
				schema.PatchLeaderEpoch(f, epoch)
				base, err = l.AppendReplicated(f)
				if misfit && !failed {
					op = "replicate-misfit"
					if !errors.Is(err, ErrOffsetMismatch) && !errors.Is(err, ErrEpochRegress) || l.End() != m.end() {
						sq.err = fmt.Errorf("misfit replicated frame at %d epoch %d: %v, end %d", at, epoch, err, l.End())
						return
					}
					break
				}
			}
			bad, rerr := refused(op, err)
			if rerr != nil {
				sq.err = rerr
				return
			}
			if h, _ := schema.ParseFrameHeader(f); h.BaseOffset == m.end() {
				// Written, or partly written, at this offset.
				m.possible[h.BaseOffset] = append(m.possible[h.BaseOffset], f)
			}
			if bad {
				if h, _ := schema.ParseFrameHeader(f); h.BaseOffset == m.end() && l.End() == m.end()+int64(recs) {
					// Committed but not acknowledged (its sync failed).
					m.frames = append(m.frames, modelFrame{base: m.end(), next: l.End(), b: f})
				}
				break
			}
			if base != m.end() {
				sq.err = fmt.Errorf("append got base %d, want %d", base, m.end())
				return
			}
			m.frames = append(m.frames, modelFrame{base: base, next: base + int64(recs), b: f})
			if cfg.Flush == FlushEveryAck {
				m.acked = m.end()
			}
		case x < 57:
			// A leader change: usually a newer epoch, sometimes an older
			// one, which must be refused without harm.
			epoch := max(l.LeaderEpoch(), l.LatestEpoch()) + int32(r.IntN(3)) - 1
			op = "epoch=" + strconv.Itoa(int(epoch))
			err := l.SetLeaderEpoch(epoch)
			if !failed && epoch < max(l.LeaderEpoch(), l.LatestEpoch(), 0) {
				if !errors.Is(err, ErrEpochRegress) {
					sq.err = fmt.Errorf("lower leader epoch %d: %v", epoch, err)
					return
				}
				break
			}
			if _, rerr := refused(op, err); rerr != nil {
				sq.err = rerr
				return
			}
		case x < 69:
			op = "flush"
			bad, rerr := refused(op, l.Flush())
			if rerr != nil {
				sq.err = rerr
				return
			}
			if !bad {
				m.acked = m.end()
			}
		case x < 78:
			op = "roll"
			if _, rerr := refused(op, l.Roll()); rerr != nil {
				sq.err = rerr
				return
			}
		case x < 87:
			off := m.logStart + r.Int64N(m.end()-m.logStart+1)
			op = "truncate@" + strconv.FormatInt(off, 10)
			bad, rerr := refused(op, l.Truncate(off))
			if rerr != nil {
				sq.err = rerr
				return
			}
			k := m.from(off)
			if k == len(m.frames) {
				break
			}
			// A failed truncation may or may not have cut: either way
			// nothing from the cut on is owed any more.
			cut := m.frames[k].base
			m.acked = min(m.acked, cut)
			if !bad || l.End() == cut {
				m.frames = m.frames[:k]
				m.logStart = min(m.logStart, cut)
			}
		case x < 93:
			off := m.logStart + r.Int64N(m.end()-m.logStart+1)
			op = "delete@" + strconv.FormatInt(off, 10)
			m.requestedStart = max(m.requestedStart, off)
			bad, rerr := refused(op, l.DeleteRecordsBefore(off))
			if rerr != nil {
				sq.err = rerr
				return
			}
			if !bad || l.LogStart() == off {
				m.logStart = max(m.logStart, off)
			}
		default:
			op = "reopen"
			bad, rerr := refused("close", l.Close())
			if rerr != nil {
				sq.err = rerr
				return
			}
			if bad {
				l = nil
				break
			}
			m.acked = m.end()
			epochs := l.Epochs()
			l, err = Open("/p", cfg)
			if _, rerr := refused("open", err); rerr != nil {
				sq.err = rerr
				return
			}
			if l != nil && (l.End() != m.end() || l.LogStart() != m.logStart) {
				sq.err = fmt.Errorf("clean reopen gave [%d, %d), want [%d, %d)", l.LogStart(), l.End(), m.logStart, m.end())
				return
			}
			if l != nil && !slices.Equal(l.Epochs(), epochs) {
				sq.err = fmt.Errorf("clean reopen gave epochs %v, had %v", l.Epochs(), epochs)
				return
			}
		}
		sq.ops = append(sq.ops, op)
	}
	sq.fired = efs.hasFired()
	sq.onEpochFile = sq.fired && strings.Contains(efs.firedOnFile(), epochFileName)
	// A disk out of room while a checkpoint's temporary file is written
	// keeps the old checkpoint where one that lags is still right
	// (writeCheckpointMayLag, trimEpochs): nothing fails, and the crash
	// check below shows nothing was lost by it.
	keptOld := sq.kind == faultShortWrite && strings.HasSuffix(efs.firedOnFile(), checkpointTmpExt)
	if sq.fired && !failed && !keptOld {
		sq.err = fmt.Errorf("the injected %v failure was never reported", sq.kind)
		return
	}
	if l != nil && failed && l.Err() == nil {
		sq.err = errors.New("an operation failed but the log is not offline")
		return
	}
	if r.IntN(2) == 0 {
		mem.CrashTorn(r.Uint64())
		sq.ops = append(sq.ops, "crash-torn")
	} else {
		mem.Crash()
		sq.ops = append(sq.ops, "crash")
	}
	efs.disarm()
	sq.err = checkAfterCrash(cfg, m)
	return sq
}

func (m *failStopModel) from(offset int64) int {
	for i, f := range m.frames {
		if f.next > offset {
			return i
		}
	}
	return len(m.frames)
}

// checkAfterCrash reopens the crashed log and checks it against the model.
func checkAfterCrash(cfg Config, m *failStopModel) (err error) {
	l, err := Open("/p", cfg)
	if err != nil {
		return fmt.Errorf("open after the crash: %w", err)
	}
	defer func() {
		if cerr := l.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close after the crash: %w", cerr)
		}
	}()
	if err := l.CheckConsistency(); err != nil {
		return err
	}
	if l.End() < m.acked {
		return fmt.Errorf("log ends at %d after the crash, %d was acknowledged", l.End(), m.acked)
	}
	if l.LogStart() > max(m.requestedStart, 0) && l.LogStart() > m.logStart {
		return fmt.Errorf("log starts at %d after the crash; only %d was deleted", l.LogStart(), m.requestedStart)
	}
	got, err := readAllErr(l, l.LogStart())
	if err != nil {
		return err
	}
	present := make(map[int64][]byte)
	var headers []schema.FrameHeader
	for len(got) > 0 {
		h, herr := schema.CheckFrame(got)
		if herr != nil {
			return fmt.Errorf("frame after the crash: %w", herr)
		}
		headers = append(headers, h)
		f := got[:h.Length]
		got = got[h.Length:]
		ok := false
		for _, want := range m.possible[h.BaseOffset] {
			ok = ok || bytes.Equal(f, want)
		}
		if !ok {
			return fmt.Errorf("frame at %d after the crash was never appended there", h.BaseOffset)
		}
		present[h.BaseOffset] = f
	}
	for _, f := range m.frames {
		if f.next > m.acked || f.base < l.LogStart() {
			continue
		}
		if !bytes.Equal(present[f.base], f.b) {
			return fmt.Errorf("acknowledged frame [%d, %d) lost (log [%d, %d))", f.base, f.next, l.LogStart(), l.End())
		}
	}
	if err := checkEpochModel(l.Epochs(), headers, l.End()); err != nil {
		return fmt.Errorf("after the crash: %w", err)
	}
	return l.CheckEpochs()
}

// checkEpochModel checks an epoch list against the frames read from the
// log start to the end: each frame's epoch is the one the list gives its
// base offset; each change of epoch along the frames has its entry at
// exactly that frame; no entry lies below the first frame but the one
// covering it, and none at or past the end.
func checkEpochModel(entries []EpochEntry, frames []schema.FrameHeader, end int64) error {
	epochOf := func(offset int64) int32 {
		for i := len(entries) - 1; i >= 0; i-- {
			if entries[i].StartOffset <= offset {
				return entries[i].Epoch
			}
		}
		return NoEpoch
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
			if !slices.Contains(entries, EpochEntry{h.LeaderEpoch, h.BaseOffset}) {
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

// readAllErr is readAll returning its error, for the sequences that run
// outside a test's goroutine of checks.
func readAllErr(l *Log, offset int64) ([]byte, error) {
	var out []byte
	for offset < l.End() {
		spans, err := l.Read(offset, 1<<20, -1)
		if err != nil {
			return nil, fmt.Errorf("read at %d: %w", offset, err)
		}
		if len(spans) == 0 {
			return nil, fmt.Errorf("no spans at %d, end %d", offset, l.End())
		}
		if out, err = l.ReadSpans(out, spans); err != nil {
			return nil, fmt.Errorf("read spans at %d: %w", offset, err)
		}
		offset = spans[len(spans)-1].NextOffset
	}
	return out, nil
}
