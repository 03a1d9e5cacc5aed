package ring

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// register is io_uring_register(2).
func (r *Ring) register(op uint32, arg unsafe.Pointer, nr uint32) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(op), uintptr(arg), uintptr(nr), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return int(n), errno
		}
		return int(n), nil
	}
}

// Probe lists the opcodes the running kernel supports.
type Probe struct {
	lastOp    uint8
	supported [probeOpCount]bool
}

// Probe asks the kernel which opcodes it supports (IORING_REGISTER_PROBE).
func (r *Ring) Probe() (*Probe, error) {
	var raw struct {
		h   probeHeader
		ops [probeOpCount]probeOp
	}
	if _, err := r.register(registerProbe, unsafe.Pointer(&raw), probeOpCount); err != nil {
		return nil, fmt.Errorf("ring: probe: %w", err)
	}
	p := &Probe{lastOp: raw.h.lastOp}
	for i := 0; i < int(raw.h.opsLen) && i < probeOpCount; i++ {
		if raw.ops[i].flags&probeOpSupported != 0 {
			p.supported[raw.ops[i].op] = true
		}
	}
	return p, nil
}

// Supported reports whether opcode op is supported.
func (p *Probe) Supported(op uint8) bool { return p.supported[op] }

// LastOp is the highest opcode the kernel knows.
func (p *Probe) LastOp() uint8 { return p.lastOp }

// RegisterFiles installs fds as the ring's fixed-file table; an SQE with
// SQEFixedFile names a slot instead of a descriptor, which saves the
// per-operation file reference counting. -1 leaves a slot empty.
func (r *Ring) RegisterFiles(fds []int32) error {
	if len(fds) == 0 {
		return unix.EINVAL
	}
	_, err := r.register(registerFiles, unsafe.Pointer(&fds[0]), uint32(len(fds)))
	return err
}

// UpdateFiles replaces fixed-file slots from offset on with fds (-1 empties
// a slot) and returns how many it replaced.
func (r *Ring) UpdateFiles(offset uint32, fds []int32) (int, error) {
	if len(fds) == 0 {
		return 0, unix.EINVAL
	}
	up := filesUpdate{offset: offset, fds: uint64(uintptr(unsafe.Pointer(&fds[0])))}
	return r.register(registerFilesUpdate, unsafe.Pointer(&up), uint32(len(fds)))
}

// UnregisterFiles removes the fixed-file table.
func (r *Ring) UnregisterFiles() error {
	_, err := r.register(unregisterFiles, nil, 0)
	return err
}

// RegisterBuffers pins bufs (off-heap, from AllocBuffers) as the ring's
// registered buffers, indexed from 0 in order, for the *Fixed operations.
func (r *Ring) RegisterBuffers(bufs [][]byte) error {
	if len(bufs) == 0 || len(bufs) > MaxRegisteredBuffers {
		return unix.EINVAL
	}
	iov := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		if len(b) == 0 {
			return unix.EINVAL
		}
		iov[i].Base = &b[0]
		iov[i].SetLen(len(b))
	}
	_, err := r.register(registerBuffers, unsafe.Pointer(&iov[0]), uint32(len(iov)))
	return err
}

// UnregisterBuffers removes the registered buffers.
func (r *Ring) UnregisterBuffers() error {
	_, err := r.register(unregisterBuffers, nil, 0)
	return err
}

// RegisterRingFD registers the ring's own descriptor with itself, so that
// io_uring_enter skips the file table lookup on every call.
func (r *Ring) RegisterRingFD() error {
	if r.enterFlags&enterRegisteredRing != 0 {
		return unix.EBUSY
	}
	up := filesUpdate{offset: ^uint32(0), fds: uint64(r.fd)}
	// struct io_uring_rsrc_update: offset, resv, data (here the fd value).
	n, err := r.register(registerRingFDs, unsafe.Pointer(&up), 1)
	if err != nil {
		return err
	}
	if n != 1 {
		return unix.EINVAL
	}
	r.enterFD = int(up.offset)
	r.enterFlags |= enterRegisteredRing
	return nil
}

// RegisterEventFD asks the kernel to signal fd on every posted completion,
// so a thread sleeping in another poller learns of them.
func (r *Ring) RegisterEventFD(fd int) error {
	v := int32(fd)
	_, err := r.register(registerEventFD, unsafe.Pointer(&v), 1)
	return err
}
