package schema

import (
	"encoding/binary"
	"errors"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema/fb"
)

// Envelope errors, beyond verification failures (ErrVerify*).
var (
	ErrEnvelope         = errors.New("schema: invalid envelope")
	ErrEnvelopeLength   = fmt.Errorf("%w: length prefix out of bounds", ErrEnvelope)
	ErrEnvelopeMessage  = fmt.Errorf("%w: message does not match the api key or direction", ErrEnvelope)
	ErrEnvelopeNotReady = fmt.Errorf("%w: no message decoded", ErrEnvelope)
)

// messageInfo says which API each union member belongs to and whether it
// is a response. Indexed by fb.Message; index 0 (NONE) is unused.
var messageInfo = [...]struct {
	key      fb.ApiKey
	response bool
}{
	fb.MessageApiVersionsRequest:      {fb.ApiKeyApiVersions, false},
	fb.MessageApiVersionsResponse:     {fb.ApiKeyApiVersions, true},
	fb.MessageMetadataRequest:         {fb.ApiKeyMetadata, false},
	fb.MessageMetadataResponse:        {fb.ApiKeyMetadata, true},
	fb.MessageCreateTopicsRequest:     {fb.ApiKeyCreateTopics, false},
	fb.MessageCreateTopicsResponse:    {fb.ApiKeyCreateTopics, true},
	fb.MessageDeleteTopicsRequest:     {fb.ApiKeyDeleteTopics, false},
	fb.MessageDeleteTopicsResponse:    {fb.ApiKeyDeleteTopics, true},
	fb.MessageProduceRequest:          {fb.ApiKeyProduce, false},
	fb.MessageProduceResponse:         {fb.ApiKeyProduce, true},
	fb.MessageFetchRequest:            {fb.ApiKeyFetch, false},
	fb.MessageFetchResponse:           {fb.ApiKeyFetch, true},
	fb.MessageListOffsetsRequest:      {fb.ApiKeyListOffsets, false},
	fb.MessageListOffsetsResponse:     {fb.ApiKeyListOffsets, true},
	fb.MessageDescribeQuorumRequest:   {fb.ApiKeyDescribeQuorum, false},
	fb.MessageDescribeQuorumResponse:  {fb.ApiKeyDescribeQuorum, true},
	fb.MessageDescribeLogDirsRequest:  {fb.ApiKeyDescribeLogDirs, false},
	fb.MessageDescribeLogDirsResponse: {fb.ApiKeyDescribeLogDirs, true},
	fb.MessageReplicaFetchRequest:     {fb.ApiKeyReplicaFetch, false},
	fb.MessageReplicaFetchResponse:    {fb.ApiKeyReplicaFetch, true},

	fb.MessageFindCoordinatorRequest:          {fb.ApiKeyFindCoordinator, false},
	fb.MessageFindCoordinatorResponse:         {fb.ApiKeyFindCoordinator, true},
	fb.MessageConsumerGroupHeartbeatRequest:   {fb.ApiKeyConsumerGroupHeartbeat, false},
	fb.MessageConsumerGroupHeartbeatResponse:  {fb.ApiKeyConsumerGroupHeartbeat, true},
	fb.MessageOffsetCommitRequest:             {fb.ApiKeyOffsetCommit, false},
	fb.MessageOffsetCommitResponse:            {fb.ApiKeyOffsetCommit, true},
	fb.MessageOffsetFetchRequest:              {fb.ApiKeyOffsetFetch, false},
	fb.MessageOffsetFetchResponse:             {fb.ApiKeyOffsetFetch, true},
	fb.MessageConsumerGroupDescribeRequest:    {fb.ApiKeyConsumerGroupDescribe, false},
	fb.MessageConsumerGroupDescribeResponse:   {fb.ApiKeyConsumerGroupDescribe, true},
	fb.MessageListGroupsRequest:               {fb.ApiKeyListGroups, false},
	fb.MessageListGroupsResponse:              {fb.ApiKeyListGroups, true},
	fb.MessageDeleteGroupsRequest:             {fb.ApiKeyDeleteGroups, false},
	fb.MessageDeleteGroupsResponse:            {fb.ApiKeyDeleteGroups, true},
	fb.MessageDescribeConfigsRequest:          {fb.ApiKeyDescribeConfigs, false},
	fb.MessageDescribeConfigsResponse:         {fb.ApiKeyDescribeConfigs, true},
	fb.MessageIncrementalAlterConfigsRequest:  {fb.ApiKeyIncrementalAlterConfigs, false},
	fb.MessageIncrementalAlterConfigsResponse: {fb.ApiKeyIncrementalAlterConfigs, true},
	fb.MessageCreatePartitionsRequest:         {fb.ApiKeyCreatePartitions, false},
	fb.MessageCreatePartitionsResponse:        {fb.ApiKeyCreatePartitions, true},
	fb.MessageDeleteRecordsRequest:            {fb.ApiKeyDeleteRecords, false},
	fb.MessageDeleteRecordsResponse:           {fb.ApiKeyDeleteRecords, true},
}

