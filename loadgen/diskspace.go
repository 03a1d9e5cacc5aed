package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// usableBytes is how much the ceiling may write into dir: the space available
// to this user minus freeSpaceReserveBytes, rounded down to whole records.
func usableBytes(dir string, recordSizeBytes int64) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	usable := avail - freeSpaceReserveBytes
	if usable < recordSizeBytes {
		return 0, fmt.Errorf("%s has %s free, and %s is kept free: not enough for one record",
			dir, formatByteSize(avail), formatByteSize(freeSpaceReserveBytes))
	}
	return usable - usable%recordSizeBytes, nil
}
