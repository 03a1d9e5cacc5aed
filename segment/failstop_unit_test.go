package segment

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// TestMemFSLosesPagesOfAFailedSync: the model the fail-stop tests rely on.
// After a failed fdatasync the unsynced bytes are gone for good: a later
// successful sync does not make them durable (only bytes written again
// are), so a log that retried the sync and acknowledged would lose data.
func TestMemFSLosesPagesOfAFailedSync(t *testing.T) {
	mem := NewMemFS()
	if err := mem.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	f, err := mem.Create("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	write := func(b string, off int64) {
		if _, err := f.WriteAt([]byte(b), off); err != nil {
			t.Fatal(err)
		}
	}
	write("durable.", 0)
	if err := f.Datasync(); err != nil {
		t.Fatal(err)
	}
	write("LOST", 8)
	mem.LoseUnsynced(f) // what an injected fdatasync failure does
	write("again", 12)
	if err := f.Datasync(); err != nil {
		t.Fatal(err)
	}
	mem.Crash()
	got, _ := mem.FileBytes("/d/f")
	if want := []byte("durable.\x00\x00\x00\x00again"); !bytes.Equal(got, want) {
		t.Fatalf("after the crash the file holds %q, want %q", got, want)
	}
}

// TestFailedSyncFailsGroupCommitWaiters: appends waiting on a group commit
// whose fdatasync fails all fail with ErrStorageFailed; none of them, and
// nothing after, is acknowledged, and a crash keeps what was acknowledged.
func TestFailedSyncFailsGroupCommitWaiters(t *testing.T) {
	const waiters = 4
	mem := NewMemFS()
	efs := newErrFS(mem, faultNone, 1)
	cfg := memConfig(efs)
	cfg.SegmentBytes = 64 << 10
	l, err := Open("/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := testFrame(1, 100, 1, 1)
	if _, err := l.Append(first); err != nil {
		t.Fatal(err)
	}
	rp := l.RecoveryPoint()
	hold, entered := make(chan struct{}), make(chan struct{})
	var once sync.Once
	efs.beforeSync = func() { once.Do(func() { close(entered); <-hold }) }
	efs.arm(faultSync, 1)
	errs := make(chan error, waiters+1)
	go func() { _, err := l.Append(testFrame(1, 100, 1, 2)); errs <- err }()
	<-entered // the leader's sync is held, with the log's lock released
	for i := 0; i < waiters; i++ {
		go func(i int) { _, err := l.Append(testFrame(1, 100, 1, uint64(10+i))); errs <- err }(i)
	}
	for l.End() < 2+waiters {
		runtime.Gosched() // until every waiter has written and waits
	}
	close(hold)
	for i := 0; i < waiters+1; i++ {
		if err := <-errs; !errors.Is(err, ErrStorageFailed) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("append waiting on the failed sync: %v", err)
		}
	}
	if l.RecoveryPoint() != rp {
		t.Fatalf("recovery point moved from %d to %d past a failed sync", rp, l.RecoveryPoint())
	}
	if _, err := l.Append(testFrame(1, 100, 1, 3)); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append after the failure: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("close of a failed log: %v", err)
	}
	mem.Crash()
	efs.disarm()
	l, err = Open("/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := readAll(t, l, 0); !bytes.HasPrefix(got, first) {
		t.Fatalf("the acknowledged append is gone after the crash (%d bytes)", len(got))
	}
}

