package schema

// Descriptions of the tables in fbs/batch.fbs, fields in slot order.
// BatchReader verifies bodies with a walk specialised to these tables
// (record_decode.go) that must accept exactly what VerifyBody accepts; a
// change here needs the same change there.

var (
	descHeader = &tableDesc{name: "Header", fields: []field{
		fString("key").req(),
		fScalarVector("value", 1),
	}}
	descRecord = &tableDesc{name: "Record", fields: []field{
		fScalar("offset_delta", 4),
		fScalar("timestamp_delta", 8),
		fScalarVector("key", 1),
		fScalarVector("value", 1),
		fTableVector("headers", descHeader),
	}}
	descRecordBatchBody = &tableDesc{name: "RecordBatchBody", fields: []field{
		fTableVector("records", descRecord).req(),
	}}
)

// BodyIdentifier is the file identifier of a RecordBatchBody.
const BodyIdentifier = "SBAT"

// Limits on one record batch body (after decompression).
const (
	// BodyBytesMax is the largest body: whatever a frame leaves after its
	// header.
	BodyBytesMax = MaxFrameBytes - FrameHeaderSize
	// RecordsPerBatchMax bounds the records in one batch, and with it the
	// headers of one record.
	RecordsPerBatchMax = 1 << 20
	// bodyDepthMax: body, record, header.
	bodyDepthMax = 3
	// bodyObjectsMax allows every object a body of BodyBytesMax can hold.
	bodyObjectsMax = BodyBytesMax / objectBytesMin
)

var bodyLimits = Limits{
	BytesMax:     BodyBytesMax,
	DepthMax:     bodyDepthMax,
	ObjectsMax:   bodyObjectsMax,
	VectorLenMax: RecordsPerBatchMax,
}

// VerifyBody checks that b is a well-formed RecordBatchBody FlatBuffer (not
// size-prefixed, identifier "SBAT"). Only after it returns nil may the
// generated accessors read b.
func VerifyBody(b []byte) error {
	return verifyRoot(b, 0, BodyIdentifier, descRecordBatchBody, &bodyLimits)
}
