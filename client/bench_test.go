package client

import (
	"context"
	"sync/atomic"
	"testing"
)

// BenchmarkProduce measures Send against a real broker (acks=1, 100-byte
// values, 16-byte keys) including delivery: the timer stops after Flush.
// allocs/op is per record and covers the whole pipeline.
func BenchmarkProduce(b *testing.B) {
	for _, tc := range []struct {
		name        string
		compression uint16
	}{{"plain", CompressionNone}, {"lz4", CompressionLZ4}} {
		b.Run(tc.name, func(b *testing.B) {
			br := startBenchBroker(b)
			ctx := context.Background()
			cl, err := Dial(ctx, Config{Brokers: []string{br}})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			if err := NewAdmin(cl).CreateTopics(ctx, TopicSpec{Name: "bench", Partitions: 4}); err != nil {
				b.Fatal(err)
			}
			p, err := NewProducer(cl, ProducerConfig{Acks: AcksLeader, Compression: tc.compression})
			if err != nil {
				b.Fatal(err)
			}
			var failed atomic.Int64
			cb := func(_ int32, _ int64, err error) {
				if err != nil {
					failed.Add(1)
				}
			}
			key := []byte("0123456789abcdef")
			val := make([]byte, 100)
			r := &Record{Topic: "bench", Key: key, Value: val}
			b.SetBytes(int64(len(key) + len(val)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				key[0] = byte(i)
				if err := p.Send(ctx, r, cb); err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = p.Close(ctx)
			if failed.Load() > 0 {
				b.Fatalf("%d records failed", failed.Load())
			}
		})
	}
}

// BenchmarkConsume measures Poll over records already in the log.
func BenchmarkConsume(b *testing.B) {
	br := startBenchBroker(b)
	ctx := context.Background()
	cl, err := Dial(ctx, Config{Brokers: []string{br}})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := NewAdmin(cl).CreateTopics(ctx, TopicSpec{Name: "bench", Partitions: 1}); err != nil {
		b.Fatal(err)
	}
	p, _ := NewProducer(cl, ProducerConfig{Acks: AcksLeader})
	val := make([]byte, 100)
	for i := 0; i < b.N; i++ {
		if err := p.Send(ctx, &Record{Topic: "bench", Value: val}, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	c := NewConsumer(cl, ConsumerConfig{Reset: ResetEarliest})
	defer c.Close()
	_ = c.Assign("bench", 0)
	b.SetBytes(int64(len(val)))
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; {
		recs, err := c.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n += len(recs)
	}
}

func startBenchBroker(b *testing.B) string {
	b.Helper()
	return startBrokerAddr(b)
}
