package schema

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// BatchReader.Reset verifies a RecordBatchBody and extracts what Next needs
// in one walk, instead of running the generic verifier (verify.go) and then
// reading every record again through the generated accessors. The walk is
// the generic verifier specialised to fbs/batch.fbs: it makes the same
// checks in the same order, counts objects against the same budget, and
// returns the same *VerifyError, so that it accepts exactly the bodies
// VerifyBody accepts. FuzzBatchReaderMatchesVerifier holds it to that, and
// TestRecordDecodeMatchesDescriptions ties the slots and sizes below to the
// descriptions in verify_batch.go; a change to batch.fbs must change both.
//
// The generic verifier's depth limit never applies: records sit at depth 2
// and headers at depth 3, which bodyDepthMax allows.

// Vtable slots (byte offsets into the vtable) and inline sizes of the
// fields the walk reads. Every field here is aligned to its own size.
const (
	bodySlotRecords = vtableHeaderBytes + 0*voffsetBytes

	recordSlotOffsetDelta    = vtableHeaderBytes + 0*voffsetBytes
	recordSlotTimestampDelta = vtableHeaderBytes + 1*voffsetBytes
	recordSlotKey            = vtableHeaderBytes + 2*voffsetBytes
	recordSlotValue          = vtableHeaderBytes + 3*voffsetBytes
	recordSlotHeaders        = vtableHeaderBytes + 4*voffsetBytes

	headerSlotKey   = vtableHeaderBytes + 0*voffsetBytes
	headerSlotValue = vtableHeaderBytes + 1*voffsetBytes

	offsetDeltaBytes    = 4
	timestampDeltaBytes = 8
	byteVectorElemBytes = 1
)

// recordEntry is what Next needs of one verified record. Positions are
// into the body, which is at most BodyBytesMax bytes, so they fit 32 bits.
type recordEntry struct {
	timestampDelta int64
	offsetDelta    uint32
	// table is the Record table, through which RecordView reads headers.
	table uint32
	// key and value are [start, end) of the vector's bytes. A start of 0
	// means the vector is absent (null): no vector's data can start at 0,
	// as it follows the root offset and its own length word.
	keyStart, keyEnd     uint32
	valueStart, valueEnd uint32
	// headers is the length of the headers vector (0 when absent), so
	// that RecordView.HeadersLen needs no vtable lookup.
	headers uint32
}

// fieldRef names the table and field that an error is reported against,
// as the generic verifier names them. It keeps strings out of the calls on
// the hot path.
type fieldRef uint8

const (
	refBody fieldRef = iota
	refBodyRoot
	refBodyRecords
	refRecord
	refRecordOffsetDelta
	refRecordTimestampDelta
	refRecordKey
	refRecordValue
	refRecordHeaders
	refHeader
	refHeaderKey
	refHeaderValue
)

var refNames = [...]struct{ table, field string }{
	refBody:                 {"RecordBatchBody", ""},
	refBodyRoot:             {"RecordBatchBody", "root"},
	refBodyRecords:          {"RecordBatchBody", "records"},
	refRecord:               {"Record", ""},
	refRecordOffsetDelta:    {"Record", "offset_delta"},
	refRecordTimestampDelta: {"Record", "timestamp_delta"},
	refRecordKey:            {"Record", "key"},
	refRecordValue:          {"Record", "value"},
	refRecordHeaders:        {"Record", "headers"},
	refHeader:               {"Header", ""},
	refHeaderKey:            {"Header", "key"},
	refHeaderValue:          {"Header", "value"},
}

// decodeRecords verifies body, checks its records against h as Reset
// documents, and on success leaves them in r.recs. The checks and their
// order are those of VerifyBody followed by the record loop, so that the
// error returned is the one that path would return.
func (r *BatchReader) decodeRecords(body []byte, h *FrameHeader) error {
	d := bodyDecoder{buf: body}
	elems, n, err := d.root()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBody, err)
	}
	if n == 0 || n > uint64(h.RecordCount) {
		// The records are verified all the same, so that a body that is
		// also malformed fails as malformed; none is kept, since only
		// recordCount entries are ever allocated.
		var scrap recordEntry
		for i := uint64(0); i < n; i++ {
			if err := d.record(elems+i*uoffsetBytes, &scrap); err != nil {
				return fmt.Errorf("%w: %w", ErrBody, err)
			}
		}
		return fmt.Errorf("%w: %d records, header says %d", ErrBodyRecords, n, h.RecordCount)
	}
	// n is at most recordCount, which ParseFrameHeader bounds by the
	// body's size.
	recs := slices.Grow(r.recs[:0], int(n))[:n]
	// The first record that breaks the offset or timestamp rules; it is
	// reported only once the whole body has verified, as the body's
	// verification comes first.
	bad := -1
	prev := int64(-1)
	count := int64(h.RecordCount)
	for i := range recs {
		e := &recs[i]
		if err := d.record(elems+uint64(i)*uoffsetBytes, e); err != nil {
			r.recs = recs[:0]
			return fmt.Errorf("%w: %w", ErrBody, err)
		}
		delta := int64(e.offsetDelta)
		if bad < 0 && (delta <= prev || delta >= count || h.FirstTimestampMs+e.timestampDelta > h.MaxTimestampMs) {
			bad = i
		}
		prev = delta
	}
	if bad >= 0 {
		r.recs = recs[:0]
		return recordError(recs, bad, h)
	}
	r.recs = recs
	return nil
}

