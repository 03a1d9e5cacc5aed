package server

// The checks of TestFetchHoldsRandomOps (fetch_holds_random_test.go):
// each answer against the model, and the broker's state once every
// client is gone.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// check checks a fetch answer read whole.
func (h *holdsRun) check(f *holdsFetch, env *fb.EnvelopeT, trailing []byte) {
	h.t.Helper()
	if env.CorrelationId != f.corr || env.ErrorCode != fb.ErrorCodeNone || env.Message == nil {
		h.fatalf("fetch answer: correlation %d (want %d), error %v", env.CorrelationId, f.corr, env.ErrorCode)
	}
	resp, ok := env.Message.Value.(*fb.FetchResponseT)
	if !ok || len(resp.Topics) != 1 || resp.Topics[0].Name != f.topic || len(resp.Topics[0].Partitions) != len(f.parts) {
		h.fatalf("fetch answer of %s does not match its request: %+v", f.topic, env.Message.Value)
	}
	cur := h.live[f.topic]
	whole := cur != nil && cur.gen == f.gen // not deleted since it was sent
	if whole {
		h.stats["checked exact"]++
	} else {
		h.stats["checked after deletion"]++
	}
	topMax := int64(f.maxBytes)
	if topMax <= 0 {
		topMax = fetchBytesDefault
	}
	var total int64
	rest := trailing
	for i, fp := range f.parts {
		r := resp.Topics[0].Partitions[i]
		if r.Partition != fp.index {
			h.fatalf("fetch %s: entry %d is partition %d, want %d", f.topic, i, r.Partition, fp.index)
		}
		if int(r.FramesBytes) > len(rest) {
			h.fatalf("fetch %s-%d: %d frame bytes, %d left in the answer", f.topic, fp.index, r.FramesBytes, len(rest))
		}
		region := rest[:r.FramesBytes]
		rest = rest[r.FramesBytes:]
		where := fmt.Sprintf("fetch %s-%d (gen %d) at %d, max %d", f.topic, fp.index, f.gen, fp.offset, fp.maxBytes)
		if whole {
			h.checkExact(where, cur.parts[fp.index], fp, r, region, &total, topMax)
		} else {
			h.checkAfterDeletion(where, f, fp, r, region)
		}
	}
	if len(rest) != 0 {
		h.fatalf("fetch %s: %d trailing bytes no entry names", f.topic, len(rest))
	}
}

