package schema

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"
	"github.com/pierrec/lz4/v4"

	"github.com/strata-db/strata/schema/fb"
)

// Differential tests: BatchReader against refBatchReader, the generic
// verifier's path, on valid frames and on every kind of damage.

// sentinels are the errors callers test for with errors.Is.
var sentinels = []error{
	ErrFrameShort, ErrFrameLength, ErrFrameMagic, ErrFrameVersion, ErrFrameCRC, ErrFrameRecords, ErrFrameTruncated,
	ErrBody, ErrBodyCompression, ErrBodyRecords,
	ErrVerify, ErrVerifySize, ErrVerifyIdentifier, ErrVerifyBounds, ErrVerifyAlign, ErrVerifyVTable,
	ErrVerifyString, ErrVerifyDepth, ErrVerifyObjects, ErrVerifyVectorLen, ErrVerifyUnion, ErrVerifyRequired,
}

// sameError fails unless got and want are both nil, or both say the same
// and wrap the same sentinels and the same *VerifyError.
func sameError(t *testing.T, what string, got, want error) {
	t.Helper()
	if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
		t.Fatalf("%s: got error %v, want %v", what, got, want)
	}
	for _, s := range sentinels {
		if errors.Is(got, s) != errors.Is(want, s) {
			t.Fatalf("%s: errors.Is(%v, %v) = %v, want %v", what, got, s, !errors.Is(want, s), errors.Is(want, s))
		}
	}
	var gv, wv *VerifyError
	if errors.As(got, &gv) != errors.As(want, &wv) || (gv != nil && *gv != *wv) {
		t.Fatalf("%s: got verify error %+v, want %+v", what, gv, wv)
	}
}

// sameBytes fails unless got and want are both nil, or hold the same
// bytes. withCap also compares capacities, which agree when both slice the
// same caller-owned buffer (not the readers' own scratch buffers).
func sameBytes(t *testing.T, what string, got, want []byte, withCap bool) {
	t.Helper()
	if (got == nil) != (want == nil) || !bytes.Equal(got, want) || (withCap && cap(got) != cap(want)) {
		t.Fatalf("%s: got %q (nil %v, cap %d), want %q (nil %v, cap %d)",
			what, got, got == nil, cap(got), want, want == nil, cap(want))
	}
}

// sameRecordViews walks both readers to the end and fails on the first
// difference in any record, header or out-of-range header lookup.
func sameRecordViews(t *testing.T, got *BatchReader, want *refBatchReader, withCap bool) {
	t.Helper()
	if got.Len() != want.Len() {
		t.Fatalf("Len %d, want %d", got.Len(), want.Len())
	}
	if got.Header() != want.hdr {
		t.Fatalf("header %+v, want %+v", got.Header(), want.hdr)
	}
	var g, w RecordView
	for i := 0; ; i++ {
		gok, wok := got.Next(&g), want.Next(&w)
		if gok != wok {
			t.Fatalf("record %d: Next %v, want %v", i, gok, wok)
		}
		if !gok {
			break
		}
		if g.Offset != w.Offset || g.TimestampMs != w.TimestampMs {
			t.Fatalf("record %d: offset %d ts %d, want %d %d", i, g.Offset, g.TimestampMs, w.Offset, w.TimestampMs)
		}
		sameBytes(t, "key", g.Key, w.Key, withCap)
		sameBytes(t, "value", g.Value, w.Value, withCap)
		if g.HeadersLen() != w.HeadersLen() {
			t.Fatalf("record %d: %d headers, want %d", i, g.HeadersLen(), w.HeadersLen())
		}
		for j := -1; j <= w.HeadersLen(); j++ {
			gk, gv := g.Header(j)
			wk, wv := w.Header(j)
			sameBytes(t, "header key", gk, wk, withCap)
			sameBytes(t, "header value", gv, wv, withCap)
		}
	}
	if got.Next(&g) {
		t.Fatal("Next after the end")
	}
}

