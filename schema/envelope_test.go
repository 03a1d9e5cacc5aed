package schema

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/strata-db/strata/schema/fb"
)

func TestEnvelopeRoundTripEveryMessage(t *testing.T) {
	enc := NewEncoder()
	for i, m := range sampleMessages() {
		t.Run(m.Type.String(), func(t *testing.T) {
			h := headerFor(m, int32(100+i))
			b := enc.Encode(h, m)
			var e Envelope
			var err error
			if messageInfo[m.Type].response {
				err = e.DecodeResponse(b)
			} else {
				err = e.DecodeRequest(b)
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.CorrelationId() != h.CorrelationID || e.ApiVersion() != 1 || e.ApiKey() != messageInfo[m.Type].key {
				t.Fatalf("header: corr %d version %d key %v", e.CorrelationId(), e.ApiVersion(), e.ApiKey())
			}
			if got := string(e.ClientId()); got != h.ClientID {
				t.Fatalf("client id %q, want %q", got, h.ClientID)
			}
			got := walkEnvelope(&e)
			if !reflect.DeepEqual(got.Message, m) {
				t.Fatalf("message differs:\n got %+v\nwant %+v", got.Message.Value, m.Value)
			}
			// The other direction refuses it.
			var e2 Envelope
			if messageInfo[m.Type].response {
				err = e2.DecodeRequest(b)
			} else {
				err = e2.DecodeResponse(b)
			}
			if !errors.Is(err, ErrEnvelopeMessage) {
				t.Fatalf("wrong direction: %v", err)
			}
		})
	}
}

func TestEnvelopeTypedAccessors(t *testing.T) {
	enc := NewEncoder()
	msgs := sampleMessages()
	b := enc.Encode(headerFor(msgs[8], 1), msgs[8]) // ProduceRequest
	var e Envelope
	if err := e.DecodeRequest(b); err != nil {
		t.Fatal(err)
	}
	p, err := e.ProduceRequest()
	if err != nil {
		t.Fatal(err)
	}
	var tp fb.ProduceTopic
	var pp fb.ProducePartition
	if p.Acks() != fb.AcksAll || p.TopicsLength() != 1 || !p.Topics(&tp, 0) || !tp.Partitions(&pp, 0) {
		t.Fatal("produce request fields")
	}
	if string(tp.Name()) != "a" || pp.Partition() != 2 || string(pp.FramesBytes()) != "frame bytes stand-in" {
		t.Fatalf("topic %q partition %d frames %q", tp.Name(), pp.Partition(), pp.FramesBytes())
	}
	// The frames slice is the request buffer itself, not a copy.
	if indexOf(b, pp.FramesBytes()) < 0 {
		t.Fatal("frames not sliced in place")
	}
	if _, err := e.FetchRequest(); !errors.Is(err, ErrEnvelopeMessage) {
		t.Fatalf("wrong member: %v", err)
	}
	var empty Envelope
	if _, err := empty.ProduceRequest(); !errors.Is(err, ErrEnvelopeNotReady) {
		t.Fatalf("undecoded: %v", err)
	}
}

// indexOf is the position of sub's backing array within b.
func indexOf(b, sub []byte) int {
	for i := range b {
		if &b[i] == &sub[0] {
			return i
		}
	}
	return -1
}

func TestEnvelopeErrorResponse(t *testing.T) {
	enc := NewEncoder()
	h := &EnvelopeHeader{ApiKey: 77, ApiVersion: 9, CorrelationID: 5, ErrorCode: fb.ErrorCodeUnsupportedVersion}
	b := enc.Encode(h, nil)
	var e Envelope
	if err := e.DecodeResponse(b); err != nil {
		t.Fatal(err)
	}
	if e.ApiKey() != 77 || CodeOf(e.Err()) != fb.ErrorCodeUnsupportedVersion {
		t.Fatalf("key %v err %v", e.ApiKey(), e.Err())
	}
	if err := e.DecodeRequest(b); !errors.Is(err, ErrEnvelopeMessage) {
		t.Fatalf("as request: %v", err)
	}
	// No message and no error is neither a request nor a response.
	b = enc.Encode(&EnvelopeHeader{ApiKey: fb.ApiKeyFetch}, nil)
	if err := e.DecodeResponse(b); !errors.Is(err, ErrEnvelopeMessage) {
		t.Fatalf("empty response: %v", err)
	}
}

func TestEnvelopeApiKeyMismatch(t *testing.T) {
	enc := NewEncoder()
	b := enc.Builder()
	fb.MetadataRequestStart(b)
	msg := fb.MetadataRequestEnd(b)
	fb.EnvelopeStart(b)
	fb.EnvelopeAddApiKey(b, fb.ApiKeyProduce)
	fb.EnvelopeAddMessageType(b, fb.MessageMetadataRequest)
	fb.EnvelopeAddMessage(b, msg)
	b.FinishSizePrefixedWithFileIdentifier(fb.EnvelopeEnd(b), envelopeIdent)
	var e Envelope
	if err := e.DecodeRequest(b.FinishedBytes()); !errors.Is(err, ErrEnvelopeMessage) {
		t.Fatalf("got %v", err)
	}
}

func TestPeekMessageLength(t *testing.T) {
	for _, c := range []struct {
		prefix uint32
		ok     bool
	}{
		{0, false},
		{envelopeBytesMin - LengthPrefixBytes - 1, false},
		{envelopeBytesMin - LengthPrefixBytes, true},
		{EnvelopeBytesMax - LengthPrefixBytes, true},
		{EnvelopeBytesMax - LengthPrefixBytes + 1, false},
		{1<<32 - 1, false},
	} {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], c.prefix)
		n, err := PeekMessageLength(b[:])
		if (err == nil) != c.ok {
			t.Fatalf("prefix %d: %v", c.prefix, err)
		}
		if c.ok && n != int(c.prefix)+LengthPrefixBytes {
			t.Fatalf("prefix %d: n %d", c.prefix, n)
		}
	}
	if _, err := PeekMessageLength([]byte{1, 2}); !errors.Is(err, ErrEnvelopeLength) {
		t.Fatal(err)
	}
	// A prefix that disagrees with the buffer is refused by the verifier.
	b := NewEncoder().Encode(headerFor(sampleMessages()[0], 1), sampleMessages()[0])
	if err := VerifyEnvelope(append(b[:len(b):len(b)], 0, 0, 0, 0)); !errors.Is(err, ErrVerifySize) {
		t.Fatalf("longer buffer: %v", err)
	}
}