// MessageApiKey is the API a union member belongs to; ok is false for NONE
// and unknown members.
func MessageApiKey(m fb.Message) (key fb.ApiKey, ok bool) {
	if m == fb.MessageNONE || int(m) >= len(messageInfo) {
		return 0, false
	}
	return messageInfo[m].key, true
}

// PeekMessageLength reads the length prefix at the start of b and returns
// the size of the whole message, prefix included, after checking it lies in
// [envelopeBytesMin, EnvelopeBytesMax]. A reader calls it on the first
// LengthPrefixBytes of a message to bound the read before allocating.
func PeekMessageLength(b []byte) (int, error) {
	if len(b) < LengthPrefixBytes {
		return 0, fmt.Errorf("%w: %d bytes", ErrEnvelopeLength, len(b))
	}
	n := uint64(binary.LittleEndian.Uint32(b)) + LengthPrefixBytes
	if n < envelopeBytesMin || n > EnvelopeBytesMax {
		return 0, fmt.Errorf("%w: %d not in [%d, %d]", ErrEnvelopeLength, n, envelopeBytesMin, EnvelopeBytesMax)
	}
	return int(n), nil
}

// envelopeIdent is EnvelopeIdentifier as the builder takes it.
var envelopeIdent = []byte(EnvelopeIdentifier)

// ListOffsets timestamps with a special meaning.
const (
	ListOffsetsEarliest int64 = -2 // the log start offset
	ListOffsetsLatest   int64 = -1 // the log end offset (the next to be written)
)

// EnvelopeHeader holds the envelope fields other than the message.
type EnvelopeHeader struct {
	// ApiKey is taken from the message when there is one; it is used as
	// given only for a response with no message (an error response).
	ApiKey        fb.ApiKey
	ApiVersion    uint16
	CorrelationID int32
	ClientID      string // requests only; empty: absent
	ErrorCode     fb.ErrorCode
}

// Encoder builds messages into one reusable FlatBuffers builder. The bytes
// it returns stay valid until its next use. It is not safe for concurrent
// use.
type Encoder struct {
	b *flatbuffers.Builder
}

// encoderInitialBytes is the builder's first buffer; it grows as needed and
// keeps its size across messages.
const encoderInitialBytes = 4 << 10

// NewEncoder returns an Encoder.
func NewEncoder() *Encoder {
	return &Encoder{b: flatbuffers.NewBuilder(encoderInitialBytes)}
}

// Builder resets the encoder and returns its builder, for callers that build
// a message table by hand (the hot paths: produce requests, fetch
// responses) and then call Finish.
func (e *Encoder) Builder() *flatbuffers.Builder {
	e.b.Reset()
	return e.b
}