// compareReaders runs frame through both readers with Reset, and through
// ResetCRCChecked against the reference given the frame with its CRC made
// right, and fails on any difference in outcome or records.
func compareReaders(t *testing.T, got *BatchReader, want *refBatchReader, frame []byte) {
	t.Helper()
	gotErr, wantErr := got.Reset(frame), want.Reset(frame)
	sameError(t, "Reset", gotErr, wantErr)
	plain := len(frame) >= FrameHeaderSize && binary.LittleEndian.Uint16(frame[offAttributes:])&AttrCompressionMask == CompressionNone
	if wantErr == nil {
		sameRecordViews(t, got, want, plain)
	} else {
		noRecords(t, got)
	}

	sealed := frame
	if n, err := PeekFrameLength(frame, MaxFrameBytes); err == nil && n <= len(frame) {
		sealed = append([]byte(nil), frame...)
		SealFrame(sealed)
	}
	gotErr, wantErr = got.ResetCRCChecked(frame), want.Reset(sealed)
	sameError(t, "ResetCRCChecked", gotErr, wantErr)
	if wantErr == nil {
		// The header reports the CRC field as found, unchecked.
		want.hdr.CRC = binary.LittleEndian.Uint32(frame[offCRC:])
		sameRecordViews(t, got, want, plain)
	} else {
		noRecords(t, got)
	}
}

// noRecords fails unless r, after a failed Reset, yields no records.
func noRecords(t *testing.T, r *BatchReader) {
	t.Helper()
	if r.Len() != 0 || r.Next(&RecordView{}) {
		t.Fatal("records left after a failed Reset")
	}
}

// Fuzz inputs: mode (its low bits modulo fuzzModes) picks how the frame is
// made from data and muts; its high bits are flags.
const (
	// fuzzModeRawBody: data is the body, muts flips bytes of it; the
	// header has recordCount count and maxTimestampMs maxTs.
	fuzzModeRawBody = iota
	// fuzzModeBuilt: data describes records (see fuzzRecords), built by
	// BatchBuilder; muts flips bytes of the body. A non-zero count or
	// maxTs replaces the header's.
	fuzzModeBuilt
	// fuzzModeFrame: data is the whole frame.
	fuzzModeFrame
	fuzzModes
	// fuzzModeMask keeps the mode's bits apart from the flags'.
	fuzzModeMask = 0x0f

	// fuzzFlagLZ4 compresses the body (raw and built modes) after the
	// mutations, so that the decompressed body is the mutated one.
	fuzzFlagLZ4 = 0x10
	// fuzzFlagKeepCRC leaves the CRC of a whole frame as the fuzzer wrote
	// it, instead of sealing the frame.
	fuzzFlagKeepCRC = 0x20

	// fuzzMutationBytes is one mutation: a 16-bit position (modulo the
	// body's length) and a byte to XOR in.
	fuzzMutationBytes = 3
	// fuzzRecordsMax and fuzzFieldBytesMax keep built bodies small.
	fuzzRecordsMax    = 64
	fuzzFieldBytesMax = 16
)

// fuzzFrame makes a frame from the fuzzer's arguments, as the fuzzMode
// constants describe.
func fuzzFrame(t testing.TB, mode uint8, count uint32, maxTs int64, data, muts []byte) []byte {
	var h FrameHeader
	var body []byte
	switch (mode & fuzzModeMask) % fuzzModes {
	case fuzzModeRawBody:
		body = append([]byte(nil), data...)
		h = FrameHeader{RecordCount: count, MaxTimestampMs: maxTs}
	case fuzzModeBuilt:
		frame := buildFrame(t, BatchOptions{}, fuzzRecords(data))
		var err error
		if h, err = CheckFrame(frame); err != nil {
			t.Fatal(err)
		}
		body = frame[FrameHeaderSize:]
		if count != 0 {
			h.RecordCount = count
		}
		if maxTs != 0 {
			h.MaxTimestampMs = maxTs
		}
	default:
		frame := append([]byte(nil), data...)
		if mode&fuzzFlagKeepCRC == 0 {
			if n, err := PeekFrameLength(frame, MaxFrameBytes); err == nil && n <= len(frame) {
				SealFrame(frame)
			}
		}
		return frame
	}
	for m := muts; len(m) >= fuzzMutationBytes && len(body) > 0; m = m[fuzzMutationBytes:] {
		body[int(binary.LittleEndian.Uint16(m))%len(body)] ^= m[2]
	}
	h.Attributes = CompressionNone
	if mode&fuzzFlagLZ4 != 0 {
		var c lz4.Compressor
		if z, ok := compressBody(&c, nil, body, false); ok {
			h.Attributes, body = CompressionLZ4, z
		}
	}
	frame := AppendFrameHeader(nil, &h, len(body))
	frame = append(frame, body...)
	SealFrame(frame)
	return frame
}