// recordError says why recs[i], the first record to break the rules
// against the frame header, breaks them.
func recordError(recs []recordEntry, i int, h *FrameHeader) error {
	prev := int64(-1)
	if i > 0 {
		prev = int64(recs[i-1].offsetDelta)
	}
	d := int64(recs[i].offsetDelta)
	if d <= prev || d >= int64(h.RecordCount) {
		return fmt.Errorf("%w: record %d has offset delta %d", ErrBodyRecords, i, d)
	}
	ts := h.FirstTimestampMs + recs[i].timestampDelta
	return fmt.Errorf("%w: record %d timestamp %d after max %d", ErrBodyRecords, i, ts, h.MaxTimestampMs)
}

// bodyDecoder walks one body. Positions are uint64, as in the generic
// verifier, so that no sum of a position and a 32-bit length overflows.
type bodyDecoder struct {
	buf []byte
	// objectsLeft is the generic verifier's object budget: every visit to
	// a table, vector or string spends one.
	objectsLeft int
}

func (d *bodyDecoder) fail(kind error, ref fieldRef, pos uint64) error {
	n := refNames[ref]
	return &VerifyError{Kind: kind, Table: n.table, Field: n.field, Pos: int64(pos)}
}

func (d *bodyDecoder) size() uint64          { return uint64(len(d.buf)) }
func (d *bodyDecoder) u16(pos uint64) uint64 { return uint64(binary.LittleEndian.Uint16(d.buf[pos:])) }
func (d *bodyDecoder) u32(pos uint64) uint32 { return binary.LittleEndian.Uint32(d.buf[pos:]) }
func (d *bodyDecoder) i64(pos uint64) int64  { return int64(binary.LittleEndian.Uint64(d.buf[pos:])) }

// root checks the buffer and the root table, and returns where the
// records vector's elements start and how many there are.
func (d *bodyDecoder) root() (elems, n uint64, err error) {
	if len(d.buf) > bodyLimits.BytesMax || len(d.buf) < uoffsetBytes+fileIdentifierBytes {
		return 0, 0, d.fail(ErrVerifySize, refBody, d.size())
	}
	if string(d.buf[uoffsetBytes:uoffsetBytes+fileIdentifierBytes]) != BodyIdentifier {
		return 0, 0, d.fail(ErrVerifyIdentifier, refBody, uoffsetBytes)
	}
	d.objectsLeft = min(len(d.buf)/objectBytesMin, bodyLimits.ObjectsMax)
	pos, err := d.offset(0, refBodyRoot)
	if err != nil {
		return 0, 0, err
	}
	vt, vtSize, tableSize, err := d.table(pos, refBody)
	if err != nil {
		return 0, 0, err
	}
	fo := d.slot(vt, vtSize, bodySlotRecords)
	if fo == 0 {
		return 0, 0, d.fail(ErrVerifyRequired, refBodyRecords, pos)
	}
	at, err := d.offsetField(pos, fo, tableSize, refBodyRecords)
	if err != nil {
		return 0, 0, err
	}
	return d.offsetVector(at, refBodyRecords)
}

