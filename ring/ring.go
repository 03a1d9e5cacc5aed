package ring

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Limits of a ring, as named constants: the kernel caps entries at 32768
// (IORING_MAX_ENTRIES) and the completion queue at twice that per entry.
const (
	MaxEntries   = 32768
	MaxCQEntries = 2 * MaxEntries
)

// ShardFlags are the setup flags a thread-per-core shard wants: one thread
// submits (SINGLE_ISSUER), completions run only when that thread asks for
// them (DEFER_TASKRUN), no interrupting IPIs (COOP_TASKRUN, TASKRUN_FLAG to
// learn when work is pending), and a failing SQE does not stop the rest of
// the batch (SUBMIT_ALL).
const ShardFlags = SetupSingleIssuer | SetupDeferTaskrun | SetupCoopTaskrun |
	SetupTaskrunFlag | SetupSubmitAll

// Options configure New.
type Options struct {
	// Flags are Setup* flags. SetupCQSize is added when CQEntries is set.
	Flags uint32
	// CQEntries sizes the completion queue (0: the kernel's default, twice
	// the submission queue). Multishot receive and accept can post many
	// CQEs per SQE, so a shard asks for more.
	CQEntries uint32
	// SQThreadIdleMs and SQThreadCPU apply with SetupSQPoll.
	SQThreadIdleMs uint32
	SQThreadCPU    uint32
}

// Ring is one io_uring instance: a submission queue and a completion queue
// shared with the kernel through one mapping (or two on kernels without
// IORING_FEAT_SINGLE_MMAP) plus the SQE array.
//
// A Ring is not safe for concurrent use. With SetupSingleIssuer (part of
// ShardFlags) the kernel also requires that every submission comes from the
// thread that created the ring, so the owning goroutine must call
// runtime.LockOSThread before New and keep the lock while the ring lives.
type Ring struct {
	fd       int
	flags    uint32
	features uint32

	sq submissionQueue
	cq completionQueue

	ringMem []byte // SQ ring (and CQ ring with single mmap)
	cqMem   []byte // CQ ring when mapped apart, else nil
	sqeMem  []byte

	enterFlags uint32 // enterRegisteredRing when the ring fd is registered
	enterFD    int    // the fd or registered index passed to io_uring_enter

	// arg and ts are the EXT_ARG block and timespec a timed wait hands to
	// the kernel; kept here so they never escape to the heap per call.
	arg getEventsArg
	ts  unix.Timespec

	closed bool
}

type submissionQueue struct {
	khead    *uint32
	ktail    *uint32
	kflags   *uint32
	kdropped *uint32
	mask     uint32
	entries  uint32
	sqes     []SQE

	// sqeHead..sqeTail are SQEs handed out but not yet published to the
	// kernel's tail.
	sqeHead uint32
	sqeTail uint32
}

type completionQueue struct {
	khead     *uint32
	ktail     *uint32
	koverflow *uint32
	mask      uint32
	entries   uint32
	cqes      []CQE
}