// fuzzRecords reads records from b, each as a flags byte and then its
// fields: bit 0 a null key, bit 1 a null value, bits 2-3 the number of
// headers, bit 4 null header values, bits 5-7 the timestamp. A non-null
// field is a length byte (modulo fuzzFieldBytesMax) and that many bytes.
// There is always at least one record.
func fuzzRecords(b []byte) []Record {
	field := func(null bool) []byte {
		if null {
			return nil
		}
		n := 0
		if len(b) > 0 {
			n, b = int(b[0])%fuzzFieldBytesMax, b[1:]
		}
		n = min(n, len(b))
		out := append([]byte{}, b[:n]...)
		b = b[n:]
		return out
	}
	var recs []Record
	for len(b) > 0 && len(recs) < fuzzRecordsMax {
		fl := b[0]
		b = b[1:]
		r := Record{TimestampMs: int64(fl >> 5)}
		r.Key = field(fl&1 != 0)
		r.Value = field(fl&2 != 0)
		for range (fl >> 2) & 3 {
			r.Headers = append(r.Headers, RecordHeader{Key: field(false), Value: field(fl&0x10 != 0)})
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		recs = append(recs, Record{})
	}
	return recs
}

// batchReaderSeed is one input of FuzzBatchReaderMatchesVerifier.
type batchReaderSeed struct {
	mode       uint8
	count      uint32
	maxTs      int64
	data, muts []byte
}

func batchReaderSeeds(t testing.TB) []batchReaderSeed {
	plain := buildFrame(t, BatchOptions{}, sampleRecords())
	body := plain[FrameHeaderSize:]
	recs := []byte{
		0x00, 2, 'k', '0', 2, 'v', '0', // key and value
		0x21, 3, 'a', 'b', 'c', // null key, later timestamp
		0x4a, 0, 2, 'h', '1', 1, 'x', 2, 'h', '2', 0, // null value, empty key, two headers
		0x16, 0, 1, 'h', // null key and value, one header without a value
	}
	seeds := []batchReaderSeed{
		{mode: fuzzModeRawBody, count: 3, maxTs: 5, data: body},
		{mode: fuzzModeRawBody | fuzzFlagLZ4, count: 3, maxTs: 5, data: body},
		{mode: fuzzModeRawBody, count: 4, maxTs: 0, data: rawBody([]uint32{0, 3})},
		{mode: fuzzModeRawBody, count: 2, maxTs: 0, data: rawBody([]uint32{1, 0})},
		{mode: fuzzModeRawBody, count: 1, maxTs: 0, data: sharedBody(4, 4)},
		{mode: fuzzModeBuilt, data: recs},
		{mode: fuzzModeBuilt | fuzzFlagLZ4, data: bytes.Repeat(recs, 4)},
		{mode: fuzzModeBuilt, data: recs, muts: []byte{0, 0, 0x04}},
		{mode: fuzzModeBuilt, count: 2, data: recs},
		{mode: fuzzModeBuilt, maxTs: -1, data: recs},
	}
	for _, f := range fuzzFrameSeeds(t) {
		seeds = append(seeds, batchReaderSeed{mode: fuzzModeFrame, data: f})
	}
	badCRC := append([]byte(nil), plain...)
	badCRC[offCRC] ^= 1
	seeds = append(seeds, batchReaderSeed{mode: fuzzModeFrame | fuzzFlagKeepCRC, data: badCRC})
	return seeds
}

func FuzzBatchReaderMatchesVerifier(f *testing.F) {
	for _, s := range batchReaderSeeds(f) {
		f.Add(s.mode, s.count, s.maxTs, s.data, s.muts)
	}
	// Reused across inputs, as a consumer reuses its reader, so that state
	// left by one frame cannot change the outcome of the next.
	var got BatchReader
	var want refBatchReader
	f.Fuzz(func(t *testing.T, mode uint8, count uint32, maxTs int64, data, muts []byte) {
		compareReaders(t, &got, &want, fuzzFrame(t, mode, count, maxTs, data, muts))
	})
}

// sealedFrame wraps body in a sealed, uncompressed frame.
func sealedFrame(h FrameHeader, body []byte) []byte {
	f := AppendFrameHeader(nil, &h, len(body))
	f = append(f, body...)
	SealFrame(f)
	return f
}

// TestBatchReaderMatchesVerifierEveryByte damages every byte of a body
// holding every field kind in several ways, and cuts it at every length.
func TestBatchReaderMatchesVerifierEveryByte(t *testing.T) {
	frame := buildFrame(t, BatchOptions{}, sampleRecords())
	h, err := CheckFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	body := frame[FrameHeaderSize:]
	var got BatchReader
	var want refBatchReader
	for i := range body {
		for _, x := range []byte{0x01, 0x02, 0x04, 0x08, 0x10, 0x80, 0xff} {
			b := append([]byte(nil), body...)
			b[i] ^= x
			compareReaders(t, &got, &want, sealedFrame(h, b))
		}
		for _, v := range []byte{0x00, 0xff} {
			b := append([]byte(nil), body...)
			b[i] = v
			compareReaders(t, &got, &want, sealedFrame(h, b))
		}
	}
	for n := range len(body) {
		compareReaders(t, &got, &want, sealedFrame(h, body[:n]))
	}
	// The frame header's record checks, on the same body.
	for _, c := range []struct {
		count uint32
		maxTs int64
	}{{1, 5}, {2, 5}, {3, 4}, {3, -1}, {4, 5}, {1 << 20, 1 << 62}} {
		hh := h
		hh.FirstTimestampMs, hh.RecordCount, hh.MaxTimestampMs = 0, c.count, c.maxTs
		compareReaders(t, &got, &want, sealedFrame(hh, body))
	}
}

// sharedBody builds a body whose records vector holds the same Record
// records times, a record whose headers vector holds the same Header
// headers times. Shared objects are visited once per reference, so the
// object budget grows out of proportion to the bytes.
func sharedBody(records, headers int) []byte {
	b := flatbuffers.NewBuilder(256)
	k := b.CreateString("h")
	v := b.CreateByteVector([]byte("v"))
	fb.HeaderStart(b)
	fb.HeaderAddKey(b, k)
	fb.HeaderAddValue(b, v)
	hdr := fb.HeaderEnd(b)
	fb.RecordStartHeadersVector(b, headers)
	for range headers {
		b.PrependUOffsetT(hdr)
	}
	hv := b.EndVector(headers)
	key := b.CreateByteVector([]byte("key"))
	val := b.CreateByteVector([]byte("value"))
	fb.RecordStart(b)
	fb.RecordAddKey(b, key)
	fb.RecordAddValue(b, val)
	fb.RecordAddHeaders(b, hv)
	rec := fb.RecordEnd(b)
	fb.RecordBatchBodyStartRecordsVector(b, records)
	for range records {
		b.PrependUOffsetT(rec)
	}
	rv := b.EndVector(records)
	fb.RecordBatchBodyStart(b)
	fb.RecordBatchBodyAddRecords(b, rv)
	b.FinishWithFileIdentifier(fb.RecordBatchBodyEnd(b), bodyIdent)
	return b.FinishedBytes()
}

func TestBatchReaderObjectBudget(t *testing.T) {
	var got BatchReader
	var want refBatchReader
	// Shared records: one verifies (then fails on its repeated offset
	// delta), many run out of objects first.
	for _, c := range []struct{ records, headers int }{{1, 1}, {2, 2}, {100, 100}, {1000, 1}, {1, 1000}} {
		frame := sealedFrame(FrameHeader{RecordCount: uint32(c.records)}, sharedBody(c.records, c.headers))
		compareReaders(t, &got, &want, frame)
		if c.records*c.headers >= 1000 && !errors.Is(got.Reset(frame), ErrVerifyObjects) {
			t.Fatalf("%+v: %v, want the object budget exceeded", c, got.Reset(frame))
		}
	}
}

func TestResetCRCChecked(t *testing.T) {
	for _, comp := range []uint16{CompressionNone, CompressionLZ4} {
		frame := buildFrame(t, BatchOptions{Compression: comp}, sampleRecords())
		frame[offCRC] ^= 1
		var r BatchReader
		if err := r.Reset(frame); !errors.Is(err, ErrFrameCRC) {
			t.Fatalf("Reset with a bad CRC: %v", err)
		}
		if err := r.ResetCRCChecked(frame); err != nil {
			t.Fatalf("ResetCRCChecked with a bad CRC: %v", err)
		}
		var v RecordView
		n := 0
		for r.Next(&v) {
			n++
		}
		if n != len(sampleRecords()) {
			t.Fatalf("%d records, want %d", n, len(sampleRecords()))
		}
		short := frame[:len(frame)-1]
		if err := r.Reset(short); !errors.Is(err, ErrFrameTruncated) {
			t.Fatalf("Reset of a truncated frame: %v", err)
		}
		if err := r.ResetCRCChecked(short); !errors.Is(err, ErrFrameTruncated) {
			t.Fatalf("ResetCRCChecked of a truncated frame: %v", err)
		}
		// Every header check but the CRC still applies.
		bad := append([]byte(nil), frame...)
		bad[offReserved] = 1
		if err := r.ResetCRCChecked(bad); !errors.Is(err, ErrFrameVersion) {
			t.Fatalf("ResetCRCChecked with a reserved byte set: %v", err)
		}
	}
}

// TestRecordDecodeMatchesDescriptions ties the slots, sizes and names of
// record_decode.go to the generic verifier's descriptions of batch.fbs,
// which TestDescriptionsMatchSchema ties to the schema.
func TestRecordDecodeMatchesDescriptions(t *testing.T) {
	type use struct {
		desc  *tableDesc
		slot  int
		ref   fieldRef
		kind  fieldKind
		bytes uint32
	}
	for _, u := range []use{
		{descRecordBatchBody, bodySlotRecords, refBodyRecords, kindTableVector, uoffsetBytes},
		{descRecord, recordSlotOffsetDelta, refRecordOffsetDelta, kindScalar, offsetDeltaBytes},
		{descRecord, recordSlotTimestampDelta, refRecordTimestampDelta, kindScalar, timestampDeltaBytes},
		{descRecord, recordSlotKey, refRecordKey, kindScalarVector, byteVectorElemBytes},
		{descRecord, recordSlotValue, refRecordValue, kindScalarVector, byteVectorElemBytes},
		{descRecord, recordSlotHeaders, refRecordHeaders, kindTableVector, uoffsetBytes},
		{descHeader, headerSlotKey, refHeaderKey, kindString, uoffsetBytes},
		{descHeader, headerSlotValue, refHeaderValue, kindScalarVector, byteVectorElemBytes},
	} {
		i := (u.slot - vtableHeaderBytes) / voffsetBytes
		f := u.desc.fields[i]
		n := refNames[u.ref]
		if n.table != u.desc.name || n.field != f.name || f.kind != u.kind {
			t.Errorf("slot %d of %s: decoder reads %s.%s kind %d, description has %s kind %d",
				u.slot, u.desc.name, n.table, n.field, u.kind, f.name, f.kind)
		}
		size := f.size
		if f.kind == kindTableVector || f.kind == kindString {
			size = uoffsetBytes // the decoder's element: an offset
		}
		if size != u.bytes {
			t.Errorf("%s.%s: decoder assumes %d bytes, description has %d", n.table, n.field, u.bytes, size)
		}
		if wantReq := u.ref == refBodyRecords || u.ref == refHeaderKey; f.required != wantReq {
			t.Errorf("%s.%s: required %v, the decoder checks %v", n.table, n.field, f.required, wantReq)
		}
	}
	want := map[*tableDesc]int{descRecordBatchBody: 1, descRecord: 5, descHeader: 2}
	for d, n := range want {
		if len(d.fields) != n {
			t.Errorf("%s has %d fields; the decoder reads %d", d.name, len(d.fields), n)
		}
	}
	for _, r := range []fieldRef{refBody, refRecord, refHeader} {
		if refNames[r].field != "" {
			t.Errorf("table ref %d names a field", r)
		}
	}
	// Headers sit at depth 3: the generic verifier must allow that, as the
	// decoder does not count depth.
	if bodyLimits.DepthMax < 3 {
		t.Errorf("bodyDepthMax %d: headers at depth 3 are refused by VerifyBody", bodyLimits.DepthMax)
	}
}
