package ringlog

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-db/strata/ring"
	"github.com/strata-db/strata/segment"
	"golang.org/x/sys/unix"
)

// Benchmark shape (issue "The log on disk"): 64 KiB frames of 64 records of
// 1 KiB, benchInFlight appends outstanding, through the ring driver; in the
// same run the ceiling, a plain sequential write(2) of the same bytes into
// preallocated files of the segment size, without and with fdatasync every
// so many frames.
const (
	benchRecordBytes  = 1 << 10
	benchRecords      = 64
	benchFrameBytes   = benchRecordBytes * benchRecords
	benchInFlight     = 32
	benchSegmentBytes = 64 << 20
	benchKeepBytes    = 256 << 20 // bounds the disk a long run uses
	benchRetainEvery  = 1024      // appends between retention passes
)

func BenchmarkAppend(b *testing.B) {
	for _, pol := range []segment.FlushPolicy{segment.FlushNever, segment.FlushEveryAck} {
		b.Run("ring/"+pol.String(), func(b *testing.B) { benchRing(b, pol) })
	}
	b.Run("write/no-sync", func(b *testing.B) { benchWrite(b, 0) })
	b.Run("write/fdatasync-per-64MiB-file", func(b *testing.B) { benchWrite(b, benchSegmentBytes/benchFrameBytes) })
	b.Run("write/fdatasync-per-frame", func(b *testing.B) { benchWrite(b, 1) })
	b.Run(fmt.Sprintf("write/fdatasync-per-%d-frames", benchInFlight), func(b *testing.B) { benchWrite(b, benchInFlight) })
}

// freeList is the benchmark's sink: a reported append frees its buffer.
type freeList struct {
	free []int
	err  error
}

func (f *freeList) AppendDone(token uint64, _ int64, err error) {
	if err != nil && f.err == nil {
		f.err = err
	}
	f.free = append(f.free, int(token))
}

func (f *freeList) FlushDone(uint64, error) {}

func benchRing(b *testing.B, pol segment.FlushPolicy) {
	r := shardRing(b)
	cfg := segment.Config{SegmentBytes: benchSegmentBytes, Flush: pol,
		RetentionBytes: benchKeepBytes, RetentionMs: segment.Unlimited}
	sink := &freeList{free: make([]int, 0, benchInFlight)}
	l, err := Open(r, b.TempDir(), cfg, testPrefix, sink)
	if err != nil {
		b.Fatal(err)
	}
	bufs := make([][]byte, benchInFlight)
	for i := range bufs {
		bufs[i] = makeFrame(benchRecords, benchFrameBytes-64, 1, 1)
		sink.free = append(sink.free, i)
	}
	batch := make([]*ring.CQE, testBatchCQEs)
	b.SetBytes(benchFrameBytes)
	b.ResetTimer()
	for issued := 0; issued < b.N || len(sink.free) < benchInFlight; {
		for issued < b.N && len(sink.free) > 0 {
			k := sink.free[len(sink.free)-1]
			sink.free = sink.free[:len(sink.free)-1]
			if _, err := l.Append(bufs[k], uint64(k)); err != nil {
				b.Fatal(err)
			}
			issued++
			if issued%benchRetainEvery == 0 {
				if err := l.ApplyRetention(0); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := r.SubmitAndWait(1); err != nil {
			b.Fatal(err)
		}
		n := r.PeekBatchCQE(batch)
		for _, c := range batch[:n] {
			l.Complete(*c)
		}
		r.CQAdvance(uint32(n))
		if sink.err != nil {
			b.Fatal(sink.err)
		}
	}
	b.StopTimer()
	st := l.Stats()
	if st.GroupSyncs > 0 {
		b.ReportMetric(float64(st.Appends)/float64(st.GroupSyncs), "appends/sync")
	}
	newShard(b, r, l).until(l.Idle)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}

// benchWrite is the ceiling: write(2) of the same frames, one after the
// other, into fresh preallocated files of the segment size (the oldest
// deleted once benchKeepBytes are on disk), with an fdatasync every
// syncEvery frames (0: never).
func benchWrite(b *testing.B, syncEvery int) {
	dir := b.TempDir()
	var files []*os.File
	next := func() *os.File {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(len(files))), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Fallocate(int(f.Fd()), 0, 0, benchSegmentBytes); err != nil {
			b.Fatal(err)
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
	frame := makeFrame(benchRecords, benchFrameBytes-64, 1, 1)
	b.SetBytes(benchFrameBytes)
	b.ResetTimer()
	f, pos := next(), int64(0)
	fd := int(f.Fd())
	for i := 0; i < b.N; i++ {
		if pos+benchFrameBytes > benchSegmentBytes {
			f, pos = next(), 0
			fd = int(f.Fd())
		}
		if _, err := unix.Write(fd, frame); err != nil {
			b.Fatal(err)
		}
		pos += benchFrameBytes
		if syncEvery > 0 && (i+1)%syncEvery == 0 {
			if err := unix.Fdatasync(fd); err != nil {
				b.Fatal(err)
			}
		}
	}
}