// checkExact checks one partition's entry against the model: the frames
// the log's read gives from the frame holding the offset, up to the high
// watermark the entry names, within the partition's and the answer's
// max bytes.
func (h *holdsRun) checkExact(where string, pm *holdsPart, fp holdsFetchPart, r *fb.FetchPartitionResponseT, region []byte, total *int64, topMax int64) {
	h.t.Helper()
	end := int64(len(pm.values))
	switch r.ErrorCode {
	case fb.ErrorCodeNotLeader:
		if fp.served || len(region) != 0 || r.NextFetchOffset != -1 {
			h.fatalf("%s: NOT_LEADER (served before: %v), %d bytes, next %d", where, fp.served, len(region), r.NextFetchOffset)
		}
		h.stats["fetch not leader"]++
		return
	case fb.ErrorCodeOffsetOutOfRange:
		if r.HighWatermark < fp.sendEnd || r.HighWatermark > end || fp.offset <= r.HighWatermark || len(region) != 0 || r.NextFetchOffset != -1 {
			h.fatalf("%s: OFFSET_OUT_OF_RANGE with high watermark %d (records %d..%d), %d bytes, next %d",
				where, r.HighWatermark, fp.sendEnd, end, len(region), r.NextFetchOffset)
		}
		h.stats["fetch out of range"]++
		return
	case fb.ErrorCodeNone:
	default:
		h.fatalf("%s: %v", where, r.ErrorCode)
	}
	hw := r.HighWatermark
	if hw < fp.sendEnd || hw > end || r.LogStartOffset != 0 || fp.offset > end {
		h.fatalf("%s: high watermark %d (records %d..%d), log start %d", where, hw, fp.sendEnd, end, r.LogStartOffset)
	}
	// The log's read: whole frames from the one holding the offset, the
	// first always, then while they fit max bytes and end at or below the
	// high watermark.
	partMax := int64(fp.maxBytes)
	if partMax <= 0 {
		partMax = fetchBytesDefault
	}
	var want []holdsFrame
	var size int64
	if fp.offset < hw {
		i, _ := slices.BinarySearchFunc(pm.frames, fp.offset, func(f holdsFrame, off int64) int {
			switch {
			case f.next <= off:
				return -1
			case f.base > off:
				return 1
			}
			return 0
		})
		for ; i < len(pm.frames); i++ {
			f := pm.frames[i]
			if f.next > hw || (size > 0 && size+f.bytes > partMax) {
				break
			}
			want = append(want, f)
			size += f.bytes
			if size >= partMax {
				break
			}
		}
	}
	if size > 0 && *total > 0 && *total+size > topMax {
		want, size = nil, 0 // left out by the answer's max bytes
	}
	*total += size
	next := fp.offset
	if len(want) > 0 {
		next = want[len(want)-1].next
	}
	if int64(len(region)) != size || r.NextFetchOffset != next {
		h.fatalf("%s: %d bytes, next %d; want %d bytes in %d frames, next %d (high watermark %d)",
			where, len(region), r.NextFetchOffset, size, len(want), next, hw)
	}
	if len(want) == 0 {
		pm.served = true
		return
	}
	off := want[0].base
	h.eachRecord(where, region, func(o int64, k, v []byte) {
		if o != off || o >= end || !bytes.Equal(k, pm.keys[o]) || !bytes.Equal(v, pm.values[o]) {
			h.fatalf("%s: record at offset %d (want %d) differs from the one produced", where, o, off)
		}
		off++
	})
	if off != next {
		h.fatalf("%s: records up to %d, want up to %d", where, off, next)
	}
	pm.served = true
}

// checkAfterDeletion checks an entry of an answer whose topic was deleted
// after it was sent: whole CRC-valid frames with consecutive offsets from
// the frame holding the fetch offset, each record one some generation of
// the topic, from the request's on, took at that offset.
func (h *holdsRun) checkAfterDeletion(where string, f *holdsFetch, fp holdsFetchPart, r *fb.FetchPartitionResponseT, region []byte) {
	h.t.Helper()
	switch r.ErrorCode {
	case fb.ErrorCodeNone:
	case fb.ErrorCodeNotLeader, fb.ErrorCodeUnknownTopicOrPartition, fb.ErrorCodeOffsetOutOfRange:
		if len(region) != 0 || r.NextFetchOffset != -1 {
			h.fatalf("%s: %v with %d bytes, next %d", where, r.ErrorCode, len(region), r.NextFetchOffset)
		}
		return
	default:
		h.fatalf("%s, deleted since: %v", where, r.ErrorCode)
	}
	if len(region) == 0 {
		if r.NextFetchOffset != fp.offset {
			h.fatalf("%s, deleted since: no bytes, next %d", where, r.NextFetchOffset)
		}
		return
	}
	var gen uint32
	first, off := int64(-1), int64(-1)
	h.eachRecord(where, region, func(o int64, k, v []byte) {
		if first < 0 {
			first, off = o, o
		}
		if o != off || len(v) < 16 {
			h.fatalf("%s, deleted since: record at offset %d, want %d", where, o, off)
		}
		g := binary.LittleEndian.Uint32(v)
		if gen == 0 {
			gen = g
		}
		if g != gen || g < f.gen || int(g) > len(h.gens) || h.gens[g-1].name != f.topic {
			h.fatalf("%s, deleted since: record at %d of generation %d (request's %d, region's %d)", where, o, g, f.gen, gen)
		}
		parts := h.gens[g-1].parts
		if int(fp.index) >= len(parts) || o >= int64(len(parts[fp.index].values)) ||
			!bytes.Equal(v, parts[fp.index].values[o]) || !bytes.Equal(k, parts[fp.index].keys[o]) {
			h.fatalf("%s, deleted since: record at %d differs from what generation %d took", where, o, g)
		}
		off++
	})
	if first > fp.offset || off <= fp.offset || r.NextFetchOffset != off {
		h.fatalf("%s, deleted since: records %d..%d, next %d", where, first, off, r.NextFetchOffset)
	}
	if gen != f.gen {
		h.stats["served by a later generation"]++
	}
}

