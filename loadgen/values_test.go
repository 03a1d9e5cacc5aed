package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// --values json gives values of exactly the record size, valid JSON when
// one event fits, each distinct from the others, and compressible as
// event payloads are: lz4 shrinks a 64 KiB run of them well, but far less
// than the one repeated value of fill.
func TestJSONValues(t *testing.T) {
	for _, size := range []int64{1, 40, 100, 1024, 16 << 10} {
		p := newValuePool(valuesJSON, size, 1)
		seen := map[string]bool{}
		for _, v := range p.values {
			if int64(len(v)) != size {
				t.Fatalf("value of %d bytes for records of %d", len(v), size)
			}
			if size >= 1024 && !json.Valid(v) {
				t.Fatalf("%d B value is not JSON: %s", size, v)
			}
			seen[string(v)] = true
		}
		if size >= 100 && len(seen) != len(p.values) {
			t.Fatalf("%d B: %d distinct values of %d", size, len(seen), len(p.values))
		}
	}
	ratio := func(kind string) float64 {
		p := newValuePool(kind, 1024, 1)
		var run []byte
		for len(run) < 64<<10 {
			run = append(run, p.value()...)
		}
		z := make([]byte, lz4.CompressBlockBound(len(run)))
		n, err := lz4.CompressBlock(run, z, nil)
		if err != nil || n == 0 {
			t.Fatal(err)
		}
		return float64(len(run)) / float64(n)
	}
	js, fill := ratio(valuesJSON), ratio(valuesFill)
	if js < 1.5 || js*5 > fill {
		t.Fatalf("lz4 ratio of json values %.2f, of fill %.2f: want json compressible and far less than fill", js, fill)
	}
	t.Logf("lz4 ratio: json %.2f, fill %.2f", js, fill)
	if a, b := newValuePool(valuesJSON, 1024, 1), newValuePool(valuesJSON, 1024, 2); bytes.Equal(a.values[0], b.values[0]) {
		t.Fatal("two producers' pools start with the same value")
	}
}
