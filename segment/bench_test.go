package segment

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Benchmark shape: 64 KiB frames of 64 records of 1 KiB each, through the
// synchronous OS driver, beside a plain sequential write of the same bytes to
// one preallocated file (the ceiling), in the same run.
const (
	benchRecordBytes  = 1 << 10
	benchRecords      = 64
	benchFrameBytes   = benchRecordBytes * benchRecords
	benchSegmentBytes = 64 << 20
	benchKeepBytes    = 256 << 20 // bounds the disk a long run uses
)

func BenchmarkAppend(b *testing.B) {
	for _, pol := range []FlushPolicy{FlushNever, FlushEveryAck} {
		b.Run("log/"+pol.String(), func(b *testing.B) {
			l, err := Open(b.TempDir(), Config{SegmentBytes: benchSegmentBytes, Flush: pol,
				RetentionBytes: benchKeepBytes, RetentionMs: Unlimited})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			frame := testFrame(benchRecords, benchFrameBytes-64, 1, 1)
			b.SetBytes(int64(len(frame)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Append(frame); err != nil {
					b.Fatal(err)
				}
				if i%1024 == 1023 {
					if err := l.ApplyRetention(0); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		for _, syncOnRoll := range []bool{false, true} {
			name := "plain/" + pol.String()
			if syncOnRoll {
				if pol == FlushEveryAck {
					continue
				}
				name += "+sync-per-file"
			}
			plainWrite(b, name, pol, syncOnRoll)
		}
	}
}

// plainWrite is the ceiling: the same frames written with pwrite, with no
// log, no index and no checks.
func plainWrite(b *testing.B, name string, pol FlushPolicy, syncOnRoll bool) {
	b.Run(name, func(b *testing.B) {
		// Like the log: fresh preallocated files of the segment size,
		// the oldest deleted once benchKeepBytes are on disk.
		dir := b.TempDir()
		var files []*os.File
		next := func() *os.File {
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(len(files))), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			if err := unix.Fallocate(int(f.Fd()), 0, 0, benchSegmentBytes); err != nil {
				b.Fatal(fmt.Errorf("fallocate: %w", err))
			}
			if n := len(files); n > 0 && syncOnRoll {
				if err := unix.Fdatasync(int(files[n-1].Fd())); err != nil {
					b.Fatal(err)
				}
			}
			if k := len(files) - benchKeepBytes/benchSegmentBytes; k >= 0 && files[k] != nil {
				files[k].Close()
				os.Remove(files[k].Name())
				files[k] = nil
			}
			files = append(files, f)
			return f
		}
		defer func() {
			for _, f := range files {
				if f != nil {
					f.Close()
				}
			}
		}()
		frame := testFrame(benchRecords, benchFrameBytes-64, 1, 1)
		b.SetBytes(int64(len(frame)))
		b.ResetTimer()
		f, pos := next(), int64(0)
		for i := 0; i < b.N; i++ {
			if pos+int64(len(frame)) > benchSegmentBytes {
				f, pos = next(), 0
			}
			if _, err := f.WriteAt(frame, pos); err != nil {
				b.Fatal(err)
			}
			if pol == FlushEveryAck {
				if err := unix.Fdatasync(int(f.Fd())); err != nil {
					b.Fatal(err)
				}
			}
			pos += int64(len(frame))
		}
	})
}
