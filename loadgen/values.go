package main

import (
	"fmt"
	"math/rand/v2"
)

// Record values (--values). fill, the default, is one value repeated for
// every record (the alphabet over and over), which lz4 shrinks to almost
// nothing and so says nothing about compression. json gives each record
// a value of its own: JSON-like events with fixed field names and varying
// numbers, words and ids, as compressible as real event payloads are and
// no more. The values come from a pool made before the run (no generation
// on the send path), large enough that no two records lz4 could see in
// one 64 KiB window repeat each other.
const (
	valuesFill = "fill"
	valuesJSON = "json"
	flagValues = "values"
	// jsonPoolBytesMax bounds a producer's pool of json values.
	jsonPoolBytesMax = 8 << 20
	// jsonPoolValuesMax bounds the pool's count (small records).
	jsonPoolValuesMax = 4096
)

func checkValues(s string) error {
	if s != valuesFill && s != valuesJSON {
		return fmt.Errorf("--%s must be %s or %s, got %q", flagValues, valuesFill, valuesJSON, s)
	}
	return nil
}

// valuePool is the values a producer sends, in turn.
type valuePool struct {
	values [][]byte
	next   int
}

// newValuePool makes the pool of kind for records of size bytes; seed
// makes each producer's pool its own.
func newValuePool(kind string, size int64, seed uint64) *valuePool {
	if kind != valuesJSON {
		v := make([]byte, size)
		fillRecords(v, size)
		return &valuePool{values: [][]byte{v}}
	}
	n := max(1, min(jsonPoolValuesMax, jsonPoolBytesMax/int(size)))
	rng := rand.New(rand.NewPCG(seed, 0x5354))
	p := &valuePool{values: make([][]byte, n)}
	for i := range p.values {
		p.values[i] = jsonValue(rng, int(size))
	}
	return p
}

// value returns the next value; the caller may write into it (the e2e
// stamp) as the producer copies it on Send.
func (p *valuePool) value() []byte {
	v := p.values[p.next]
	p.next++
	if p.next == len(p.values) {
		p.next = 0
	}
	return v
}

var jsonWords = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
	"india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"}

// jsonValue is exactly size bytes: an array of events, closed when it
// fits, padded with spaces, and cut at size when even one event does not.
func jsonValue(rng *rand.Rand, size int) []byte {
	word := func() string { return jsonWords[rng.IntN(len(jsonWords))] }
	b := make([]byte, 0, size+512)
	b = append(b, '[')
	for len(b) < size {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"id":"%016x","user":{"id":%d,"name":"%s %s","country":"%s"},`+
			`"event":"%s","amount":%d.%02d,"currency":"EUR","items":%d,"tags":["%s","%s"],"ts":%d}`,
			rng.Uint64(), rng.IntN(1_000_000), word(), word(), word()[:2], word(), rng.IntN(10_000), rng.IntN(100),
			rng.IntN(20), word(), word(), 1_764_800_000_000+rng.Int64N(86_400_000))
	}
	// Close after the last whole event that leaves room for the ']'.
	if end := lastEventEnd(b, size-1); end > 0 {
		b = append(b[:end], ']')
		for len(b) < size {
			b = append(b, ' ')
		}
	}
	return b[:size]
}

// lastEventEnd is the end of the last event ("}," or "}" at the top
// level) within b[:limit], or 0.
func lastEventEnd(b []byte, limit int) int {
	depth, end := 0, 0
	for i := 0; i < len(b) && i < limit; i++ {
		switch b[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				end = i + 1
			}
		}
	}
	return end
}