// Finish wraps the message table msg (of union member typ, or NONE with msg
// 0) built in Builder() into an envelope, and returns the whole message:
// length prefix and envelope.
func (e *Encoder) Finish(h *EnvelopeHeader, typ fb.Message, msg flatbuffers.UOffsetT) []byte {
	b := e.b
	key := h.ApiKey
	if k, ok := MessageApiKey(typ); ok {
		key = k
	}
	var clientID flatbuffers.UOffsetT
	if h.ClientID != "" {
		clientID = b.CreateString(h.ClientID)
	}
	fb.EnvelopeStart(b)
	fb.EnvelopeAddApiKey(b, key)
	fb.EnvelopeAddApiVersion(b, h.ApiVersion)
	fb.EnvelopeAddCorrelationId(b, h.CorrelationID)
	if clientID != 0 {
		fb.EnvelopeAddClientId(b, clientID)
	}
	fb.EnvelopeAddErrorCode(b, h.ErrorCode)
	if typ != fb.MessageNONE {
		fb.EnvelopeAddMessageType(b, typ)
		fb.EnvelopeAddMessage(b, msg)
	}
	root := fb.EnvelopeEnd(b)
	b.FinishSizePrefixedWithFileIdentifier(root, envelopeIdent)
	return b.FinishedBytes()
}

// Encode builds the whole message for h and m (nil for an error response)
// with the generated object API: convenient for the admin APIs, and
// allocating a little per message.
func (e *Encoder) Encode(h *EnvelopeHeader, m *fb.MessageT) []byte {
	b := e.Builder()
	typ, msg := fb.MessageNONE, flatbuffers.UOffsetT(0)
	if m != nil && m.Type != fb.MessageNONE {
		typ, msg = m.Type, m.Pack(b)
	}
	return e.Finish(h, typ, msg)
}

// Envelope is a verified message. Its embedded fb.Envelope and the typed
// accessors below read the buffer in place; the buffer must stay unchanged
// while they are used. The zero value holds nothing; Decode* fill it.
type Envelope struct {
	fb.Envelope
	ok bool
}

// DecodeRequest verifies b (one whole message, prefix included) as a
// request: a request member whose API matches api_key, and no error code.
func (e *Envelope) DecodeRequest(b []byte) error {
	if err := e.decode(b); err != nil {
		return err
	}
	typ := e.MessageType()
	if int(typ) >= len(messageInfo) || typ == fb.MessageNONE ||
		messageInfo[typ].response || messageInfo[typ].key != e.ApiKey() ||
		e.ErrorCode() != fb.ErrorCodeNone {
		e.ok = false
		return fmt.Errorf("%w: api key %d, message %v, error %d", ErrEnvelopeMessage, e.ApiKey(), typ, e.ErrorCode())
	}
	return nil
}

// DecodeResponse verifies b (one whole message, prefix included, without
// any fetch trailing bytes) as a response: a response member whose API
// matches api_key, or no member and a non-zero error code.
func (e *Envelope) DecodeResponse(b []byte) error {
	if err := e.decode(b); err != nil {
		return err
	}
	typ := e.MessageType()
	var ok bool
	if typ == fb.MessageNONE {
		ok = e.ErrorCode() != fb.ErrorCodeNone
	} else {
		ok = int(typ) < len(messageInfo) && messageInfo[typ].response && messageInfo[typ].key == e.ApiKey()
	}
	if !ok {
		e.ok = false
		return fmt.Errorf("%w: api key %d, message %v, error %d", ErrEnvelopeMessage, e.ApiKey(), typ, e.ErrorCode())
	}
	return nil
}

func (e *Envelope) decode(b []byte) error {
	e.ok = false
	if err := VerifyEnvelope(b); err != nil {
		return err
	}
	e.Init(b, flatbuffers.GetUOffsetT(b[LengthPrefixBytes:])+LengthPrefixBytes)
	e.ok = true
	return nil
}

// Err is the envelope's error code as a Go error, or nil for NONE.
func (e *Envelope) Err() error {
	if !e.ok || e.ErrorCode() == fb.ErrorCodeNone {
		return nil
	}
	return &CodeError{Code: e.ErrorCode()}
}

