package schema

import (
	"encoding/binary"
	"errors"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema/fb"
)

// sampleEnvelope is a verified ProduceRequest message and the body of a
// small frame, the two root types the verifier guards.
func sampleEnvelope(t testing.TB) []byte {
	m := sampleMessages()[8]
	return append([]byte{}, NewEncoder().Encode(headerFor(m, 1), m)...)
}

func sampleBody(t testing.TB) []byte {
	return buildFrame(t, BatchOptions{}, sampleRecords())[FrameHeaderSize:]
}

func wantVerifyErr(t *testing.T, err, kind error) {
	t.Helper()
	var ve *VerifyError
	if !errors.Is(err, kind) || !errors.As(err, &ve) {
		t.Fatalf("got %v, want %v", err, kind)
	}
}

func TestVerifyAcceptsValid(t *testing.T) {
	if err := VerifyBody(sampleBody(t)); err != nil {
		t.Fatal(err)
	}
	if err := VerifyEnvelope(sampleEnvelope(t)); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRejectsEveryTruncation(t *testing.T) {
	// Cutting only the builder's trailing alignment padding leaves a valid
	// buffer; any other cut must fail.
	body := sampleBody(t)
	for n := 0; n < len(body); n++ {
		if err := VerifyBody(body[:n]); err == nil {
			for _, c := range body[n:] {
				if c != 0 {
					t.Fatalf("body truncated to %d verified", n)
				}
			}
		}
	}
	env := sampleEnvelope(t)
	for n := 0; n < len(env); n++ {
		b := append([]byte{}, env[:n]...)
		if n >= 4 { // keep the prefix consistent so the FlatBuffer itself is judged
			binary.LittleEndian.PutUint32(b, uint32(n-4))
		}
		if err := VerifyEnvelope(b); err == nil {
			for _, c := range env[n:] {
				if c != 0 {
					t.Fatalf("envelope truncated to %d verified", n)
				}
			}
		}
	}
}

func TestVerifyRootOffsetOutOfBounds(t *testing.T) {
	body := sampleBody(t)
	binary.LittleEndian.PutUint32(body, uint32(len(body)))
	wantVerifyErr(t, VerifyBody(body), ErrVerifyBounds)
	binary.LittleEndian.PutUint32(body, 0)
	wantVerifyErr(t, VerifyBody(body), ErrVerifyBounds)
	binary.LittleEndian.PutUint32(body, 0x80000000)
	wantVerifyErr(t, VerifyBody(body), ErrVerifyBounds)
	binary.LittleEndian.PutUint32(body, 2)
	wantVerifyErr(t, VerifyBody(body), ErrVerifyAlign)
}

func TestVerifyIdentifierAndSize(t *testing.T) {
	body := sampleBody(t)
	body[4] = 'X'
	wantVerifyErr(t, VerifyBody(body), ErrVerifyIdentifier)
	small := Limits{BytesMax: 8, DepthMax: 4, ObjectsMax: 10, VectorLenMax: 10}
	wantVerifyErr(t, verifyRoot(sampleBody(t), 0, BodyIdentifier, descRecordBatchBody, &small), ErrVerifySize)
}

// rootTable is the position of the root table of a body.
func rootTable(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func TestVerifyBadVTable(t *testing.T) {
	cases := map[string]func(b []byte){
		"vtable before buffer": func(b []byte) {
			binary.LittleEndian.PutUint32(b[rootTable(b):], 0x7ffffff0)
		},
		"vtable past buffer": func(b []byte) {
			binary.LittleEndian.PutUint32(b[rootTable(b):], uint32(int32(-len(b))))
		},
		"vtable odd": func(b []byte) {
			p := rootTable(b)
			binary.LittleEndian.PutUint32(b[p:], binary.LittleEndian.Uint32(b[p:])+1)
		},
		"vtable size odd": func(b []byte) {
			vt := vtableOf(b, rootTable(b))
			binary.LittleEndian.PutUint16(b[vt:], 5)
		},
		"vtable size too small": func(b []byte) {
			vt := vtableOf(b, rootTable(b))
			binary.LittleEndian.PutUint16(b[vt:], 2)
		},
		"table size past buffer": func(b []byte) {
			vt := vtableOf(b, rootTable(b))
			binary.LittleEndian.PutUint16(b[vt+2:], 0xfff0)
		},
		"field outside table": func(b []byte) {
			vt := vtableOf(b, rootTable(b))
			binary.LittleEndian.PutUint16(b[vt+4:], binary.LittleEndian.Uint16(b[vt+2:]))
		},
		"field inside soffset": func(b []byte) {
			vt := vtableOf(b, rootTable(b))
			binary.LittleEndian.PutUint16(b[vt+4:], 2)
		},
	}
	for name, mutate := range cases {
		body := sampleBody(t)
		mutate(body)
		err := VerifyBody(body)
		if !errors.Is(err, ErrVerifyVTable) && !errors.Is(err, ErrVerifyAlign) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func vtableOf(b []byte, table uint32) uint32 {
	return uint32(int64(table) - int64(int32(binary.LittleEndian.Uint32(b[table:]))))
}

func TestVerifyStringNotTerminated(t *testing.T) {
	env := sampleEnvelope(t)
	// The client id "client-1" is followed by its NUL.
	i := indexOfString(env, "client-1\x00")
	env[i+len("client-1")] = '!'
	wantVerifyErr(t, VerifyEnvelope(env), ErrVerifyString)
	// A length that runs past the buffer.
	env = sampleEnvelope(t)
	i = indexOfString(env, "client-1\x00")
	binary.LittleEndian.PutUint32(env[i-4:], 1<<30)
	wantVerifyErr(t, VerifyEnvelope(env), ErrVerifyBounds)
}

func indexOfString(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	panic("not found: " + s)
}

func TestVerifyUnionMismatch(t *testing.T) {
	build := func(typ fb.Message, withValue bool) []byte {
		b := flatbuffers.NewBuilder(64)
		fb.MetadataRequestStart(b)
		msg := fb.MetadataRequestEnd(b)
		fb.EnvelopeStart(b)
		fb.EnvelopeAddApiKey(b, fb.ApiKeyMetadata)
		if typ != fb.MessageNONE {
			fb.EnvelopeAddMessageType(b, typ)
		}
		if withValue {
			fb.EnvelopeAddMessage(b, msg)
		}
		b.FinishSizePrefixedWithFileIdentifier(fb.EnvelopeEnd(b), envelopeIdent)
		return b.FinishedBytes()
	}
	if err := VerifyEnvelope(build(fb.MessageMetadataRequest, true)); err != nil {
		t.Fatal(err)
	}
	wantVerifyErr(t, VerifyEnvelope(build(fb.MessageMetadataRequest, false)), ErrVerifyUnion)
	wantVerifyErr(t, VerifyEnvelope(build(fb.MessageNONE, true)), ErrVerifyUnion)
	wantVerifyErr(t, VerifyEnvelope(build(fb.Message(200), true)), ErrVerifyUnion)
	// Tag says ProduceRequest while the value is a table whose fields do
	// not fit ProduceRequest's description: its slot 2 (topics) would be a
	// vector, here it is out of the table.
	if err := VerifyEnvelope(build(fb.MessageProduceRequest, true)); err != nil {
		t.Fatalf("an empty table is a valid ProduceRequest too: %v", err)
	}
}

func TestVerifyRequiredField(t *testing.T) {
	b := flatbuffers.NewBuilder(64)
	fb.ProduceTopicStart(b) // no name
	tp := fb.ProduceTopicEnd(b)
	fb.ProduceRequestStartTopicsVector(b, 1)
	b.PrependUOffsetT(tp)
	v := b.EndVector(1)
	fb.ProduceRequestStart(b)
	fb.ProduceRequestAddTopics(b, v)
	msg := fb.ProduceRequestEnd(b)
	fb.EnvelopeStart(b)
	fb.EnvelopeAddApiKey(b, fb.ApiKeyProduce)
	fb.EnvelopeAddMessageType(b, fb.MessageProduceRequest)
	fb.EnvelopeAddMessage(b, msg)
	b.FinishSizePrefixedWithFileIdentifier(fb.EnvelopeEnd(b), envelopeIdent)
	wantVerifyErr(t, VerifyEnvelope(b.FinishedBytes()), ErrVerifyRequired)
}

// descNode is a recursive table used to test the depth limit, which the
// real schemas (not recursive) cannot reach.
var descNode = func() *tableDesc {
	n := &tableDesc{name: "Node"}
	n.fields = []field{fTable("child", n), fTableVector("children", n)}
	return n
}()

// buildNodes builds a chain of depth nodes (fan children under the root,
// each pointing at the same shared node when share is true).
func buildChain(depth int) []byte {
	b := flatbuffers.NewBuilder(64)
	var child flatbuffers.UOffsetT
	for i := 0; i < depth; i++ {
		b.StartObject(2)
		if child != 0 {
			b.PrependUOffsetTSlot(0, child, 0)
		}
		child = b.EndObject()
	}
	b.Finish(child)
	return b.FinishedBytes()
}

func buildFan(n int, share bool) []byte {
	b := flatbuffers.NewBuilder(64)
	leaves := make([]flatbuffers.UOffsetT, n)
	for i := range leaves {
		if i == 0 || !share {
			b.StartObject(2)
			leaves[i] = b.EndObject()
		} else {
			leaves[i] = leaves[0]
		}
	}
	b.StartVector(4, n, 4)
	for i := n - 1; i >= 0; i-- {
		b.PrependUOffsetT(leaves[i])
	}
	v := b.EndVector(n)
	b.StartObject(2)
	b.PrependUOffsetTSlot(1, v, 0)
	b.Finish(b.EndObject())
	return b.FinishedBytes()
}

// buildDAG builds a root whose n children are one shared node, whose n
// children are one shared leaf: n*n visits from O(n) bytes.
func buildDAG(n int) []byte {
	b := flatbuffers.NewBuilder(64)
	node := func(child flatbuffers.UOffsetT) flatbuffers.UOffsetT {
		var v flatbuffers.UOffsetT
		if child != 0 {
			b.StartVector(4, n, 4)
			for i := 0; i < n; i++ {
				b.PrependUOffsetT(child)
			}
			v = b.EndVector(n)
		}
		b.StartObject(2)
		if v != 0 {
			b.PrependUOffsetTSlot(1, v, 0)
		}
		return b.EndObject()
	}
	b.Finish(node(node(node(0))))
	return b.FinishedBytes()
}

func TestVerifyLimits(t *testing.T) {
	lim := Limits{BytesMax: 1 << 20, DepthMax: 5, ObjectsMax: 100, VectorLenMax: 50}
	if err := verifyRoot(buildChain(5), 0, "", descNode, &lim); err != nil {
		t.Fatal(err)
	}
	wantVerifyErr(t, verifyRoot(buildChain(6), 0, "", descNode, &lim), ErrVerifyDepth)

	if err := verifyRoot(buildFan(50, false), 0, "", descNode, &lim); err != nil {
		t.Fatal(err)
	}
	wantVerifyErr(t, verifyRoot(buildFan(51, false), 0, "", descNode, &lim), ErrVerifyVectorLen)

	lim.VectorLenMax = 1000
	wantVerifyErr(t, verifyRoot(buildFan(200, false), 0, "", descNode, &lim), ErrVerifyObjects)
	// Sharing one leaf does not make visits free: each counts.
	lim.ObjectsMax = 150
	wantVerifyErr(t, verifyRoot(buildFan(200, true), 0, "", descNode, &lim), ErrVerifyObjects)
	// And the budget is capped by the buffer's size, so a small DAG that
	// fans out to 10^4 visits cannot buy them with a large ObjectsMax.
	lim.ObjectsMax = 1 << 20
	dag := buildDAG(100)
	if len(dag)/objectBytesMin >= 100*100 {
		t.Fatalf("dag unexpectedly large: %d bytes", len(dag))
	}
	wantVerifyErr(t, verifyRoot(dag, 0, "", descNode, &lim), ErrVerifyObjects)
}

func TestVerifyMisalignedScalar(t *testing.T) {
	// Move the 8-byte timestamp_delta of a record to an offset that is
	// 4-aligned but not 8-aligned: shift its vtable entry by 4 within the
	// table and check the verifier objects (or finds it out of the table).
	body := rawBodyWithTimestamp()
	var r fb.RecordBatchBody
	r.Init(body, flatbuffers.GetUOffsetT(body))
	var rec fb.Record
	r.Records(&rec, 0)
	tab := rec.Table()
	vt := vtableOf(body, uint32(tab.Pos))
	slot := vt + 4 + 2*1 // timestamp_delta
	fo := binary.LittleEndian.Uint16(body[slot:])
	if fo == 0 {
		t.Fatal("no timestamp field")
	}
	tableSize := binary.LittleEndian.Uint16(body[vt+2:])
	moved := fo + 4
	if moved+8 > tableSize {
		moved = fo - 4
	}
	if moved < 4 {
		t.Fatalf("no room to move the field: offset %d in %d", fo, tableSize)
	}
	binary.LittleEndian.PutUint16(body[slot:], moved)
	wantVerifyErr(t, VerifyBody(body), ErrVerifyAlign)
}

func rawBodyWithTimestamp() []byte {
	b := flatbuffers.NewBuilder(64)
	fb.RecordStart(b)
	fb.RecordAddTimestampDelta(b, 0x0102030405060708)
	fb.RecordAddOffsetDelta(b, 1) // non-zero, so present: the table has room
	rec := fb.RecordEnd(b)
	fb.RecordBatchBodyStartRecordsVector(b, 1)
	b.PrependUOffsetT(rec)
	v := b.EndVector(1)
	fb.RecordBatchBodyStart(b)
	fb.RecordBatchBodyAddRecords(b, v)
	b.FinishWithFileIdentifier(fb.RecordBatchBodyEnd(b), bodyIdent)
	return append([]byte{}, b.FinishedBytes()...)
}

// TestVerifyByteFlips flips every byte of valid messages: each result must
// either fail verification or be fully readable without a panic.
func TestVerifyByteFlips(t *testing.T) {
	enc := NewEncoder()
	for _, m := range sampleMessages() {
		orig := append([]byte{}, enc.Encode(headerFor(m, 3), m)...)
		for i := LengthPrefixBytes; i < len(orig); i++ {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				b := append([]byte{}, orig...)
				b[i] ^= x
				var e Envelope
				if e.decode(b) == nil {
					walkEnvelope(&e)
				}
			}
		}
	}
	frame := buildFrame(t, BatchOptions{}, sampleRecords())
	for i := FrameHeaderSize; i < len(frame); i++ {
		b := append([]byte{}, frame...)
		b[i] ^= 0xff
		SealFrame(b)
		var r BatchReader
		if r.Reset(b) == nil {
			var v RecordView
			for r.Next(&v) {
				for j := 0; j < v.HeadersLen(); j++ {
					v.Header(j)
				}
			}
		}
	}
}

func TestVerifyNoAllocs(t *testing.T) {
	body, env := sampleBody(t), sampleEnvelope(t)
	if a := testing.AllocsPerRun(100, func() {
		if VerifyBody(body) != nil || VerifyEnvelope(env) != nil {
			t.Fatal("verify")
		}
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

func TestFrameRecordCountBound(t *testing.T) {
	for _, c := range []struct {
		comp    uint16
		count   uint32
		bodyLen int
		ok      bool
	}{
		{CompressionNone, 100, 100, true},
		{CompressionNone, 101, 100, false},
		{CompressionLZ4, 1000, 100, true}, // lz4 bodies may hold more records than bytes
		{CompressionLZ4, RecordsPerBatchMax + 1, 1 << 20, false},
	} {
		h := FrameHeader{Attributes: c.comp, RecordCount: c.count}
		f := AppendFrameHeader(nil, &h, c.bodyLen)
		f = append(f, make([]byte, c.bodyLen)...)
		if _, err := ParseFrameHeader(f); (err == nil) != c.ok {
			t.Fatalf("%+v: %v", c, err)
		}
	}
}
