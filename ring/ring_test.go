package ring

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSetupShardFlagsAndProbe(t *testing.T) {
	r := newShardRing(t, 64)
	if r.SQEntries() != 64 || r.CQEntries() != 256 {
		t.Fatalf("entries sq=%d cq=%d, want 64/256", r.SQEntries(), r.CQEntries())
	}
	if r.Flags()&(SetupSingleIssuer|SetupDeferTaskrun|SetupCQSize) != SetupSingleIssuer|SetupDeferTaskrun|SetupCQSize {
		t.Fatalf("flags %#x lack the shard flags", r.Flags())
	}
	if r.Features()&FeatSingleMmap == 0 || r.Features()&FeatExtArg == 0 {
		t.Fatalf("features %#x: want single mmap and ext arg", r.Features())
	}
	p, err := r.Probe()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []uint8{OpNop, OpAccept, OpConnect, OpRecv, OpSend, OpSendZC, OpRead, OpWrite,
		OpReadv, OpWritev, OpFsync, OpFallocate, OpSplice, OpMsgRing, OpTimeout, OpLinkTimeout,
		OpAsyncCancel, OpClose, OpShutdown, OpReadFixed, OpWriteFixed} {
		if !p.Supported(op) {
			t.Errorf("probe: opcode %d unsupported", op)
		}
	}
	if p.Supported(255) {
		t.Error("probe claims opcode 255")
	}
}

func TestSetupVariants(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, flags := range []uint32{0, SetupNoSQArray, ShardFlags | SetupNoSQArray, SetupSQPoll} {
		r, err := New(8, Options{Flags: flags, SQThreadIdleMs: 10})
		if err != nil {
			t.Fatalf("flags %#x: %v", flags, err)
		}
		for i := range 20 { // more than the ring holds: wraps the indexes
			sqe := r.GetSQE()
			sqe.PrepNop()
			sqe.SetUserData(uint64(i))
			c := reap(t, r, 1)[0]
			if c.UserData != uint64(i) || c.Res != 0 {
				t.Fatalf("flags %#x: nop %d completed as %+v", flags, i, c)
			}
		}
		r.Close()
	}
}

func TestSetupRejectsBadSizes(t *testing.T) {
	for _, n := range []uint32{0, MaxEntries + 1} {
		if _, err := New(n, Options{}); !errors.Is(err, unix.EINVAL) {
			t.Errorf("New(%d): %v, want EINVAL", n, err)
		}
	}
	if _, err := New(8, Options{CQEntries: MaxCQEntries + 1}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("CQEntries too large: %v, want EINVAL", err)
	}
	// A flag the kernel does not know comes back as its errno.
	if _, err := New(8, Options{Flags: 1 << 30}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unknown flag: %v, want EINVAL", err)
	}
}

func countMappings(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "io_uring")
}

