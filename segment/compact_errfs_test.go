package segment

import (
	"errors"
	"strings"
	"testing"
)

// TestCompactStorageFaults fails each kind of operation (create, write,
// short write, fdatasync, truncate, rename, folder fsync) at each of its
// occurrences in a compaction round. A fault while the cleaned files are
// written (Build) leaves the log as it was and usable: nothing it serves
// was touched, and the half-written files are removed. A fault once the
// swap began (a rename or folder fsync, or the cleaner's checkpoint)
// takes the log offline (fail-stop): the folder's state is then unknown,
// and only the next open, which finishes or undoes the swap, may say what
// the log holds; after a crash it holds each segment's old or new
// records.
func TestCompactStorageFaults(t *testing.T) {
	now := int64(1000)
	cc := compactConfig()
	ref := NewMemFS()
	_, l := crashWorkload(t, ref, &now)
	before := readRecords(t, l)
	bases := l.SegmentBases()
	end := l.End()
	if _, err := l.Compact(cc, now, -1); err != nil {
		t.Fatal(err)
	}
	after := readRecords(t, l)
	l.Close()

	for kind := faultSync; kind < faultKinds; kind++ {
		if kind == faultAllocate {
			continue // the cleaner allocates nothing: it writes whole files
		}
		fired := 0
		for nth := 1; ; nth++ {
			mem := NewMemFS()
			efs := newErrFS(mem, faultNone, 0)
			_, l := crashWorkload(t, efs, &now)
			efs.arm(kind, nth)
			_, err := l.Compact(cc, now, -1)
			if !efs.hasFired() {
				if err != nil {
					t.Fatalf("%v #%d: round failed without a fault: %v", kind, nth, err)
				}
				l.Close()
				break
			}
			fired++
			on := efs.firedOnFile()
			if err == nil {
				t.Fatalf("%v #%d on %s: the round reported success", kind, nth, on)
			}
			efs.disarm()
			inBuild := kind != faultRename && strings.HasSuffix(on, cleanedSuffix)
			if inBuild {
				if l.Err() != nil {
					t.Fatalf("%v #%d on %s: a fault writing cleaned files took the log offline: %v", kind, nth, on, l.Err())
				}
				sameRecords(t, kind.String()+" in build", readRecords(t, l), append([]kv(nil), before...))
				for _, e := range mustReadDir(t, mem) {
					if strings.HasSuffix(e, cleanedSuffix) || strings.HasSuffix(e, swapSuffix) {
						t.Fatalf("%v #%d: %s left behind", kind, nth, e)
					}
				}
				if _, err := l.Append(keyedFrame(t, 0, []kv{{key: key(1), value: []byte("x")}})); err != nil {
					t.Fatalf("%v #%d: append after a failed round: %v", kind, nth, err)
				}
				if _, err := l.Compact(cc, now, -1); err != nil {
					t.Fatalf("%v #%d: the next round: %v", kind, nth, err)
				}
				l.Close()
				continue
			}
			if !errors.Is(l.Err(), ErrStorageFailed) {
				t.Fatalf("%v #%d on %s: a fault in the swap left the log online: %v", kind, nth, on, err)
			}
			if _, err := l.Append(keyedFrame(t, 0, []kv{{key: key(1), value: []byte("x")}})); !errors.Is(err, ErrStorageFailed) {
				t.Fatalf("%v #%d: offline log took an append: %v", kind, nth, err)
			}
			l.Close()
			mem.Crash()
			l2, err := Open("/p", compactLogConfig(mem, &now))
			if err != nil {
				t.Fatalf("%v #%d on %s: reopen: %v", kind, nth, on, err)
			}
			got := readRecords(t, l2)
			for i, b := range bases {
				next := end
				if i+1 < len(bases) {
					next = bases[i+1]
				}
				g := rangeRecords(got, b, next)
				if !recordsEqual(g, rangeRecords(before, b, next)) && !recordsEqual(g, rangeRecords(after, b, next)) {
					t.Fatalf("%v #%d on %s: segment %d holds %v", kind, nth, on, b, g)
				}
			}
			l2.Close()
		}
		if fired == 0 && kind != faultTruncate && kind != faultShortWrite {
			t.Fatalf("no %v fault fired in a round", kind)
		}
	}
}

func mustReadDir(t *testing.T, mem *MemFS) []string {
	t.Helper()
	ents, err := mem.ReadDir("/p")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name)
	}
	return out
}
