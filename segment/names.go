package segment

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// File names: the base offset as 20 zero-padded decimal digits (enough for
// any non-negative int64), then the kind.
const (
	baseDigits       = 20
	logSuffix        = ".log"
	indexSuffix      = ".index"
	timeIndexSuffix  = ".timeindex"
	checkpointName   = "recovery-point"
	checkpointTmpExt = ".tmp"
)

func baseName(base int64) string { return fmt.Sprintf("%0*d", baseDigits, base) }

func logPath(dir string, base int64) string { return filepath.Join(dir, baseName(base)+logSuffix) }
func indexPath(dir string, base int64) string {
	return filepath.Join(dir, baseName(base)+indexSuffix)
}
func timeIndexPath(dir string, base int64) string {
	return filepath.Join(dir, baseName(base)+timeIndexSuffix)
}

// parseSegmentName returns the base offset and suffix of a segment file name,
// or ok=false for any other name.
func parseSegmentName(name string) (base int64, suffix string, ok bool) {
	dot := strings.IndexByte(name, '.')
	if dot != baseDigits {
		return 0, "", false
	}
	suffix = name[dot:]
	switch suffix {
	case logSuffix, indexSuffix, timeIndexSuffix:
	default:
		return 0, "", false
	}
	for _, ch := range name[:dot] {
		if ch < '0' || ch > '9' {
			return 0, "", false
		}
	}
	b, err := strconv.ParseInt(name[:dot], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return b, suffix, true
}