// table returns the message table when the envelope holds member want.
func (e *Envelope) table(want fb.Message) (flatbuffers.Table, error) {
	var t flatbuffers.Table
	if !e.ok {
		return t, ErrEnvelopeNotReady
	}
	if got := e.MessageType(); got != want {
		return t, fmt.Errorf("%w: want %v, have %v", ErrEnvelopeMessage, want, got)
	}
	e.Message(&t)
	return t, nil
}

// Typed access to the message, one accessor per union member. Each fails
// unless the envelope was decoded and holds that member.

func (e *Envelope) ApiVersionsRequest() (m fb.ApiVersionsRequest, err error) {
	t, err := e.table(fb.MessageApiVersionsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) ApiVersionsResponse() (m fb.ApiVersionsResponse, err error) {
	t, err := e.table(fb.MessageApiVersionsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) MetadataRequest() (m fb.MetadataRequest, err error) {
	t, err := e.table(fb.MessageMetadataRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) MetadataResponse() (m fb.MetadataResponse, err error) {
	t, err := e.table(fb.MessageMetadataResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) CreateTopicsRequest() (m fb.CreateTopicsRequest, err error) {
	t, err := e.table(fb.MessageCreateTopicsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) CreateTopicsResponse() (m fb.CreateTopicsResponse, err error) {
	t, err := e.table(fb.MessageCreateTopicsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) DeleteTopicsRequest() (m fb.DeleteTopicsRequest, err error) {
	t, err := e.table(fb.MessageDeleteTopicsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) DeleteTopicsResponse() (m fb.DeleteTopicsResponse, err error) {
	t, err := e.table(fb.MessageDeleteTopicsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) ProduceRequest() (m fb.ProduceRequest, err error) {
	t, err := e.table(fb.MessageProduceRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) ProduceResponse() (m fb.ProduceResponse, err error) {
	t, err := e.table(fb.MessageProduceResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) FetchRequest() (m fb.FetchRequest, err error) {
	t, err := e.table(fb.MessageFetchRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) FetchResponse() (m fb.FetchResponse, err error) {
	t, err := e.table(fb.MessageFetchResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) ListOffsetsRequest() (m fb.ListOffsetsRequest, err error) {
	t, err := e.table(fb.MessageListOffsetsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

func (e *Envelope) ListOffsetsResponse() (m fb.ListOffsetsResponse, err error) {
	t, err := e.table(fb.MessageListOffsetsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// DescribeQuorumRequest returns the message as a DescribeQuorumRequest.
func (e *Envelope) DescribeQuorumRequest() (m fb.DescribeQuorumRequest, err error) {
	t, err := e.table(fb.MessageDescribeQuorumRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// DescribeQuorumResponse returns the message as a DescribeQuorumResponse.
func (e *Envelope) DescribeQuorumResponse() (m fb.DescribeQuorumResponse, err error) {
	t, err := e.table(fb.MessageDescribeQuorumResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// DescribeLogDirsRequest returns the message as a DescribeLogDirsRequest.
func (e *Envelope) DescribeLogDirsRequest() (m fb.DescribeLogDirsRequest, err error) {
	t, err := e.table(fb.MessageDescribeLogDirsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// DescribeLogDirsResponse returns the message as a DescribeLogDirsResponse.
func (e *Envelope) DescribeLogDirsResponse() (m fb.DescribeLogDirsResponse, err error) {
	t, err := e.table(fb.MessageDescribeLogDirsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// ReplicaFetchRequest returns the message as a ReplicaFetchRequest.
func (e *Envelope) ReplicaFetchRequest() (m fb.ReplicaFetchRequest, err error) {
	t, err := e.table(fb.MessageReplicaFetchRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// ReplicaFetchResponse returns the message as a ReplicaFetchResponse.
func (e *Envelope) ReplicaFetchResponse() (m fb.ReplicaFetchResponse, err error) {
	t, err := e.table(fb.MessageReplicaFetchResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// FindCoordinatorRequest returns the message as a FindCoordinatorRequest.
func (e *Envelope) FindCoordinatorRequest() (m fb.FindCoordinatorRequest, err error) {
	t, err := e.table(fb.MessageFindCoordinatorRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// FindCoordinatorResponse returns the message as a FindCoordinatorResponse.
func (e *Envelope) FindCoordinatorResponse() (m fb.FindCoordinatorResponse, err error) {
	t, err := e.table(fb.MessageFindCoordinatorResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// ConsumerGroupHeartbeatRequest returns the message as a ConsumerGroupHeartbeatRequest.
func (e *Envelope) ConsumerGroupHeartbeatRequest() (m fb.ConsumerGroupHeartbeatRequest, err error) {
	t, err := e.table(fb.MessageConsumerGroupHeartbeatRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// ConsumerGroupHeartbeatResponse returns the message as a ConsumerGroupHeartbeatResponse.
func (e *Envelope) ConsumerGroupHeartbeatResponse() (m fb.ConsumerGroupHeartbeatResponse, err error) {
	t, err := e.table(fb.MessageConsumerGroupHeartbeatResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// OffsetCommitRequest returns the message as a OffsetCommitRequest.
func (e *Envelope) OffsetCommitRequest() (m fb.OffsetCommitRequest, err error) {
	t, err := e.table(fb.MessageOffsetCommitRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// OffsetCommitResponse returns the message as a OffsetCommitResponse.
func (e *Envelope) OffsetCommitResponse() (m fb.OffsetCommitResponse, err error) {
	t, err := e.table(fb.MessageOffsetCommitResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// OffsetFetchRequest returns the message as a OffsetFetchRequest.
func (e *Envelope) OffsetFetchRequest() (m fb.OffsetFetchRequest, err error) {
	t, err := e.table(fb.MessageOffsetFetchRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// OffsetFetchResponse returns the message as a OffsetFetchResponse.
func (e *Envelope) OffsetFetchResponse() (m fb.OffsetFetchResponse, err error) {
	t, err := e.table(fb.MessageOffsetFetchResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// ConsumerGroupDescribeRequest returns the message as a ConsumerGroupDescribeRequest.
func (e *Envelope) ConsumerGroupDescribeRequest() (m fb.ConsumerGroupDescribeRequest, err error) {
	t, err := e.table(fb.MessageConsumerGroupDescribeRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// ConsumerGroupDescribeResponse returns the message as a ConsumerGroupDescribeResponse.
func (e *Envelope) ConsumerGroupDescribeResponse() (m fb.ConsumerGroupDescribeResponse, err error) {
	t, err := e.table(fb.MessageConsumerGroupDescribeResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// ListGroupsRequest returns the message as a ListGroupsRequest.
func (e *Envelope) ListGroupsRequest() (m fb.ListGroupsRequest, err error) {
	t, err := e.table(fb.MessageListGroupsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// ListGroupsResponse returns the message as a ListGroupsResponse.
func (e *Envelope) ListGroupsResponse() (m fb.ListGroupsResponse, err error) {
	t, err := e.table(fb.MessageListGroupsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// DeleteGroupsRequest returns the message as a DeleteGroupsRequest.
func (e *Envelope) DeleteGroupsRequest() (m fb.DeleteGroupsRequest, err error) {
	t, err := e.table(fb.MessageDeleteGroupsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// DeleteGroupsResponse returns the message as a DeleteGroupsResponse.
func (e *Envelope) DeleteGroupsResponse() (m fb.DeleteGroupsResponse, err error) {
	t, err := e.table(fb.MessageDeleteGroupsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// DeleteRecordsRequest returns the message as a DeleteRecordsRequest.
func (e *Envelope) DeleteRecordsRequest() (m fb.DeleteRecordsRequest, err error) {
	t, err := e.table(fb.MessageDeleteRecordsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// DeleteRecordsResponse returns the message as a DeleteRecordsResponse.
func (e *Envelope) DeleteRecordsResponse() (m fb.DeleteRecordsResponse, err error) {
	t, err := e.table(fb.MessageDeleteRecordsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}
