package ring

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Prep helpers fill a zeroed SQE (from GetSQE) for one operation, as
// liburing's io_uring_prep_* do. They never allocate.
//
// Memory an SQE points at (buffers, iovecs, sockaddrs, timespecs) must stay
// reachable and unmoved until the kernel is done with it: until submission
// for what the kernel copies at prep time (timespecs, a connect address),
// until the completion for everything else. Go never moves heap objects;
// buffers the kernel writes into on a hot path belong off the Go heap
// (AllocBuffers). Never point an SQE at a stack variable: stacks move.

func bufAddr(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// SetUserData tags the SQE; the tag comes back in its CQE(s).
func (s *SQE) SetUserData(v uint64) { s.UserData = v }

// SetFlags ORs SQE* flags (SQEIOLink, SQEFixedFile, ...) into the SQE.
func (s *SQE) SetFlags(f uint8) { s.Flags |= f }

func (s *SQE) prepRW(op uint8, fd int, addr uint64, length uint32, off uint64) {
	s.Opcode = op
	s.FD = int32(fd)
	s.Addr = addr
	s.Len = length
	s.Off = off
}

// PrepNop prepares a no-op; it completes with res 0.
func (s *SQE) PrepNop() { s.Opcode = OpNop; s.FD = -1 }

// PrepRead reads into buf from fd at offset off (-1: the file position).
func (s *SQE) PrepRead(fd int, buf []byte, off uint64) {
	s.prepRW(OpRead, fd, bufAddr(buf), uint32(len(buf)), off)
}

// PrepWrite writes buf to fd at offset off (-1: the file position).
func (s *SQE) PrepWrite(fd int, buf []byte, off uint64) {
	s.prepRW(OpWrite, fd, bufAddr(buf), uint32(len(buf)), off)
}

// PrepReadFixed reads into a slice of registered buffer bufIndex.
func (s *SQE) PrepReadFixed(fd int, buf []byte, off uint64, bufIndex uint16) {
	s.prepRW(OpReadFixed, fd, bufAddr(buf), uint32(len(buf)), off)
	s.BufIndex = bufIndex
}

// PrepWriteFixed writes from a slice of registered buffer bufIndex.
func (s *SQE) PrepWriteFixed(fd int, buf []byte, off uint64, bufIndex uint16) {
	s.prepRW(OpWriteFixed, fd, bufAddr(buf), uint32(len(buf)), off)
	s.BufIndex = bufIndex
}

// PrepReadv reads into iovecs (which must outlive the operation).
func (s *SQE) PrepReadv(fd int, iovecs []unix.Iovec, off uint64) {
	s.prepRW(OpReadv, fd, iovAddr(iovecs), uint32(len(iovecs)), off)
}

// PrepWritev writes from iovecs (which must outlive the operation).
func (s *SQE) PrepWritev(fd int, iovecs []unix.Iovec, off uint64) {
	s.prepRW(OpWritev, fd, iovAddr(iovecs), uint32(len(iovecs)), off)
}

func iovAddr(iovecs []unix.Iovec) uint64 {
	if len(iovecs) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(iovecs))))
}

// PrepFsync flushes fd; flags FsyncDatasync makes it fdatasync.
func (s *SQE) PrepFsync(fd int, flags uint32) {
	s.prepRW(OpFsync, fd, 0, 0, 0)
	s.OpFlags = flags
}

// PrepFallocate is fallocate(fd, mode, offset, length).
func (s *SQE) PrepFallocate(fd int, mode uint32, offset, length uint64) {
	// The kernel takes the length in addr and the mode in len.
	s.prepRW(OpFallocate, fd, length, mode, offset)
}

// PrepSplice moves n bytes from fdIn at offIn to fdOut at offOut; one of
// them must be a pipe, whose offset is -1. flags are SPLICE_F_* and
// SpliceFDInFixed.
func (s *SQE) PrepSplice(fdIn int, offIn int64, fdOut int, offOut int64, n uint32, flags uint32) {
	s.prepRW(OpSplice, fdOut, uint64(offIn), n, uint64(offOut))
	s.SpliceFDIn = int32(fdIn)
	s.OpFlags = flags
}

// PrepAccept accepts a connection on fd. addr/addrLen may be nil; if set
// they must outlive the operation. flags are accept4 flags (SOCK_NONBLOCK,
// SOCK_CLOEXEC).
func (s *SQE) PrepAccept(fd int, addr *unix.RawSockaddrAny, addrLen *uint32, flags uint32) {
	s.prepRW(OpAccept, fd, uint64(uintptr(unsafe.Pointer(addr))), 0, uint64(uintptr(unsafe.Pointer(addrLen))))
	s.OpFlags = flags
}

// PrepMultishotAccept arms one SQE that posts a CQE for every accepted
// connection (each with CQEFMore while it stays armed).
func (s *SQE) PrepMultishotAccept(fd int, flags uint32) {
	s.PrepAccept(fd, nil, nil, flags)
	s.IOPrio |= AcceptMultishot
}

