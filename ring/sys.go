package ring

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel ABI of io_uring (include/uapi/linux/io_uring.h). Only what Strata
// uses is declared; the values are the kernel's and never change.

// Setup flags (io_uring_params.flags).
const (
	SetupIOPoll           = 1 << 0
	SetupSQPoll           = 1 << 1
	SetupSQAff            = 1 << 2
	SetupCQSize           = 1 << 3
	SetupClamp            = 1 << 4
	SetupAttachWQ         = 1 << 5
	SetupRDisabled        = 1 << 6
	SetupSubmitAll        = 1 << 7
	SetupCoopTaskrun      = 1 << 8
	SetupTaskrunFlag      = 1 << 9
	SetupSQE128           = 1 << 10
	SetupCQE32            = 1 << 11
	SetupSingleIssuer     = 1 << 12
	SetupDeferTaskrun     = 1 << 13
	SetupNoMmap           = 1 << 14
	SetupRegisteredFDOnly = 1 << 15
	SetupNoSQArray        = 1 << 16
)

// Feature flags (io_uring_params.features), reported by the kernel.
const (
	FeatSingleMmap     = 1 << 0
	FeatNoDrop         = 1 << 1
	FeatSubmitStable   = 1 << 2
	FeatRWCurPos       = 1 << 3
	FeatCurPersonality = 1 << 4
	FeatFastPoll       = 1 << 5
	FeatPoll32Bits     = 1 << 6
	FeatSQPollNonfixed = 1 << 7
	FeatExtArg         = 1 << 8
	FeatNativeWorkers  = 1 << 9
	FeatRsrcTags       = 1 << 10
	FeatCQESkip        = 1 << 11
	FeatLinkedFile     = 1 << 12
	FeatRegRegRing     = 1 << 13
)

// Opcodes.
const (
	OpNop            uint8 = 0
	OpReadv          uint8 = 1
	OpWritev         uint8 = 2
	OpFsync          uint8 = 3
	OpReadFixed      uint8 = 4
	OpWriteFixed     uint8 = 5
	OpPollAdd        uint8 = 6
	OpPollRemove     uint8 = 7
	OpSyncFileRange  uint8 = 8
	OpSendmsg        uint8 = 9
	OpRecvmsg        uint8 = 10
	OpTimeout        uint8 = 11
	OpTimeoutRemove  uint8 = 12
	OpAccept         uint8 = 13
	OpAsyncCancel    uint8 = 14
	OpLinkTimeout    uint8 = 15
	OpConnect        uint8 = 16
	OpFallocate      uint8 = 17
	OpOpenat         uint8 = 18
	OpClose          uint8 = 19
	OpFilesUpdate    uint8 = 20
	OpStatx          uint8 = 21
	OpRead           uint8 = 22
	OpWrite          uint8 = 23
	OpFadvise        uint8 = 24
	OpMadvise        uint8 = 25
	OpSend           uint8 = 26
	OpRecv           uint8 = 27
	OpOpenat2        uint8 = 28
	OpEpollCtl       uint8 = 29
	OpSplice         uint8 = 30
	OpProvideBufs    uint8 = 31
	OpRemoveBufs     uint8 = 32
	OpTee            uint8 = 33
	OpShutdown       uint8 = 34
	OpRenameat       uint8 = 35
	OpUnlinkat       uint8 = 36
	OpMkdirat        uint8 = 37
	OpSymlinkat      uint8 = 38
	OpLinkat         uint8 = 39
	OpMsgRing        uint8 = 40
	OpFsetxattr      uint8 = 41
	OpSetxattr       uint8 = 42
	OpFgetxattr      uint8 = 43
	OpGetxattr       uint8 = 44
	OpSocket         uint8 = 45
	OpUringCmd       uint8 = 46
	OpSendZC         uint8 = 47
	OpSendmsgZC      uint8 = 48
	OpReadMultishot  uint8 = 49
	OpWaitid         uint8 = 50
	OpFutexWait      uint8 = 51
	OpFutexWake      uint8 = 52
	OpFutexWaitv     uint8 = 53
	OpFixedFDInstall uint8 = 54
	OpFtruncate      uint8 = 55
	OpBind           uint8 = 56
	OpListen         uint8 = 57
	OpRecvZC         uint8 = 58
	OpEpollWait      uint8 = 59
	OpReadvFixed     uint8 = 60
	OpWritevFixed    uint8 = 61
	OpPipe           uint8 = 62
)

