package schema

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/strata-db/strata/schema/fb"
)

// fuzzFrameSeeds are valid frames of every shape: plain, lz4, with
// headers, null and empty keys and values.
func fuzzFrameSeeds(t testing.TB) [][]byte {
	big := make([]Record, 40)
	for i := range big {
		big[i] = Record{Key: []byte("k"), Value: []byte("repeated value repeated value"), TimestampMs: int64(i)}
	}
	return [][]byte{
		buildFrame(t, BatchOptions{}, sampleRecords()),
		buildFrame(t, BatchOptions{Compression: CompressionLZ4}, sampleRecords()),
		buildFrame(t, BatchOptions{Compression: CompressionLZ4}, big),
		buildFrame(t, BatchOptions{}, []Record{{}}),
	}
}

// fuzzEnvelopeSeeds are valid messages of every union member, and an
// error response with no member.
func fuzzEnvelopeSeeds() [][]byte {
	enc := NewEncoder()
	var out [][]byte
	for i, m := range sampleMessages() {
		out = append(out, append([]byte{}, enc.Encode(headerFor(m, int32(i)), m)...))
	}
	out = append(out, append([]byte{}, enc.Encode(&EnvelopeHeader{ApiKey: 5, ErrorCode: 10}, nil)...))
	return out
}

func FuzzFrameDecode(f *testing.F) {
	for _, s := range fuzzFrameSeeds(f) {
		f.Add(s)
	}
	var r BatchReader
	f.Fuzz(func(t *testing.T, in []byte) {
		b := append([]byte(nil), in...)
		// Fuzzers rarely find a matching CRC; seal half the inputs so the
		// body decoder sees mutated bodies too.
		if len(b) >= FrameHeaderSize && b[len(b)-1]&1 == 0 {
			if n, err := PeekFrameLength(b, MaxFrameBytes); err == nil && n <= len(b) {
				SealFrame(b)
			}
		}
		if _, err := CheckFrame(b); err != nil {
			return
		}
		if err := r.Reset(b); err != nil {
			return
		}
		var v RecordView
		n := 0
		for r.Next(&v) {
			for j := 0; j < v.HeadersLen(); j++ {
				v.Header(j)
			}
			n++
		}
		if n != r.Len() {
			t.Fatalf("walked %d of %d records", n, r.Len())
		}
	})
}

func FuzzEnvelopeDecode(f *testing.F) {
	for _, s := range fuzzEnvelopeSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Envelope
		reqErr := e.DecodeRequest(b)
		respErr := e.DecodeResponse(b)
		if reqErr == nil && respErr == nil {
			t.Fatal("decoded as both request and response")
		}
		if e.decode(b) != nil {
			return
		}
		// Verified: every field must be readable.
		walkEnvelope(&e)
		if r, err := e.FetchResponse(); err == nil {
			n, err := FetchTrailingBytes(&r, fuzzTrailingBytesMax)
			if err != nil {
				return
			}
			var it FetchRegions
			if err := it.Reset(&r, make([]byte, n)); err != nil {
				t.Fatal(err)
			}
			var p fb.FetchPartitionResponse
			var sum int64
			for {
				_, region, ok := it.Next(&p)
				if !ok {
					break
				}
				sum += int64(len(region))
			}
			if sum != n {
				t.Fatalf("regions cover %d of %d trailing bytes", sum, n)
			}
		}
	})
}

// fuzzTrailingBytesMax keeps the fuzzer from allocating large trailing
// buffers.
const fuzzTrailingBytesMax = 1 << 16

// TestWriteFuzzCorpus writes the seeds to testdata/fuzz/<Name>/ under
// -update, in Go's corpus file format, so that they run as plain tests and
// start every fuzzing session. Each target is a subtest, so that one
// corpus can be rewritten alone (-run TestWriteFuzzCorpus/<Name>).
func TestWriteFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the seed corpus")
	}
	write := func(name string, seeds [][]any) {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "fuzz", name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, s := range seeds {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), corpusFile(t, s...), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	oneArg := func(seeds [][]byte) [][]any {
		out := make([][]any, len(seeds))
		for i, s := range seeds {
			out[i] = []any{s}
		}
		return out
	}
	write("FuzzFrameDecode", oneArg(fuzzFrameSeeds(t)))
	write("FuzzEnvelopeDecode", oneArg(fuzzEnvelopeSeeds()))
	var batch [][]any
	for _, s := range batchReaderSeeds(t) {
		batch = append(batch, []any{s.mode, s.count, s.maxTs, s.data, s.muts})
	}
	write("FuzzBatchReaderMatchesVerifier", batch)
}

// corpusFile encodes one fuzz input as the go command's corpus files do.
func corpusFile(t *testing.T, vals ...any) []byte {
	b := []byte("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			b = fmt.Appendf(b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case byte:
			b = fmt.Appendf(b, "byte(%q)\n", v)
		case uint32, int64:
			b = fmt.Appendf(b, "%T(%v)\n", v, v)
		default:
			t.Fatalf("no corpus encoding for %T", v)
		}
	}
	return b
}