// PrepConnect connects fd to the address at addr (addrLen bytes), which
// the kernel copies at submission.
func (s *SQE) PrepConnect(fd int, addr unsafe.Pointer, addrLen uint32) {
	s.prepRW(OpConnect, fd, uint64(uintptr(addr)), 0, uint64(addrLen))
}

// PrepRecv receives into buf; flags are MSG_* flags.
func (s *SQE) PrepRecv(fd int, buf []byte, flags uint32) {
	s.prepRW(OpRecv, fd, bufAddr(buf), uint32(len(buf)), 0)
	s.OpFlags = flags
}

// PrepRecvMultishot arms one receive that posts a CQE for every chunk of
// data, each into a buffer picked from provided buffer group bgid (see
// BufRing); CQEFBuffer and BufferID say which buffer, CQEFMore that it stays
// armed.
func (s *SQE) PrepRecvMultishot(fd int, bgid uint16, flags uint32) {
	s.prepRW(OpRecv, fd, 0, 0, 0)
	s.OpFlags = flags
	s.IOPrio |= RecvMultishot
	s.Flags |= SQEBufferSelect
	s.BufIndex = bgid
}

// PrepSend sends buf; flags are MSG_* flags.
func (s *SQE) PrepSend(fd int, buf []byte, flags uint32) {
	s.prepRW(OpSend, fd, bufAddr(buf), uint32(len(buf)), 0)
	s.OpFlags = flags
}

// PrepSendZC sends buf without copying it: the kernel pins the pages. It
// posts two CQEs: the result (with CQEFMore) and later a notification
// (CQEFNotif) after which buf may be reused. zcFlags are SendZC*/RecvSend*
// flags.
func (s *SQE) PrepSendZC(fd int, buf []byte, flags uint32, zcFlags uint16) {
	s.prepRW(OpSendZC, fd, bufAddr(buf), uint32(len(buf)), 0)
	s.OpFlags = flags
	s.IOPrio = zcFlags
}

// PrepSendZCFixed is PrepSendZC from registered buffer bufIndex.
func (s *SQE) PrepSendZCFixed(fd int, buf []byte, flags uint32, zcFlags uint16, bufIndex uint16) {
	s.PrepSendZC(fd, buf, flags, zcFlags|RecvSendFixedBuf)
	s.BufIndex = bufIndex
}

// PrepMsgRing posts a CQE on the ring whose descriptor is ringFD, carrying
// res and userData: the doorbell between shards. flags are MsgRing* flags.
func (s *SQE) PrepMsgRing(ringFD int, res uint32, userData uint64, flags uint32) {
	s.prepRW(OpMsgRing, ringFD, msgData, res, userData)
	s.OpFlags = flags
}

// PrepTimeout completes after ts passes, or after count other completions
// (0: time only); it completes with -ETIME when the time ran out. ts is read
// at submission.
func (s *SQE) PrepTimeout(ts *unix.Timespec, count uint32, flags uint32) {
	s.prepRW(OpTimeout, -1, uint64(uintptr(unsafe.Pointer(ts))), 1, uint64(count))
	s.OpFlags = flags
}

// PrepTimeoutRemove cancels the timeout tagged userData.
func (s *SQE) PrepTimeoutRemove(userData uint64, flags uint32) {
	s.prepRW(OpTimeoutRemove, -1, userData, 0, 0)
	s.OpFlags = flags
}

// PrepLinkTimeout bounds the SQE before it (which must carry SQEIOLink):
// if ts passes first, that SQE is cancelled (-ECANCELED) and this one
// completes with -ETIME.
func (s *SQE) PrepLinkTimeout(ts *unix.Timespec, flags uint32) {
	s.prepRW(OpLinkTimeout, -1, uint64(uintptr(unsafe.Pointer(ts))), 1, 0)
	s.OpFlags = flags
}

// PrepCancel cancels the request tagged userData (flags AsyncCancel*).
func (s *SQE) PrepCancel(userData uint64, flags uint32) {
	s.prepRW(OpAsyncCancel, -1, userData, 0, 0)
	s.OpFlags = flags
}

// PrepCancelFD cancels requests on fd (AsyncCancelAll for every one).
func (s *SQE) PrepCancelFD(fd int, flags uint32) {
	s.prepRW(OpAsyncCancel, fd, 0, 0, 0)
	s.OpFlags = flags | AsyncCancelFD
}

// PrepClose closes fd.
func (s *SQE) PrepClose(fd int) { s.prepRW(OpClose, fd, 0, 0, 0) }

// PrepCloseFixed closes the fixed-file slot.
func (s *SQE) PrepCloseFixed(slot uint32) {
	s.prepRW(OpClose, 0, 0, 0, 0)
	s.SpliceFDIn = int32(slot + 1)
}

// PrepShutdown is shutdown(fd, how).
func (s *SQE) PrepShutdown(fd int, how int) {
	s.prepRW(OpShutdown, fd, 0, uint32(how), 0)
}
