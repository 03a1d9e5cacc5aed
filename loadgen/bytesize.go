package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteSize is a flag value holding a byte count. It takes a plain integer or
// one with a binary suffix (KiB, MiB, GiB, TiB) so that sizes such as the
// 1 GiB consume file need not be typed out in digits. Negative sizes are
// rejected while parsing, with the flag named in the message.
type byteSize int64

// byteSuffixes are checked in this order; each suffix is unique so order only
// matters for readability.
var byteSuffixes = []struct {
	suffix string
	scale  int64
}{
	{"TiB", 1 << 40},
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
	{"B", 1},
}

func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	scale := int64(1)
	for _, u := range byteSuffixes {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			scale = u.scale
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a size in bytes (want e.g. 4096, 64KiB, 1MiB, 1GiB)")
	}
	if n < 0 {
		return 0, fmt.Errorf("size must not be negative")
	}
	if n > math.MaxInt64/scale {
		return 0, fmt.Errorf("size overflows 64 bits")
	}
	return n * scale, nil
}

// formatByteSize writes n with the largest binary suffix that divides it
// exactly, so defaults read as 1MiB rather than 1048576 in --help.
func formatByteSize(n int64) string {
	for _, u := range byteSuffixes {
		if u.scale > 1 && n != 0 && n%u.scale == 0 {
			return strconv.FormatInt(n/u.scale, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) String() string { return formatByteSize(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func (b *byteSize) Type() string { return "bytes" }
