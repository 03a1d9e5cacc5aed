package client

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// delivery is one callback's outcome.
type delivery struct {
	partition int32
	offset    int64
	err       error
}

// collector records callbacks by record index.
type collector struct {
	mu  sync.Mutex
	got map[int]delivery
}

func newCollector() *collector { return &collector{got: map[int]delivery{}} }

func (c *collector) cb(i int) Callback {
	return func(p int32, off int64, err error) {
		c.mu.Lock()
		c.got[i] = delivery{p, off, err}
		c.mu.Unlock()
	}
}

// TestRoundTripKeysAndOffsets produces keyed records to a 4-partition
// topic and reads them back: each lands on murmur2(key) mod 4 (computed
// here independently), each callback's offset is the record's real offset,
// and key, value, headers and timestamp survive.
func TestRoundTripKeysAndOffsets(t *testing.T) {
	for _, tc := range []struct {
		name        string
		compression uint16
	}{{"plain", CompressionNone}, {"lz4", CompressionLZ4}} {
		t.Run(tc.name, func(t *testing.T) {
			_, cl, ctx := startBroker(t)
			const topic, parts, n = "orders", 4, 500
			createTopic(t, ctx, cl, topic, parts)
			p, err := NewProducer(cl, ProducerConfig{Compression: tc.compression, BatchBytes: 4 << 10, LingerMs: 2})
			if err != nil {
				t.Fatal(err)
			}
			col := newCollector()
			for i := 0; i < n; i++ {
				r := &Record{Topic: topic, Key: []byte(fmt.Sprintf("user-%d", i%37)),
					Value: bytes.Repeat([]byte{byte(i)}, 20+i%50), Headers: []Header{{Key: []byte("i"), Value: []byte(fmt.Sprint(i))}}}
				if err := p.Send(ctx, r, col.cb(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if len(col.got) != n {
				t.Fatalf("%d callbacks, want %d", len(col.got), n)
			}
			byPos := map[[2]int64]int{}
			for i, d := range col.got {
				if d.err != nil {
					t.Fatalf("record %d: %v", i, d.err)
				}
				want := javaPartition(fmt.Sprintf("user-%d", i%37), parts)
				if d.partition != want {
					t.Fatalf("record %d went to partition %d, murmur2 says %d", i, d.partition, want)
				}
				byPos[[2]int64{int64(d.partition), d.offset}] = i
			}
			recs := consumeN(t, ctx, cl, topic, n)
			if len(recs) != n {
				t.Fatalf("consumed %d records, want %d", len(recs), n)
			}
			for _, r := range recs {
				i, ok := byPos[[2]int64{int64(r.Partition), r.Offset}]
				if !ok {
					t.Fatalf("consumed %d/%d, which no callback reported", r.Partition, r.Offset)
				}
				if string(r.Key) != fmt.Sprintf("user-%d", i%37) || !bytes.Equal(r.Value, bytes.Repeat([]byte{byte(i)}, 20+i%50)) {
					t.Fatalf("record at %d/%d is not record %d: key %q", r.Partition, r.Offset, i, r.Key)
				}
				if len(r.Headers) != 1 || string(r.Headers[0].Key) != "i" || string(r.Headers[0].Value) != fmt.Sprint(i) {
					t.Fatalf("record %d headers %+v", i, r.Headers)
				}
				if r.Timestamp.IsZero() || r.Topic != topic {
					t.Fatalf("record %d: topic %q timestamp %v", i, r.Topic, r.Timestamp)
				}
			}
		})
	}
}

// javaPartition is the Java client's default partition for a key,
// written out from the reference algorithm separately from Murmur2 so the
// test checks placement rather than restating the code under test.
func javaPartition(key string, n int32) int32 {
	data := []byte(key)
	const m, r = int32(0x5bd1e995), 24
	h := int32(-1756908916) ^ int32(len(data)) // seed 0x9747b28c as a Java int
	l4 := len(data) / 4
	for i := 0; i < l4; i++ {
		i4 := i * 4
		k := int32(data[i4]) + int32(data[i4+1])<<8 + int32(data[i4+2])<<16 + int32(data[i4+3])<<24
		k *= m
		k ^= int32(uint32(k) >> r)
		k *= m
		h *= m
		h ^= k
	}
	rest := len(data) % 4
	if rest >= 3 {
		h ^= int32(data[(len(data)&^3)+2]) << 16
	}
	if rest >= 2 {
		h ^= int32(data[(len(data)&^3)+1]) << 8
	}
	if rest >= 1 {
		h ^= int32(data[len(data)&^3])
		h *= m
	}
	h ^= int32(uint32(h) >> 13)
	h *= m
	h ^= int32(uint32(h) >> 15)
	return (h & 0x7fffffff) % n
}