// record verifies the Record that the records vector's element at elem
// points to, and fills e from it. The checks of its scalar fields are
// written out here, as byteVector's are there, to keep calls off the path
// taken once per record.
func (d *bodyDecoder) record(elem uint64, e *recordEntry) error {
	pos, err := d.offset(elem, refBodyRecords)
	if err != nil {
		return err
	}
	vt, vtSize, tableSize, err := d.table(pos, refRecord)
	if err != nil {
		return err
	}
	*e = recordEntry{table: uint32(pos)}
	if fo := d.slot(vt, vtSize, recordSlotOffsetDelta); fo != 0 {
		at := pos + fo
		if fo < soffsetBytes || fo+offsetDeltaBytes > tableSize {
			return d.fail(ErrVerifyVTable, refRecordOffsetDelta, pos)
		}
		if at%offsetDeltaBytes != 0 {
			return d.fail(ErrVerifyAlign, refRecordOffsetDelta, at)
		}
		e.offsetDelta = d.u32(at)
	}
	if fo := d.slot(vt, vtSize, recordSlotTimestampDelta); fo != 0 {
		at := pos + fo
		if fo < soffsetBytes || fo+timestampDeltaBytes > tableSize {
			return d.fail(ErrVerifyVTable, refRecordTimestampDelta, pos)
		}
		if at%timestampDeltaBytes != 0 {
			return d.fail(ErrVerifyAlign, refRecordTimestampDelta, at)
		}
		e.timestampDelta = d.i64(at)
	}
	if fo := d.slot(vt, vtSize, recordSlotKey); fo != 0 {
		start, end, err := d.byteVector(pos, fo, tableSize, refRecordKey)
		if err != nil {
			return err
		}
		e.keyStart, e.keyEnd = uint32(start), uint32(end)
	}
	if fo := d.slot(vt, vtSize, recordSlotValue); fo != 0 {
		start, end, err := d.byteVector(pos, fo, tableSize, refRecordValue)
		if err != nil {
			return err
		}
		e.valueStart, e.valueEnd = uint32(start), uint32(end)
	}
	if fo := d.slot(vt, vtSize, recordSlotHeaders); fo != 0 {
		n, err := d.headers(pos, fo, tableSize)
		e.headers = uint32(n)
		return err
	}
	return nil
}