// New sets up a ring with entries submission slots (rounded up to a power of
// two by the kernel) and maps it.
func New(entries uint32, opts Options) (*Ring, error) {
	if entries == 0 || entries > MaxEntries {
		return nil, fmt.Errorf("ring: entries %d not in [1, %d]: %w", entries, MaxEntries, unix.EINVAL)
	}
	var p params
	p.flags = opts.Flags
	if opts.CQEntries != 0 {
		if opts.CQEntries > MaxCQEntries {
			return nil, fmt.Errorf("ring: cq entries %d above %d: %w", opts.CQEntries, MaxCQEntries, unix.EINVAL)
		}
		p.flags |= SetupCQSize
		p.cqEntries = opts.CQEntries
	}
	p.sqThreadIdle = opts.SQThreadIdleMs
	p.sqThreadCPU = opts.SQThreadCPU
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, errno
	}
	r := &Ring{fd: int(fd), enterFD: int(fd), flags: p.flags, features: p.features}
	if err := r.mapRings(&p); err != nil {
		unix.Close(r.fd)
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings(p *params) error {
	sqSize := uintptr(p.sqOff.array) + uintptr(p.sqEntries)*4
	if p.flags&SetupNoSQArray != 0 {
		// Without the indirection array the SQ ring ends at its flags and
		// counters; the kernel reports no array offset.
		sqSize = uintptr(p.sqOff.userAddr)
		if sqSize == 0 {
			sqSize = uintptr(p.sqOff.dropped) + 4
		}
	}
	cqSize := uintptr(p.cqOff.cqes) + uintptr(p.cqEntries)*unsafe.Sizeof(CQE{})
	single := p.features&FeatSingleMmap != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	const prot = unix.PROT_READ | unix.PROT_WRITE
	const flags = unix.MAP_SHARED | unix.MAP_POPULATE
	mem, err := unix.Mmap(r.fd, offSQRing, int(sqSize), prot, flags)
	if err != nil {
		return fmt.Errorf("ring: mmap sq ring: %w", err)
	}
	r.ringMem = mem
	cqMem := mem
	if !single {
		cqMem, err = unix.Mmap(r.fd, offCQRing, int(cqSize), prot, flags)
		if err != nil {
			r.unmap()
			return fmt.Errorf("ring: mmap cq ring: %w", err)
		}
		r.cqMem = cqMem
	}
	sqeBytes := int(p.sqEntries) * int(unsafe.Sizeof(SQE{}))
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeBytes, prot, flags)
	if err != nil {
		r.unmap()
		return fmt.Errorf("ring: mmap sqes: %w", err)
	}

	sq := &r.sq
	sq.khead = u32At(mem, p.sqOff.head)
	sq.ktail = u32At(mem, p.sqOff.tail)
	sq.kflags = u32At(mem, p.sqOff.flags)
	sq.kdropped = u32At(mem, p.sqOff.dropped)
	sq.mask = *u32At(mem, p.sqOff.ringMask)
	sq.entries = *u32At(mem, p.sqOff.ringEntries)
	sq.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), sq.entries)
	if p.flags&SetupNoSQArray == 0 {
		// An identity mapping set once: SQEs are always consumed in order,
		// so the indirection array never changes afterwards.
		array := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[p.sqOff.array])), sq.entries)
		for i := range array {
			array[i] = uint32(i)
		}
	}
	sq.sqeHead = atomic.LoadUint32(sq.khead)
	sq.sqeTail = sq.sqeHead

	cq := &r.cq
	cq.khead = u32At(cqMem, p.cqOff.head)
	cq.ktail = u32At(cqMem, p.cqOff.tail)
	cq.koverflow = u32At(cqMem, p.cqOff.overflow)
	cq.mask = *u32At(cqMem, p.cqOff.ringMask)
	cq.entries = *u32At(cqMem, p.cqOff.ringEntries)
	cq.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&cqMem[p.cqOff.cqes])), cq.entries)
	return nil
}

func u32At(mem []byte, off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&mem[off]))
}

func (r *Ring) unmap() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	if r.cqMem != nil {
		unix.Munmap(r.cqMem)
		r.cqMem = nil
	}
	if r.ringMem != nil {
		unix.Munmap(r.ringMem)
		r.ringMem = nil
	}
	r.sq = submissionQueue{}
	r.cq = completionQueue{}
}

// Close unmaps the rings and closes the ring descriptor; the kernel cancels
// whatever is still in flight. Buffer rings registered on it must be closed
// by their owner (BufRing.Close) before or after; their memory is theirs.
func (r *Ring) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.unmap()
	return unix.Close(r.fd)
}

// FD is the ring's file descriptor (the target of a MSG_RING from another
// ring).
func (r *Ring) FD() int { return r.fd }

// Flags are the setup flags the ring was created with.
func (r *Ring) Flags() uint32 { return r.flags }

// Features are the IORING_FEAT_* bits the kernel reported.
func (r *Ring) Features() uint32 { return r.features }

// SQEntries and CQEntries are the queue sizes the kernel granted.
func (r *Ring) SQEntries() uint32 { return r.sq.entries }

// CQEntries is the completion queue size the kernel granted.
func (r *Ring) CQEntries() uint32 { return r.cq.entries }