// SQE flags (sqe.flags).
const (
	SQEFixedFile      uint8 = 1 << 0
	SQEIODrain        uint8 = 1 << 1
	SQEIOLink         uint8 = 1 << 2
	SQEIOHardlink     uint8 = 1 << 3
	SQEAsync          uint8 = 1 << 4
	SQEBufferSelect   uint8 = 1 << 5
	SQECQESkipSuccess uint8 = 1 << 6
)

// CQE flags (cqe.flags).
const (
	CQEFBuffer       uint32 = 1 << 0
	CQEFMore         uint32 = 1 << 1
	CQEFSockNonempty uint32 = 1 << 2
	CQEFNotif        uint32 = 1 << 3
	CQEFBufMore      uint32 = 1 << 4

	// CQEBufferShift is where the buffer id sits in cqe.flags when
	// CQEFBuffer is set.
	CQEBufferShift = 16
)

// io_uring_enter flags.
const (
	enterGetEvents      = 1 << 0
	enterSQWakeup       = 1 << 1
	enterSQWait         = 1 << 2
	enterExtArg         = 1 << 3
	enterRegisteredRing = 1 << 4
)

// sq_ring flags, written by the kernel.
const (
	sqNeedWakeup = 1 << 0
	sqCQOverflow = 1 << 1
	sqTaskrun    = 1 << 2
)

// mmap offsets.
const (
	offSQRing   = 0
	offCQRing   = 0x8000000
	offSQEs     = 0x10000000
	offPbufRing = 0x80000000
)

// Per-opcode flags.
const (
	FsyncDatasync = 1 << 0

	TimeoutAbs          = 1 << 0
	TimeoutUpdate       = 1 << 1
	TimeoutBoottime     = 1 << 2
	TimeoutRealtime     = 1 << 3
	TimeoutLinkUpdate   = 1 << 4
	TimeoutETimeSuccess = 1 << 5
	TimeoutMultishot    = 1 << 6

	AsyncCancelAll      = 1 << 0
	AsyncCancelFD       = 1 << 1
	AsyncCancelAny      = 1 << 2
	AsyncCancelFDFixed  = 1 << 3
	AsyncCancelUserdata = 1 << 4
	AsyncCancelOp       = 1 << 5

	// Stored in sqe.ioprio for accept.
	AcceptMultishot = 1 << 0

	// Stored in sqe.ioprio for send/recv.
	RecvSendPollFirst = 1 << 0
	RecvMultishot     = 1 << 1
	RecvSendFixedBuf  = 1 << 2
	SendZCReportUsage = 1 << 3
	RecvSendBundle    = 1 << 4

	// MSG_RING commands (sqe.addr) and flags (sqe.msg_ring_flags).
	msgData          = 0
	MsgRingCQESkip   = 1 << 0
	MsgRingFlagsPass = 1 << 1

	// SpliceFDInFixed marks splice's input descriptor as a fixed file.
	SpliceFDInFixed = 1 << 31

	// fileIndexAlloc asks the kernel to pick a free fixed-file slot.
	FileIndexAlloc = ^uint32(0)
)

// Register opcodes (io_uring_register).
const (
	registerBuffers     = 0
	unregisterBuffers   = 1
	registerFiles       = 2
	unregisterFiles     = 3
	registerEventFD     = 4
	unregisterEventFD   = 5
	registerFilesUpdate = 6
	registerProbe       = 8
	registerRingFDs     = 20
	unregisterRingFDs   = 21
	registerPbufRing    = 22
	unregisterPbufRing  = 23
)

