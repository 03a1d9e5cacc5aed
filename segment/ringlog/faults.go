package ringlog

// ioFaults injects failures into the I/O a Log submits to its ring, for
// tests of the fail-stop path. The failures are the kernel's own: a test
// hands back a descriptor the kernel refuses (the CQE then carries -EBADF)
// or a shorter buffer (the write completes short, and the log resubmits
// the rest). Production Logs have none.
type ioFaults interface {
	// write returns the descriptor and bytes to submit for a write of b
	// at pos to fd.
	write(fd int, pos int64, b []byte) (int, []byte)
	// sync returns the descriptor to submit an fdatasync of fd against.
	sync(fd int) int
	// allocate returns the descriptor to submit a fallocate of fd against.
	allocate(fd int) int
}

// allocateFd is the descriptor a FALLOCATE SQE of fd is submitted against.
func (l *Log) allocateFd(fd int) int {
	if l.faults != nil {
		return l.faults.allocate(fd)
	}
	return fd
}

// syncFd is the descriptor a sync SQE of fd is submitted against.
func (l *Log) syncFd(fd int) int {
	if l.faults != nil {
		return l.faults.sync(fd)
	}
	return fd
}