func TestEncoderReuseDoesNotAllocate(t *testing.T) {
	enc := NewEncoder()
	h := &EnvelopeHeader{ApiVersion: 1, CorrelationID: 1, ClientID: "c"}
	build := func() []byte {
		b := enc.Builder()
		fb.ProducePartitionStart(b)
		fb.ProducePartitionAddPartition(b, 1)
		p := fb.ProducePartitionEnd(b)
		fb.ProduceTopicStartPartitionsVector(b, 1)
		b.PrependUOffsetT(p)
		parts := b.EndVector(1)
		name := b.CreateString("topic")
		fb.ProduceTopicStart(b)
		fb.ProduceTopicAddName(b, name)
		fb.ProduceTopicAddPartitions(b, parts)
		tp := fb.ProduceTopicEnd(b)
		fb.ProduceRequestStartTopicsVector(b, 1)
		b.PrependUOffsetT(tp)
		topics := b.EndVector(1)
		fb.ProduceRequestStart(b)
		fb.ProduceRequestAddTopics(b, topics)
		return enc.Finish(h, fb.MessageProduceRequest, fb.ProduceRequestEnd(b))
	}
	var e Envelope
	build()
	allocs := testing.AllocsPerRun(100, func() {
		if err := e.DecodeRequest(build()); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per encode+decode", allocs)
	}
}

func TestFetchTrailingRegions(t *testing.T) {
	m := sampleMessages()[11] // FetchResponse: regions of 3, 0 and 2 bytes
	b := NewEncoder().Encode(headerFor(m, 9), m)
	var e Envelope
	if err := e.DecodeResponse(b); err != nil {
		t.Fatal(err)
	}
	r, err := e.FetchResponse()
	if err != nil {
		t.Fatal(err)
	}
	n, err := FetchTrailingBytes(&r, 0)
	if err != nil || n != 5 {
		t.Fatalf("trailing %d, %v", n, err)
	}
	if _, err := FetchTrailingBytes(&r, 4); !errors.Is(err, ErrFetchTrailing) {
		t.Fatalf("limit: %v", err)
	}
	var it FetchRegions
	if err := it.Reset(&r, []byte("abcd")); !errors.Is(err, ErrFetchTrailing) {
		t.Fatalf("short trailing: %v", err)
	}
	if err := it.Reset(&r, []byte("AAAbb")); err != nil {
		t.Fatal(err)
	}
	var p fb.FetchPartitionResponse
	var got []string
	for {
		topic, region, ok := it.Next(&p)
		if !ok {
			break
		}
		got = append(got, string(topic)+"/"+string(rune('0'+p.Partition()))+"="+string(region))
	}
	want := []string{"a/0=AAA", "a/1=", "b/0=bb"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("regions %q, want %q", got, want)
	}
}

func TestNextFrame(t *testing.T) {
	f1 := buildFrame(t, BatchOptions{}, sampleRecords())
	f2 := buildFrame(t, BatchOptions{Compression: CompressionLZ4}, sampleRecords())
	region := append(append(append([]byte{}, f1...), f2...), f1[:len(f1)-1]...)
	var frames int
	for {
		f, rest, err := NextFrame(region)
		if errors.Is(err, ErrFramePartial) {
			if len(rest) != len(f1)-1 {
				t.Fatalf("partial tail %d bytes", len(rest))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r BatchReader
		if err := r.Reset(f); err != nil {
			t.Fatal(err)
		}
		frames++
		region = rest
	}
	if frames != 2 {
		t.Fatalf("%d frames", frames)
	}
	bad := append([]byte{}, f1...)
	binary.LittleEndian.PutUint32(bad, 3)
	if _, _, err := NextFrame(bad); !errors.Is(err, ErrFrameLength) {
		t.Fatalf("bad length: %v", err)
	}
}

func TestErrorCodes(t *testing.T) {
	for c := range fb.EnumNamesErrorCode {
		info, ok := errorInfos[c]
		if !ok || info.name == "" || info.description == "" {
			t.Fatalf("%v has no name or description", c)
		}
	}
	if len(errorInfos) != len(fb.EnumNamesErrorCode) {
		t.Fatalf("%d descriptions for %d codes", len(errorInfos), len(fb.EnumNamesErrorCode))
	}
	if ErrorName(fb.ErrorCodeNotLeader) != "NOT_LEADER" || !ErrorRetriable(fb.ErrorCodeNotLeader) ||
		ErrorRetriable(fb.ErrorCodeCorruptMessage) || ErrorName(999) != "ERROR_CODE(999)" {
		t.Fatal("names")
	}
	cases := []struct {
		err  error
		want fb.ErrorCode
	}{
		{nil, fb.ErrorCodeNone},
		{&CodeError{Code: fb.ErrorCodeNotEnoughReplicas}, fb.ErrorCodeNotEnoughReplicas},
		{ErrFrameCRC, fb.ErrorCodeCorruptMessage},
		{ErrFrameLength, fb.ErrorCodeMessageTooLarge},
		{ErrBodyRecords, fb.ErrorCodeCorruptMessage},
		{ErrVerifyBounds, fb.ErrorCodeInvalidRequest},
		{ErrEnvelopeLength, fb.ErrorCodeInvalidRequest},
		{errors.New("other"), fb.ErrorCodeUnknown},
	}
	for _, c := range cases {
		if got := CodeOf(c.err); got != c.want {
			t.Fatalf("CodeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestGoldenEnvelope(t *testing.T) {
	m := sampleMessages()[8] // ProduceRequest
	b := NewEncoder().Encode(&EnvelopeHeader{ApiVersion: 1, CorrelationID: 7, ClientID: "c"}, m)
	checkGolden(t, "envelope_produce.hex", b)
	// Pin the framing independently of the golden file: prefix, root
	// offset, identifier.
	if int(binary.LittleEndian.Uint32(b)) != len(b)-4 || string(b[8:12]) != EnvelopeIdentifier {
		t.Fatalf("framing % x", b[:12])
	}
}
