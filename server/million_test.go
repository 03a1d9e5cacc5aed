package server

import (
	"encoding/binary"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// TestMillionRecordsRoundTrip produces 1,000,000 records over four
// partitions (pipelined, 1,000 records a frame) and consumes them all back,
// checking every record's offset, key and value byte for byte.
func TestMillionRecordsRoundTrip(t *testing.T) {
	const (
		partitions      = 4
		total           = 1_000_000
		recordsPerFrame = 1000
		frames          = total / recordsPerFrame
	)
	b := startBroker(t, t.TempDir(), 2)
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("million", partitions); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	// Record i of partition p: key = p and i, value = a pattern from i.
	key := func(p, i int) []byte {
		k := binary.LittleEndian.AppendUint32(nil, uint32(p))
		return binary.LittleEndian.AppendUint32(k, uint32(i))
	}
	value := func(i int) []byte {
		v := make([]byte, 16+i%48)
		for j := range v {
			v[j] = byte(i + j*7)
		}
		return v
	}
	bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	next := make([]int, partitions) // next record index per partition
	encoded := make([][]byte, frames)
	for f := range frames {
		p := f % partitions
		for range recordsPerFrame {
			i := next[p]
			next[p]++
			if err := bb.Append(&schema.Record{Key: key(p, i), Value: value(i), TimestampMs: int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if encoded[f], err = bb.AppendTo(nil); err != nil {
			t.Fatal(err)
		}
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for f := range frames {
			c.send(produceMsg(fb.AcksAll, "million", int32(f%partitions), encoded[f]))
		}
	}()
	for f := range frames {
		env, _ := c.recv()
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if want := int64(f / partitions * recordsPerFrame); r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != want {
			t.Fatalf("frame %d: %v base %d, want %d", f, r.ErrorCode, r.BaseOffset, want)
		}
	}
	<-sent // the client's sender is done before the fetches reuse it
	got := 0
	for p := range partitions {
		offset := int64(0)
		for offset < int64(next[p]) {
			env, trailing := c.call(fetchMsgBytes("million", int32(p), offset, 4<<20))
			if fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; fr.ErrorCode != fb.ErrorCodeNone {
				t.Fatal(fr.ErrorCode)
			}
			var br schema.BatchReader
			var v schema.RecordView
			for rest := trailing; len(rest) > 0; {
				n, _ := schema.PeekFrameLength(rest, schema.MaxFrameBytes)
				if err := br.Reset(rest[:n]); err != nil {
					t.Fatal(err)
				}
				for br.Next(&v) {
					if v.Offset != offset || string(v.Key) != string(key(p, int(offset))) || string(v.Value) != string(value(int(offset))) {
						t.Fatalf("partition %d offset %d: record differs (offset %d)", p, offset, v.Offset)
					}
					offset++
					got++
				}
				rest = rest[n:]
			}
		}
	}
	if got != total {
		t.Fatalf("consumed %d records, want %d", got, total)
	}
}
