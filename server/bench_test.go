package server

import (
	"io"
	"log/slog"
	"testing"

	"github.com/strata-db/strata/schema/fb"
)

// BenchmarkBrokerProduce drives one in-process broker from one connection
// with 32 produce requests in flight, each a 64 KiB frame of 1 KiB
// records, under each flush policy.
func BenchmarkBrokerProduce(b *testing.B) {
	for _, policy := range []string{"never", "sync"} {
		b.Run("flush="+policy, func(b *testing.B) {
			const depth = 32
			br := startBenchBroker(b)
			c := newTestClient(b, br.Addr().String())
			if code := c.createTopic("bench", 1, &fb.TopicConfigT{Name: "flush.policy", Value: policy}); code != fb.ErrorCodeNone {
				b.Fatal(code)
			}
			frame := bigBatch(b, 64, 1000)
			req := produceMsg(fb.AcksLeader, "bench", 0, frame)
			b.SetBytes(int64(len(frame)))
			b.ResetTimer()
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				for range b.N {
					c.send(req)
				}
			}()
			for range b.N {
				env, _ := c.recv()
				if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
					b.Fatal(r.ErrorCode)
				}
			}
			<-sent
		})
	}
}

// BenchmarkBrokerFetch reads a cached partition from offset 0 over and over
// with 1 MiB fetches: the zero-copy splice path.
func BenchmarkBrokerFetch(b *testing.B) {
	br := startBenchBroker(b)
	c := newTestClient(b, br.Addr().String())
	if code := c.createTopic("bench", 1, &fb.TopicConfigT{Name: "flush.policy", Value: "never"}); code != fb.ErrorCodeNone {
		b.Fatal(code)
	}
	frame := bigBatch(b, 64, 1000)
	for range 256 { // 16 MiB
		c.call(produceMsg(fb.AcksLeader, "bench", 0, frame))
	}
	b.ResetTimer()
	var total int64
	offset := int64(0)
	for range b.N {
		_, trailing := c.call(fetchMsgBytes("bench", 0, offset, 1<<20))
		total += int64(len(trailing))
		offset += 1 << 20 / 1024 // about a MiB of records further
		if offset >= 256*64 {
			offset = 0
		}
	}
	b.SetBytes(total / int64(b.N))
}

func startBenchBroker(b *testing.B) *Broker {
	b.Helper()
	br, err := StartBroker(BrokerConfig{DataDir: b.TempDir(), Listen: "127.0.0.1:0", Cores: 1, NodeID: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Stop() })
	return br
}
