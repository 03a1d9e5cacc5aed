package schema

import (
	"bytes"
	"fmt"
	"testing"
)

// Benchmarks: building and reading a batch of 100 records of 100-byte
// values, plain and lz4, and verifying one produce request envelope.

func benchRecord() Record {
	return Record{Key: []byte("key-000001"), Value: bytes.Repeat([]byte("0123456789"), 10), TimestampMs: 1}
}

func BenchmarkBatchBuild(b *testing.B) {
	for _, comp := range []uint16{CompressionNone, CompressionLZ4} {
		b.Run(fmt.Sprint("compression", comp), func(b *testing.B) {
			bb, _ := NewBatchBuilder(BatchOptions{Compression: comp})
			rec := benchRecord()
			var dst []byte
			b.ReportAllocs()
			b.SetBytes(100 * int64(len(rec.Key)+len(rec.Value)))
			for b.Loop() {
				for i := 0; i < 100; i++ {
					_ = bb.Append(&rec)
				}
				dst, _ = bb.AppendTo(dst[:0])
			}
		})
	}
}

func BenchmarkBatchRead(b *testing.B) {
	for _, comp := range []uint16{CompressionNone, CompressionLZ4} {
		b.Run(fmt.Sprint("compression", comp), func(b *testing.B) {
			recs := make([]Record, 100)
			for i := range recs {
				recs[i] = benchRecord()
			}
			frame := buildFrame(b, BatchOptions{Compression: comp}, recs)
			var r BatchReader
			var v RecordView
			b.ReportAllocs()
			b.SetBytes(100 * int64(len(recs[0].Key)+len(recs[0].Value)))
			for b.Loop() {
				if err := r.Reset(frame); err != nil {
					b.Fatal(err)
				}
				for r.Next(&v) {
				}
			}
		})
	}
}

func BenchmarkVerifyEnvelope(b *testing.B) {
	env := sampleEnvelope(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(env)))
	for b.Loop() {
		if err := VerifyEnvelope(env); err != nil {
			b.Fatal(err)
		}
	}
}