func TestCloseLeaksNothing(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fds, maps := openFDs(t), countMappings(t)
	for range 50 {
		r, err := New(32, Options{Flags: ShardFlags, CQEntries: 128})
		if err != nil {
			t.Fatal(err)
		}
		br, err := r.NewBufRing(1, 8, 256)
		if err != nil {
			t.Fatal(err)
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
	}
	if got := openFDs(t); got != fds {
		t.Fatalf("open fds %d -> %d", fds, got)
	}
	if got := countMappings(t); got != maps {
		t.Fatalf("io_uring mappings %d -> %d", maps, got)
	}
}

func TestNopBatchOneEnter(t *testing.T) {
	r := newShardRing(t, 128)
	for i := range 128 {
		sqe := mustSQE(t, r)
		sqe.PrepNop()
		sqe.SetUserData(uint64(i) + 1000)
	}
	if r.GetSQE() != nil {
		t.Fatal("GetSQE on a full queue returned a slot")
	}
	n, err := r.Submit()
	if err != nil || n != 128 {
		t.Fatalf("Submit: %d, %v; want 128 in one call", n, err)
	}
	got := byUserData(t, reap(t, r, 128))
	for i := range 128 {
		if c, ok := got[uint64(i)+1000]; !ok || c.Res != 0 {
			t.Fatalf("nop %d: %+v present=%v", i, c, ok)
		}
	}
	if c, err := r.PeekCQE(); err != nil || c != nil {
		t.Fatalf("extra completion %+v, %v", c, err)
	}
}

func TestPeekBatchAndForEach(t *testing.T) {
	r := newShardRing(t, 32)
	for i := range 10 {
		sqe := mustSQE(t, r)
		sqe.PrepNop()
		sqe.SetUserData(uint64(i))
	}
	if _, err := r.SubmitAndWait(10); err != nil {
		t.Fatal(err)
	}
	batch := make([]*CQE, 4)
	if n := r.PeekBatchCQE(batch); n != 4 || batch[0].UserData != 0 || batch[3].UserData != 3 {
		t.Fatalf("PeekBatchCQE: n=%d", n)
	}
	r.CQAdvance(4)
	var seen []uint64
	if n := r.ForEachCQE(func(c *CQE) { seen = append(seen, c.UserData) }); n != 6 {
		t.Fatalf("ForEachCQE saw %d, want 6", n)
	}
	for i, v := range seen {
		if v != uint64(i+4) {
			t.Fatalf("order: %v", seen)
		}
	}
	if r.CQReady() != 0 {
		t.Fatalf("CQReady %d after ForEachCQE", r.CQReady())
	}
}

func TestErrorsAreErrno(t *testing.T) {
	r := newShardRing(t, 8)
	buf := make([]byte, 8)
	sqe := mustSQE(t, r)
	sqe.PrepRead(1<<20, buf, 0) // no such descriptor
	c := reap(t, r, 1)[0]
	if !errors.Is(c.Err(), unix.EBADF) {
		t.Fatalf("read of a bad fd: %v, want EBADF", c.Err())
	}
	runtime.KeepAlive(buf)
}

func TestFileReadWriteFsyncFallocate(t *testing.T) {
	r := newShardRing(t, 16)
	f := tempFile(t)
	fd := int(f.Fd())

	sqe := mustSQE(t, r)
	sqe.PrepFallocate(fd, 0, 0, 1<<20)
	wantRes(t, "fallocate", reap(t, r, 1)[0], 0)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != 1<<20 || st.Blocks*512 < 1<<20 {
		t.Fatalf("after fallocate: size %d blocks %d err %v", st.Size, st.Blocks, err)
	}

	data := bytes.Repeat([]byte("strata!"), 100)
	sqe = mustSQE(t, r)
	sqe.PrepWrite(fd, data, 4096)
	sqe.SetFlags(SQEIOLink)
	sqe = mustSQE(t, r)
	sqe.PrepFsync(fd, FsyncDatasync)
	cqes := reap(t, r, 2)
	wantRes(t, "write", cqes[0], int32(len(data)))
	wantRes(t, "fdatasync", cqes[1], 0)

	got := make([]byte, len(data))
	sqe = mustSQE(t, r)
	sqe.PrepRead(fd, got, 4096)
	wantRes(t, "read", reap(t, r, 1)[0], int32(len(data)))
	if !bytes.Equal(got, data) {
		t.Fatal("read back different bytes")
	}

	a, b := []byte("hello, "), []byte("vectored world")
	iov := []unix.Iovec{{Base: &a[0]}, {Base: &b[0]}}
	iov[0].SetLen(len(a))
	iov[1].SetLen(len(b))
	sqe = mustSQE(t, r)
	sqe.PrepWritev(fd, iov, 0)
	sqe = mustSQE(t, r)
	sqe.PrepFsync(fd, 0)
	cqes = reap(t, r, 2)
	wantRes(t, "writev", cqes[0], int32(len(a)+len(b)))
	wantRes(t, "fsync", cqes[1], 0)

	ra, rb := make([]byte, len(a)), make([]byte, len(b))
	riov := []unix.Iovec{{Base: &ra[0]}, {Base: &rb[0]}}
	riov[0].SetLen(len(ra))
	riov[1].SetLen(len(rb))
	sqe = mustSQE(t, r)
	sqe.PrepReadv(fd, riov, 0)
	wantRes(t, "readv", reap(t, r, 1)[0], int32(len(a)+len(b)))
	if string(ra)+string(rb) != "hello, vectored world" {
		t.Fatalf("readv got %q%q", ra, rb)
	}
	runtime.KeepAlive(iov)
	runtime.KeepAlive(riov)
}

func TestFixedFilesAndRegisteredBuffers(t *testing.T) {
	r := newShardRing(t, 16)
	rd, wr := pipe(t)
	if err := r.RegisterFiles([]int32{-1, int32(wr), int32(rd)}); err != nil {
		t.Fatal(err)
	}
	mem, err := AllocBuffers(2 * 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeBuffers(mem)
	out, in := mem[:4096], mem[4096:]
	if err := r.RegisterBuffers([][]byte{out, in}); err != nil {
		t.Fatal(err)
	}
	copy(out, "fixed file, fixed buffer")
	sqe := mustSQE(t, r)
	sqe.PrepWriteFixed(1, out[:24], ^uint64(0), 0) // slot 1 = wr
	sqe.SetFlags(SQEFixedFile)
	wantRes(t, "write fixed", reap(t, r, 1)[0], 24)
	sqe = mustSQE(t, r)
	sqe.PrepReadFixed(2, in[:24], ^uint64(0), 1)
	sqe.SetFlags(SQEFixedFile)
	wantRes(t, "read fixed", reap(t, r, 1)[0], 24)
	if string(in[:24]) != "fixed file, fixed buffer" {
		t.Fatalf("got %q", in[:24])
	}
	// Replace slot 0 and use it.
	if n, err := r.UpdateFiles(0, []int32{int32(wr)}); err != nil || n != 1 {
		t.Fatalf("UpdateFiles: %d %v", n, err)
	}
	sqe = mustSQE(t, r)
	sqe.PrepWrite(0, []byte("x"), ^uint64(0))
	sqe.SetFlags(SQEFixedFile)
	wantRes(t, "write via updated slot", reap(t, r, 1)[0], 1)
	if err := r.UnregisterBuffers(); err != nil {
		t.Fatal(err)
	}
	if err := r.UnregisterFiles(); err != nil {
		t.Fatal(err)
	}
}

func TestRegisteredRingFD(t *testing.T) {
	r := newShardRing(t, 8)
	if err := r.RegisterRingFD(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sqe := mustSQE(t, r)
		sqe.PrepNop()
		sqe.SetUserData(uint64(i))
	}
	byUserData(t, reap(t, r, 3))
}
