package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What a partition folder shows of the log's lifecycle work in flight, for
// aiming TestKill9DuringLifecycleWork's kills and for telling afterwards
// where each one landed. The folder's recovery-point checkpoint is written
// by the broker at the end of a roll (segment.Log.FinishRoll: its recovery
// point is the new segment's base) and at the end of a retention pass
// (segment.Log.deleteSegments, after the unlinks and a folder sync: its log
// start is the first segment left), and never in between:
//
//   - a roll in flight: the newest segment's files exist (BeginRoll created
//     them) but the checkpoint's recovery point is still below its base
//     (the old segment's three fdatasyncs, the folder sync or the
//     checkpoint's own write have not completed);
//   - a retention pass in flight: the oldest segments' files are unlinked
//     but the checkpoint's log start still names the first one of them.

// The checkpoint's layout (segment/checkpoint.go), read here as the
// broker's recovery would.
const (
	lifecycleCheckpointName  = "recovery-point"
	lifecycleCheckpointSize  = 28
	lifecycleCheckpointMagic = 0x4b435453
)

// lifecycleAimPoll is how often an aimed kill reads the folder.
const lifecycleAimPoll = 200 * time.Microsecond

// lifecycleFolder is one reading of a partition folder.
type lifecycleFolder struct {
	// bases are the segments' base offsets (their .log files), ascending.
	bases []int64
	// logStart and recoveryPoint are the checkpoint's; ck says it was
	// there and whole.
	logStart, recoveryPoint int64
	ck                      bool
	// tmp: a checkpoint's temporary file was there (a checkpoint write
	// under way).
	tmp bool
}

// readLifecycleFolder reads dir once. The broker may be changing it: a
// file gone between the listing and its read is an error to retry, never
// a state.
func readLifecycleFolder(dir string) (lifecycleFolder, error) {
	var f lifecycleFolder
	ents, err := os.ReadDir(dir)
	if err != nil {
		return f, err
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == lifecycleCheckpointName+".tmp":
			f.tmp = true
		case strings.HasSuffix(name, ".log") && len(name) == 20+len(".log"):
			base, err := strconv.ParseInt(name[:20], 10, 64)
			if err == nil {
				f.bases = append(f.bases, base)
			}
		}
	}
	slices.Sort(f.bases)
	b, err := os.ReadFile(filepath.Join(dir, lifecycleCheckpointName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return f, nil
	case err != nil:
		return f, err
	case len(b) != lifecycleCheckpointSize || binary.LittleEndian.Uint32(b) != lifecycleCheckpointMagic ||
		crc32.Checksum(b[:24], crcTableTest) != binary.LittleEndian.Uint32(b[24:]):
		// Renames replace the checkpoint whole: a torn one is a bug.
		return f, fmt.Errorf("checkpoint in %s: %d bytes, not a whole checkpoint", dir, len(b))
	}
	f.logStart = int64(binary.LittleEndian.Uint64(b[8:]))
	f.recoveryPoint = int64(binary.LittleEndian.Uint64(b[16:]))
	f.ck = true
	return f, nil
}

var crcTableTest = crc32.MakeTable(crc32.Castagnoli)

// rollInFlight: a segment rolled since before (a reading taken when the
// round began) whose roll has not written its checkpoint.
func (f lifecycleFolder) rollInFlight(before lifecycleFolder) bool {
	if !f.ck || len(f.bases) == 0 || len(before.bases) == 0 {
		return false
	}
	newest := f.bases[len(f.bases)-1]
	return newest > before.bases[len(before.bases)-1] && f.recoveryPoint < newest
}

// retentionInFlight: segments deleted since before whose retention pass
// has not written its checkpoint.
func (f lifecycleFolder) retentionInFlight(before lifecycleFolder) bool {
	if !f.ck || len(f.bases) == 0 || len(before.bases) == 0 {
		return false
	}
	return f.bases[0] > before.bases[0] && f.logStart < f.bases[0]
}

func (f lifecycleFolder) String() string {
	if len(f.bases) == 0 {
		return "no segments"
	}
	return fmt.Sprintf("%d segments %d..%d, checkpoint %v log start %d recovery point %d, temporary checkpoint %v",
		len(f.bases), f.bases[0], f.bases[len(f.bases)-1], f.ck, f.logStart, f.recoveryPoint, f.tmp)
}

// mustReadLifecycleFolder reads dir, retrying while the broker changes it
// under the reading.
func mustReadLifecycleFolder(t *testing.T, dir string) lifecycleFolder {
	t.Helper()
	deadline := time.Now().Add(lifecycleRoundWait)
	for {
		f, err := readLifecycleFolder(dir)
		if err == nil {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(lifecycleAimPoll) // polling the folder
	}
}

// awaitFolder polls dir until in holds of a reading, and reports it.
func awaitFolder(t *testing.T, dir, what string, in func(lifecycleFolder) bool) lifecycleFolder {
	t.Helper()
	deadline := time.Now().Add(lifecycleRoundWait)
	for {
		if f, err := readLifecycleFolder(dir); err == nil && in(f) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s seen in %s within %v", what, dir, lifecycleRoundWait)
		}
		time.Sleep(lifecycleAimPoll) // polling the folder
	}
}

// lifecycleAim is what a kill of TestKill9DuringLifecycleWork waits for.
type lifecycleAim int

const (
	aimCleaner   lifecycleAim = iota // a cleaner round writing its .cleaned files
	aimRetention                     // a retention pass in flight
	aimRoll                          // a roll in flight
	aimRandom                        // a random moment
)

func (a lifecycleAim) String() string {
	return [...]string{"aimed at a cleaner round", "aimed at a retention pass", "aimed at a roll", "at a random moment"}[a]
}

// lifecycleAims are the kills' aims in turn: of the default four, two in
// cleaner rounds, one in a retention pass and one in a roll; longer runs
// add a random moment every fifth kill.
var lifecycleAims = [...]lifecycleAim{aimCleaner, aimRetention, aimCleaner, aimRoll, aimRandom}

// lifecycleAimRetries bounds the kills added after the planned ones when
// no kill has yet landed in a roll or in a retention pass (an aimed kill
// misses when the work completes between the sighting and the signal).
const lifecycleAimRetries = 4

// lifecycleAimOf is the aim of the kill of round, or -1 when the test is
// done.
func lifecycleAimOf(round, rounds int, landedRoll, landedRetention bool) lifecycleAim {
	switch {
	case round < rounds:
		return lifecycleAims[round%len(lifecycleAims)]
	case round >= rounds+lifecycleAimRetries:
		return -1
	case !landedRetention:
		return aimRetention
	case !landedRoll:
		return aimRoll
	}
	return -1
}