// eachRecord walks the records of whole frames, checking every frame's
// length and CRC.
func (h *holdsRun) eachRecord(where string, b []byte, fn func(offset int64, key, value []byte)) {
	h.t.Helper()
	var br schema.BatchReader
	var v schema.RecordView
	for len(b) > 0 {
		n, err := schema.PeekFrameLength(b, schema.MaxFrameBytes)
		if err != nil || n > len(b) {
			h.fatalf("%s: no whole frame in the %d bytes left: %v", where, len(b), err)
		}
		if err := br.Reset(b[:n]); err != nil {
			h.fatalf("%s: frame: %v", where, err)
		}
		for br.Next(&v) {
			fn(v.Offset, v.Key, v.Value)
		}
		b = b[n:]
	}
}

// settled lists what is wrong with the shards and the data folder now,
// with no client left: a partition closing or held, an open one not in
// the topic table, a topic table unlike the live topics, a folder of a
// partition no live topic has, or one missing.
func (h *holdsRun) settled() []string {
	var problems []string
	type report struct {
		problems []string
		table    map[string][]bool // a topic's partitions this shard holds
	}
	shards := h.b.srv.Shards()
	for i, sh := range shards {
		bs := h.b.shards[i]
		reports := make(chan report, 1)
		if err := sh.Post(func(*Shard) {
			r := report{table: map[string][]bool{}}
			for _, p := range bs.slots {
				if p == nil {
					continue
				}
				if n := p.fileHolds(); n != 0 {
					r.problems = append(r.problems, fmt.Sprintf("shard %d: %s-%d: %d fetch answers hold its files (closing %v)", i, p.topic, p.index, n, p.closing))
				}
				if p.closing {
					r.problems = append(r.problems, fmt.Sprintf("shard %d: %s-%d still closing", i, p.topic, p.index))
				} else if tp := bs.topics[p.topic]; tp == nil || int(p.index) >= len(tp.parts) || tp.parts[p.index] != p {
					r.problems = append(r.problems, fmt.Sprintf("shard %d: %s-%d open but not in the topic table", i, p.topic, p.index))
				}
			}
			for name, tp := range bs.topics {
				held := make([]bool, len(tp.parts))
				for j, p := range tp.parts {
					held[j] = p != nil
				}
				r.table[name] = held
			}
			reports <- r
		}); err != nil {
			h.t.Fatalf("seed %d: post to shard %d: %v", h.seed, i, err)
		}
		var r report
		select {
		case r = <-reports:
		case <-time.After(10 * time.Second):
			h.t.Fatalf("seed %d: shard %d does not answer", h.seed, i)
		}
		problems = append(problems, r.problems...)
		for name, held := range r.table {
			tp := h.live[name]
			if tp == nil {
				problems = append(problems, fmt.Sprintf("shard %d: deleted topic %s in the topic table", i, name))
				continue
			}
			if len(held) != len(tp.parts) {
				problems = append(problems, fmt.Sprintf("shard %d: topic %s with %d partitions in the table, want %d", i, name, len(held), len(tp.parts)))
				continue
			}
			for j, ok := range held {
				if owns := ownerShard(name, int32(j), len(shards)) == i; ok != owns {
					problems = append(problems, fmt.Sprintf("shard %d: %s-%d open %v, owned %v", i, name, j, ok, owns))
				}
			}
		}
		for name := range h.live {
			if _, ok := r.table[name]; !ok {
				problems = append(problems, fmt.Sprintf("shard %d: live topic %s not in the topic table", i, name))
			}
		}
	}
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		h.t.Fatal(err)
	}
	var got, want []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), holdsTopicPrefix) {
			got = append(got, e.Name())
		}
	}
	for _, tp := range h.live {
		for j := range tp.parts {
			want = append(want, strings.TrimPrefix(partitionDir(h.dir, tp.name, int32(j)), h.dir+string(os.PathSeparator)))
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("partition folders %v, want %v", got, want))
	}
	return problems
}