// headers verifies a record's headers vector and every Header in it.
func (d *bodyDecoder) headers(pos, fo, tableSize uint64) (uint64, error) {
	at, err := d.offsetField(pos, fo, tableSize, refRecordHeaders)
	if err != nil {
		return 0, err
	}
	elems, n, err := d.offsetVector(at, refRecordHeaders)
	if err != nil {
		return 0, err
	}
	for i := uint64(0); i < n; i++ {
		hpos, err := d.offset(elems+i*uoffsetBytes, refRecordHeaders)
		if err != nil {
			return 0, err
		}
		if err := d.header(hpos); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// header verifies one Header: a required key string and an optional value.
func (d *bodyDecoder) header(pos uint64) error {
	vt, vtSize, tableSize, err := d.table(pos, refHeader)
	if err != nil {
		return err
	}
	fo := d.slot(vt, vtSize, headerSlotKey)
	if fo == 0 {
		return d.fail(ErrVerifyRequired, refHeaderKey, pos)
	}
	at, err := d.offsetField(pos, fo, tableSize, refHeaderKey)
	if err != nil {
		return err
	}
	if err := d.string(at, refHeaderKey); err != nil {
		return err
	}
	if fo := d.slot(vt, vtSize, headerSlotValue); fo != 0 {
		_, _, err := d.byteVector(pos, fo, tableSize, refHeaderValue)
		return err
	}
	return nil
}

// offset follows the uoffset at at. The caller has checked that at is
// 4-aligned and that its 4 bytes lie in the buffer.
func (d *bodyDecoder) offset(at uint64, ref fieldRef) (uint64, error) {
	u := d.u32(at)
	target := at + uint64(u)
	if u == 0 || u > uoffsetMax || target >= d.size() {
		return 0, d.fail(ErrVerifyBounds, ref, at)
	}
	return target, nil
}

// spend counts one object against the budget.
func (d *bodyDecoder) spend(ref fieldRef, pos uint64) error {
	if d.objectsLeft <= 0 {
		return d.fail(ErrVerifyObjects, ref, pos)
	}
	d.objectsLeft--
	return nil
}

// table makes the checks of the table at pos that come before its fields
// and returns its vtable's position and size and the table's size.
func (d *bodyDecoder) table(pos uint64, ref fieldRef) (vt, vtSize, tableSize uint64, err error) {
	if err := d.spend(ref, pos); err != nil {
		return 0, 0, 0, err
	}
	if pos%soffsetBytes != 0 {
		return 0, 0, 0, d.fail(ErrVerifyAlign, ref, pos)
	}
	if pos+soffsetBytes > d.size() {
		return 0, 0, 0, d.fail(ErrVerifyBounds, ref, pos)
	}
	v := int64(pos) - int64(int32(d.u32(pos)))
	if v < 0 || v%voffsetBytes != 0 || uint64(v)+vtableHeaderBytes > d.size() {
		return 0, 0, 0, d.fail(ErrVerifyVTable, ref, pos)
	}
	vt = uint64(v)
	vtSize, tableSize = d.u16(vt), d.u16(vt+voffsetBytes)
	if vtSize < vtableHeaderBytes || vtSize%voffsetBytes != 0 || vt+vtSize > d.size() {
		return 0, 0, 0, d.fail(ErrVerifyVTable, ref, vt)
	}
	if tableSize < soffsetBytes || pos+tableSize > d.size() {
		return 0, 0, 0, d.fail(ErrVerifyVTable, ref, vt)
	}
	return vt, vtSize, tableSize, nil
}

// slot is the field offset that the vtable at vt (of vtSize bytes, even)
// holds at byte off, or 0 when the vtable is too short to hold it.
func (d *bodyDecoder) slot(vt, vtSize, off uint64) uint64 {
	if off < vtSize {
		return d.u16(vt + off)
	}
	return 0
}

// offsetField checks that a present offset field, at offset fo in the
// table at pos, lies inside the table and is aligned, and returns its
// position.
func (d *bodyDecoder) offsetField(pos, fo, tableSize uint64, ref fieldRef) (uint64, error) {
	if fo < soffsetBytes || fo+uoffsetBytes > tableSize {
		return 0, d.fail(ErrVerifyVTable, ref, pos)
	}
	at := pos + fo
	if at%uoffsetBytes != 0 {
		return 0, d.fail(ErrVerifyAlign, ref, at)
	}
	return at, nil
}

// offsetVector follows the offset at at to a vector of offsets (to
// tables) and returns where its elements start and how many there are. The
// elements are bounded by the element limit as well as by the buffer, and
// need no alignment check of their own: it follows from the length word's.
func (d *bodyDecoder) offsetVector(at uint64, ref fieldRef) (elems, n uint64, err error) {
	target, err := d.offset(at, ref)
	if err != nil {
		return 0, 0, err
	}
	if err := d.spend(ref, target); err != nil {
		return 0, 0, err
	}
	if target%uoffsetBytes != 0 {
		return 0, 0, d.fail(ErrVerifyAlign, ref, target)
	}
	if target+uoffsetBytes > d.size() {
		return 0, 0, d.fail(ErrVerifyBounds, ref, target)
	}
	n = uint64(d.u32(target))
	if n > uint64(bodyLimits.VectorLenMax) {
		return 0, 0, d.fail(ErrVerifyVectorLen, ref, target)
	}
	elems = target + uoffsetBytes
	if elems+n*uoffsetBytes > d.size() {
		return 0, 0, d.fail(ErrVerifyBounds, ref, target)
	}
	return elems, n, nil
}

// byteVector checks the [ubyte] field at offset fo in the table at pos and
// returns the [start, end) of its bytes. It makes the checks of
// offsetField and offsetVector that apply, written out, as it runs twice
// per record.
func (d *bodyDecoder) byteVector(pos, fo, tableSize uint64, ref fieldRef) (start, end uint64, err error) {
	at := pos + fo
	if fo < soffsetBytes || fo+uoffsetBytes > tableSize {
		return 0, 0, d.fail(ErrVerifyVTable, ref, pos)
	}
	if at%uoffsetBytes != 0 {
		return 0, 0, d.fail(ErrVerifyAlign, ref, at)
	}
	target, err := d.offset(at, ref)
	if err != nil {
		return 0, 0, err
	}
	if err := d.spend(ref, target); err != nil {
		return 0, 0, err
	}
	if target%uoffsetBytes != 0 {
		return 0, 0, d.fail(ErrVerifyAlign, ref, target)
	}
	if target+uoffsetBytes > d.size() {
		return 0, 0, d.fail(ErrVerifyBounds, ref, target)
	}
	start = target + uoffsetBytes
	end = start + uint64(d.u32(target))*byteVectorElemBytes
	if end > d.size() {
		return 0, 0, d.fail(ErrVerifyBounds, ref, target)
	}
	return start, end, nil
}

// string checks the string the offset at at points to, its NUL included.
func (d *bodyDecoder) string(at uint64, ref fieldRef) error {
	target, err := d.offset(at, ref)
	if err != nil {
		return err
	}
	if err := d.spend(ref, target); err != nil {
		return err
	}
	if target%uoffsetBytes != 0 {
		return d.fail(ErrVerifyAlign, ref, target)
	}
	if target+uoffsetBytes > d.size() {
		return d.fail(ErrVerifyBounds, ref, target)
	}
	end := target + uoffsetBytes + uint64(d.u32(target))
	if end >= d.size() {
		return d.fail(ErrVerifyBounds, ref, target)
	}
	if d.buf[end] != 0 {
		return d.fail(ErrVerifyString, ref, end)
	}
	return nil
}
