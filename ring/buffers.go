package ring

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Limits on kernel-visible buffer memory.
const (
	// MaxBufRingEntries is the kernel's cap on one provided buffer ring.
	MaxBufRingEntries = 32768
	// MaxRegisteredBuffers is the kernel's cap on registered buffers.
	MaxRegisteredBuffers = 16384
)

// AllocBuffers maps size bytes of anonymous memory outside the Go heap:
// the garbage collector never scans or moves it, so its address can be
// handed to the kernel for as long as the mapping lives. Free it with
// FreeBuffers.
func AllocBuffers(size int) ([]byte, error) {
	if size <= 0 {
		return nil, fmt.Errorf("ring: buffer size %d: %w", size, unix.EINVAL)
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_ANONYMOUS|unix.MAP_PRIVATE|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("ring: mmap %d buffer bytes: %w", size, err)
	}
	return mem, nil
}

// FreeBuffers unmaps memory from AllocBuffers.
func FreeBuffers(mem []byte) error { return unix.Munmap(mem) }

// BufRing is a provided buffer ring (IORING_REGISTER_PBUF_RING): a ring of
// equally sized buffers, all off the Go heap, that the kernel picks from for
// operations flagged SQEBufferSelect with this group id (a multishot receive,
// typically). A completion names the buffer it filled (CQE.BufferID); once
// the data is consumed the owner hands the buffer back with Recycle.
//
// Memory ordering: entries are written first, then the tail is published
// with a release store; the kernel reads entries only below the tail.
type BufRing struct {
	r       *Ring
	bgid    uint16
	entries uint16
	mask    uint16
	size    int
	ringMem []byte // entries * 16 bytes of struct io_uring_buf
	bufs    []byte // entries * size bytes of buffer memory
	ring    []buf
	local   uint16 // tail not yet published
	closed  bool
}

// NewBufRing registers a provided buffer ring of entries buffers (a power
// of two) of bufSize bytes each under group id bgid, and provides every
// buffer to the kernel.
func (r *Ring) NewBufRing(bgid uint16, entries int, bufSize int) (*BufRing, error) {
	if entries <= 0 || entries > MaxBufRingEntries || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("ring: buffer ring entries %d not a power of two in [1, %d]: %w", entries, MaxBufRingEntries, unix.EINVAL)
	}
	if bufSize <= 0 || bufSize > 1<<30 {
		return nil, fmt.Errorf("ring: buffer size %d: %w", bufSize, unix.EINVAL)
	}
	ringBytes := entries * int(unsafe.Sizeof(buf{}))
	ringMem, err := AllocBuffers(roundToPage(ringBytes))
	if err != nil {
		return nil, err
	}
	bufs, err := AllocBuffers(entries * bufSize)
	if err != nil {
		FreeBuffers(ringMem)
		return nil, err
	}
	br := &BufRing{
		r: r, bgid: bgid, entries: uint16(entries), mask: uint16(entries - 1), size: bufSize,
		ringMem: ringMem, bufs: bufs,
		ring: unsafe.Slice((*buf)(unsafe.Pointer(&ringMem[0])), entries),
	}
	reg := bufReg{
		ringAddr:    uint64(uintptr(unsafe.Pointer(&ringMem[0]))),
		ringEntries: uint32(entries),
		bgid:        bgid,
	}
	if _, err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		FreeBuffers(bufs)
		FreeBuffers(ringMem)
		return nil, fmt.Errorf("ring: register buffer ring %d: %w", bgid, err)
	}
	for i := range entries {
		br.add(uint16(i))
	}
	br.Publish()
	return br, nil
}

func roundToPage(n int) int {
	page := unix.Getpagesize()
	return (n + page - 1) &^ (page - 1)
}

// GroupID is the buffer group id operations select with.
func (br *BufRing) GroupID() uint16 { return br.bgid }

// BufferSize is the size of each buffer.
func (br *BufRing) BufferSize() int { return br.size }

// Buffer returns the whole buffer id.
func (br *BufRing) Buffer(id uint16) []byte {
	off := int(id) * br.size
	return br.bufs[off : off+br.size : off+br.size]
}

// Bytes returns the n bytes a completion put in buffer id.
func (br *BufRing) Bytes(id uint16, n int) []byte { return br.Buffer(id)[:n] }

func (br *BufRing) add(id uint16) {
	e := &br.ring[br.local&br.mask]
	e.addr = uint64(uintptr(unsafe.Pointer(&br.bufs[int(id)*br.size])))
	e.len = uint32(br.size)
	e.bid = id
	br.local++
}

// Recycle hands buffer id back to the kernel. It becomes visible at the next
// Publish, so a loop recycles many and publishes once.
func (br *BufRing) Recycle(id uint16) {
	if int(id) >= int(br.entries) {
		panic(fmt.Sprintf("ring: recycle of buffer %d in a ring of %d", id, br.entries))
	}
	br.add(id)
}

// Publish makes recycled buffers visible to the kernel (a release store of
// the tail, after the entries were written).
//
// The 16-bit tail overlays entry 0's reserved field (bytes 14-15 of the ring)
// and Go has no 16-bit atomic store, so the 32-bit word at bytes 12-15 is
// stored whole: entry 0's buffer id, which only this side writes, and the
// tail.
func (br *BufRing) Publish() {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&br.ringMem[12])), uint32(br.local)<<16|uint32(br.ring[0].bid))
}

// Close unregisters the ring and frees its memory. No operation selecting
// from it may be in flight.
func (br *BufRing) Close() error {
	if br.closed {
		return nil
	}
	br.closed = true
	reg := bufReg{bgid: br.bgid}
	var err error
	if !br.r.closed {
		_, err = br.r.register(unregisterPbufRing, unsafe.Pointer(&reg), 1)
	}
	FreeBuffers(br.bufs)
	FreeBuffers(br.ringMem)
	return err
}