// TestStorageFailureIsSticky: for each kind of I/O a partition does, the
// first failure takes the log offline: that operation and every one after
// it return ErrStorageFailed (wrapping the injected error), the recovery
// point stops, Close checkpoints nothing, and after a crash every
// acknowledged append is there.
func TestStorageFailureIsSticky(t *testing.T) {
	const opsMax = 64 // appends and rolls before the fault must have hit
	for k := faultKind(1); k < faultKinds; k++ {
		t.Run(k.String(), func(t *testing.T) {
			mem := NewMemFS()
			efs := newErrFS(mem, faultNone, 1)
			cfg := memConfig(efs)
			l, err := Open("/p", cfg)
			if err != nil {
				t.Fatal(err)
			}
			efs.arm(k, 2)
			var acked []byte
			var ferr error
			for i := 0; i < opsMax && ferr == nil; i++ {
				f := testFrame(2, 200, int64(i), uint64(i))
				if _, ferr = l.Append(f); ferr == nil {
					acked = append(acked, f...)
					if i%3 == 2 {
						ferr = l.Roll()
					}
				}
			}
			if !efs.hasFired() || !errors.Is(ferr, ErrStorageFailed) ||
				!(errors.Is(ferr, syscall.EIO) || errors.Is(ferr, syscall.ENOSPC)) {
				t.Fatalf("fired %v, error %v", efs.hasFired(), ferr)
			}
			if !errors.Is(l.Err(), ErrStorageFailed) {
				t.Fatalf("Err after the failure: %v", l.Err())
			}
			rp := l.RecoveryPoint()
			_, appendErr := l.Append(testFrame(1, 10, 1, 99))
			_, readErr := l.Read(0, 100, -1)
			_, _, rollErr := l.BeginRoll()
			_, fileErr := l.DataFile(l.Core().Active())
			_, spanErr := l.SpanFD(Span{Segment: l.Core().Active()})
			for name, err := range map[string]error{
				"append": appendErr, "flush": l.Flush(), "roll": l.Roll(), "truncate": l.Truncate(0),
				"delete": l.DeleteRecordsBefore(0), "retention": l.ApplyRetention(0), "read": readErr,
				"begin roll": rollErr, "data file": fileErr, "span fd": spanErr, "close": l.Close(),
			} {
				if !errors.Is(err, ErrStorageFailed) {
					t.Errorf("%s after the failure: %v", name, err)
				}
			}
			if l.RecoveryPoint() != rp {
				t.Fatalf("recovery point moved from %d to %d after the failure", rp, l.RecoveryPoint())
			}
			mem.Crash()
			efs.disarm()
			l, err = Open("/p", cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if got := readAll(t, l, 0); !bytes.HasPrefix(got, acked) {
				t.Fatalf("after the crash the log holds %d bytes, not the %d acknowledged", len(got), len(acked))
			}
		})
	}
}

// TestCheckpointDuringRollTrustsNoUntrimmedSegment: a ring driver's roll is
// BeginRoll, syncs in flight, FinishRoll; a deletion meanwhile writes a
// checkpoint. Every frame of the old segment is durable already (a group
// sync), its trim to size is not: the checkpoint must not let recovery
// trust the old segment at its preallocated length after a crash.
func TestCheckpointDuringRollTrustsNoUntrimmedSegment(t *testing.T) {
	mem := NewMemFS()
	cfg := memConfig(mem)
	cfg.SegmentBytes = 64 << 10
	l, err := Open("/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := 0; i < 5; i++ {
		f := testFrame(1, 100, 1, uint64(i))
		if _, err := l.Append(f); err != nil {
			t.Fatal(err)
		}
		want = append(want, f...)
	}
	if l.RecoveryPoint() != l.End() {
		t.Fatalf("recovery point %d, end %d", l.RecoveryPoint(), l.End())
	}
	if _, _, err := l.BeginRoll(); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteRecordsBefore(0); err != nil {
		t.Fatal(err)
	}
	mem.Crash() // before the roll's syncs complete
	l, err = Open("/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := readAll(t, l, 0); !bytes.Equal(got, want) {
		t.Fatalf("after the crash the log holds %d bytes, want %d", len(got), len(want))
	}
}

// TestFailedRollSyncKeepsRecoveryPoint: a roll whose fdatasync of the old
// segment fails leaves the recovery point where it was, and no later flush
// can sync the new segment and move it past the old one's unsynced data.
func TestFailedRollSyncKeepsRecoveryPoint(t *testing.T) {
	mem := NewMemFS()
	efs := newErrFS(mem, faultNone, 1)
	cfg := memConfig(efs)
	cfg.SegmentBytes = 64 << 10
	cfg.Flush = FlushNever // only the roll syncs
	l, err := Open("/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := l.Append(testFrame(1, 100, 1, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	rp := l.RecoveryPoint()
	efs.arm(faultSync, 1)
	if err := l.Roll(); !errors.Is(err, ErrStorageFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("roll with a failing sync: %v", err)
	}
	if err := l.Flush(); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("flush after the failed roll: %v", err)
	}
	if _, err := l.Append(testFrame(1, 100, 1, 9)); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append after the failed roll: %v", err)
	}
	if l.RecoveryPoint() != rp {
		t.Fatalf("recovery point moved from %d to %d past a failed roll sync", rp, l.RecoveryPoint())
	}
	if err := l.Close(); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("close: %v", err)
	}
	mem.Crash()
	efs.disarm()
	l, err = Open("/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.End() != rp {
		t.Fatalf("after the crash the log ends at %d; only %d was synced", l.End(), rp)
	}
}