// sqRingOffsets is struct io_sqring_offsets.
type sqRingOffsets struct {
	head        uint32
	tail        uint32
	ringMask    uint32
	ringEntries uint32
	flags       uint32
	dropped     uint32
	array       uint32
	resv1       uint32
	userAddr    uint64
}

// cqRingOffsets is struct io_cqring_offsets.
type cqRingOffsets struct {
	head        uint32
	tail        uint32
	ringMask    uint32
	ringEntries uint32
	overflow    uint32
	cqes        uint32
	flags       uint32
	resv1       uint32
	userAddr    uint64
}

// params is struct io_uring_params.
type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFD         uint32
	resv         [3]uint32
	sqOff        sqRingOffsets
	cqOff        cqRingOffsets
}

// SQE is struct io_uring_sqe (64 bytes). Fields that the kernel reads under
// several names are named for their most common use; the prep helpers set
// them for each opcode.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IOPrio      uint16
	FD          int32
	Off         uint64 // also addr2
	Addr        uint64 // also splice_off_in
	Len         uint32
	OpFlags     uint32 // rw_flags, fsync_flags, timeout_flags, msg_flags, ...
	UserData    uint64
	BufIndex    uint16 // also buf_group
	Personality uint16
	SpliceFDIn  int32 // also file_index, addr_len
	Addr3       uint64
	pad2        uint64
}

// CQE is struct io_uring_cqe (16 bytes).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// BufferID is the provided-buffer id a completion consumed; valid when
// Flags has CQEFBuffer.
func (c CQE) BufferID() uint16 { return uint16(c.Flags >> CQEBufferShift) }

// More reports whether a multishot request stays armed after this CQE.
func (c CQE) More() bool { return c.Flags&CQEFMore != 0 }

// Notif reports whether this CQE is a zero-copy send's notification.
func (c CQE) Notif() bool { return c.Flags&CQEFNotif != 0 }

// getEventsArg is struct io_uring_getevents_arg, passed with enterExtArg.
type getEventsArg struct {
	sigmask     uint64
	sigmaskSize uint32
	minWaitUsec uint32
	ts          uint64
}

// bufReg is struct io_uring_buf_reg.
type bufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

// buf is struct io_uring_buf, one entry of a provided buffer ring.
type buf struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16 // in entry 0, the ring's tail
}

// filesUpdate is struct io_uring_files_update.
type filesUpdate struct {
	offset uint32
	resv   uint32
	fds    uint64
}

// probeOp is struct io_uring_probe_op.
type probeOp struct {
	op    uint8
	resv  uint8
	flags uint16
	resv2 uint32
}

// probeHeader is the fixed head of struct io_uring_probe; probeOpCount
// entries of probeOp follow it.
type probeHeader struct {
	lastOp uint8
	opsLen uint8
	resv   uint16
	resv2  [3]uint32
}

const (
	probeOpCount     = 256
	probeOpSupported = 1 << 0
)

// Layout checks: a wrong size here would corrupt every exchange with the
// kernel, so they fail the build.
var (
	_ [64 - unsafe.Sizeof(SQE{})]byte
	_ [unsafe.Sizeof(SQE{}) - 64]byte
	_ [16 - unsafe.Sizeof(CQE{})]byte
	_ [unsafe.Sizeof(CQE{}) - 16]byte
	_ [120 - unsafe.Sizeof(params{})]byte
	_ [unsafe.Sizeof(params{}) - 120]byte
	_ [24 - unsafe.Sizeof(getEventsArg{})]byte
	_ [40 - unsafe.Sizeof(bufReg{})]byte
	_ [16 - unsafe.Sizeof(buf{})]byte
	_ [16 - unsafe.Sizeof(probeHeader{})]byte
	_ [8 - unsafe.Sizeof(probeOp{})]byte
)

// Err is the completion's error as a unix.Errno (res < 0), or nil.
func (c CQE) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return unix.Errno(-c.Res)
}
