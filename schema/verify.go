package schema

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The FlatBuffers Go runtime trusts its input: a generated accessor follows
// whatever offset it finds and panics (or reads the wrong bytes) when the
// offset is bad. So every buffer that comes from the network or the disk is
// walked once by this verifier before any accessor touches it.
//
// The verifier is one small engine (this file) driven by descriptions of the
// tables, written from the .fbs files (verify_batch.go, verify_wire.go). A
// description lists a table's fields in slot order, as flatc numbers them:
// the n-th field lives at vtable offset 4+2n, and a union takes two slots
// (its type tag, then its value).
//
// What a buffer must satisfy, all positions relative to the buffer start:
//
//   - every uoffset is 4-aligned, non-zero, at most MaxInt32, and lands
//     inside the buffer;
//   - a table starts 4-aligned; its soffset leads to a 2-aligned vtable that
//     lies in the buffer, whose size is even and at least 4, and whose
//     table size is at least 4 and keeps the table in the buffer;
//   - each known field's offset is 0 (absent) or at least 4, the field lies
//     inside the table and is aligned to its own size;
//   - a vector's length word is 4-aligned, its elements are aligned to their
//     alignment and lie in the buffer; a string also has its NUL terminator
//     in the buffer;
//   - a union's tag names a known member exactly when its value is present;
//   - required fields are present;
//   - the limits hold: total size, nesting depth, objects visited (every
//     visit counts, so shared sub-objects cannot amplify the work), and
//     elements in any one vector of tables, strings or structs.

// Limits bound the work and memory of one verification.
type Limits struct {
	// BytesMax is the largest buffer accepted.
	BytesMax int
	// DepthMax is the deepest nesting of tables, the root being depth 1.
	DepthMax int
	// ObjectsMax caps the tables, vectors and strings visited. The cap that
	// applies to a buffer is also at most len(buf)/objectBytesMin, because a
	// buffer without sharing holds no more objects than that.
	ObjectsMax int
	// VectorLenMax caps the elements of one vector of tables, strings or
	// structs. Vectors of scalars are bounded by the buffer alone.
	VectorLenMax int
}

// objectBytesMin is the smallest encoding of any table, vector or string
// (a table's soffset, a vector's or string's length word).
const objectBytesMin = 4

// Sizes of the FlatBuffers offset types.
const (
	uoffsetBytes = 4
	soffsetBytes = 4
	voffsetBytes = 2
	// vtableHeaderBytes is the vtable's own size and the table's size.
	vtableHeaderBytes = 2 * voffsetBytes
	// fileIdentifierBytes is the 4-character identifier after the root
	// offset.
	fileIdentifierBytes = 4
	// uoffsetMax keeps offsets positive when read as signed, as the
	// FlatBuffers runtime in every language assumes.
	uoffsetMax = 1<<31 - 1
)

// Verification failures. Every error the verifier returns is a
// *VerifyError wrapping one of these.
var (
	ErrVerify           = errors.New("schema: invalid flatbuffer")
	ErrVerifySize       = fmt.Errorf("%w: buffer size out of bounds", ErrVerify)
	ErrVerifyIdentifier = fmt.Errorf("%w: wrong file identifier", ErrVerify)
	ErrVerifyBounds     = fmt.Errorf("%w: offset out of bounds", ErrVerify)
	ErrVerifyAlign      = fmt.Errorf("%w: misaligned", ErrVerify)
	ErrVerifyVTable     = fmt.Errorf("%w: bad vtable", ErrVerify)
	ErrVerifyString     = fmt.Errorf("%w: string not terminated", ErrVerify)
	ErrVerifyDepth      = fmt.Errorf("%w: tables nested too deep", ErrVerify)
	ErrVerifyObjects    = fmt.Errorf("%w: too many objects", ErrVerify)
	ErrVerifyVectorLen  = fmt.Errorf("%w: vector too long", ErrVerify)
	ErrVerifyUnion      = fmt.Errorf("%w: union type and value disagree", ErrVerify)
	ErrVerifyRequired   = fmt.Errorf("%w: required field missing", ErrVerify)
)

// VerifyError says where a buffer failed verification.
type VerifyError struct {
	Kind  error  // one of the ErrVerify* values
	Table string // the table being checked, if any
	Field string // the field being checked, if any
	Pos   int64  // the buffer position at fault
}

func (e *VerifyError) Error() string {
	where := e.Table
	if e.Field != "" {
		where += "." + e.Field
	}
	if where == "" {
		return fmt.Sprintf("%v at %d", e.Kind, e.Pos)
	}
	return fmt.Sprintf("%v: %s at %d", e.Kind, where, e.Pos)
}

func (e *VerifyError) Unwrap() error { return e.Kind }

type fieldKind uint8

const (
	kindScalar       fieldKind = iota + 1 // inline scalar of size bytes
	kindStruct                            // inline struct of size bytes, align
	kindString                            // offset to a string
	kindTable                             // offset to a table
	kindScalarVector                      // offset to a vector of scalars of size bytes
	kindStructVector                      // offset to a vector of structs of size bytes, align
	kindStringVector                      // offset to a vector of offsets to strings
	kindTableVector                       // offset to a vector of offsets to tables
	kindUnionType                         // the 1-byte tag of a union; the value is the next slot
	kindUnionValue                        // offset to the union member the previous slot names
)

// field describes one vtable slot.
type field struct {
	name     string
	kind     fieldKind
	size     uint32 // scalar or struct size, or element size of a vector
	align    uint32 // struct alignment (structs and vectors of structs)
	required bool
	table    *tableDesc // kindTable, kindTableVector
	union    *unionDesc // kindUnionValue
}

// tableDesc describes a table: its fields in slot order.
type tableDesc struct {
	name   string
	fields []field
}

// unionDesc describes a union: members[i] is the table of tag i+1.
type unionDesc struct {
	name    string
	members []*tableDesc
}

// Constructors for descriptions, so that they read like the .fbs.

func fScalar(name string, size uint32) field {
	return field{name: name, kind: kindScalar, size: size, align: size}
}

func fStruct(name string, size, align uint32) field {
	return field{name: name, kind: kindStruct, size: size, align: align}
}

func fString(name string) field { return field{name: name, kind: kindString} }

func fTable(name string, t *tableDesc) field {
	return field{name: name, kind: kindTable, table: t}
}

func fScalarVector(name string, size uint32) field {
	return field{name: name, kind: kindScalarVector, size: size, align: size}
}

func fStructVector(name string, size, align uint32) field {
	return field{name: name, kind: kindStructVector, size: size, align: align}
}

func fStringVector(name string) field { return field{name: name, kind: kindStringVector} }

func fTableVector(name string, t *tableDesc) field {
	return field{name: name, kind: kindTableVector, table: t}
}

// fUnion returns the two slots of a union field.
func fUnion(name string, u *unionDesc) (field, field) {
	return field{name: name + "_type", kind: kindUnionType, size: 1, align: 1},
		field{name: name, kind: kindUnionValue, union: u}
}

// req marks a field (required) as in the .fbs.
func (f field) req() field { f.required = true; return f }

// inlineBytes is how many bytes the field takes inside its table.
func (f *field) inlineBytes() uint32 {
	switch f.kind {
	case kindScalar, kindStruct, kindUnionType:
		return f.size
	default:
		return uoffsetBytes
	}
}

// inlineAlign is the alignment of the field inside its table.
func (f *field) inlineAlign() uint32 {
	switch f.kind {
	case kindScalar, kindStruct, kindUnionType:
		return f.align
	default:
		return uoffsetBytes
	}
}

// verifyRoot checks the buffer whose root offset sits at rootAt (0, or 4
// for a size-prefixed buffer) and whose root table is t. ident, when not
// empty, is the 4-byte file identifier that must follow the root offset.
func verifyRoot(buf []byte, rootAt int, ident string, t *tableDesc, lim *Limits) error {
	if len(buf) > lim.BytesMax {
		return &VerifyError{Kind: ErrVerifySize, Table: t.name, Pos: int64(len(buf))}
	}
	need := rootAt + uoffsetBytes
	if ident != "" {
		need += fileIdentifierBytes
	}
	if rootAt < 0 || len(buf) < need {
		return &VerifyError{Kind: ErrVerifySize, Table: t.name, Pos: int64(len(buf))}
	}
	if ident != "" && string(buf[rootAt+uoffsetBytes:need]) != ident {
		return &VerifyError{Kind: ErrVerifyIdentifier, Table: t.name, Pos: int64(rootAt + uoffsetBytes)}
	}
	budget := len(buf) / objectBytesMin
	if budget > lim.ObjectsMax {
		budget = lim.ObjectsMax
	}
	v := verifier{buf: buf, lim: lim, objectsLeft: budget}
	pos, err := v.offset(uint64(rootAt), t.name, "root")
	if err != nil {
		return err
	}
	return v.table(pos, t, 1)
}

type verifier struct {
	buf         []byte
	lim         *Limits
	objectsLeft int
}

func (v *verifier) fail(kind error, t *tableDesc, f *field, pos uint64) error {
	e := &VerifyError{Kind: kind, Pos: int64(pos)}
	if t != nil {
		e.Table = t.name
	}
	if f != nil {
		e.Field = f.name
	}
	return e
}

func (v *verifier) u16(pos uint64) uint32 { return uint32(binary.LittleEndian.Uint16(v.buf[pos:])) }
func (v *verifier) u32(pos uint64) uint32 { return binary.LittleEndian.Uint32(v.buf[pos:]) }

// inBuf reports whether [pos, pos+n) lies in the buffer. Positions are
// uint64 so that pos+n cannot overflow for any 32-bit offset and length.
func (v *verifier) inBuf(pos, n uint64) bool { return pos+n <= uint64(len(v.buf)) }

// spend counts one object against the budget.
func (v *verifier) spend(tn, fn string, pos uint64) error {
	if v.objectsLeft <= 0 {
		return &VerifyError{Kind: ErrVerifyObjects, Table: tn, Field: fn, Pos: int64(pos)}
	}
	v.objectsLeft--
	return nil
}

// offset reads the uoffset at at and returns the position it points to.
func (v *verifier) offset(at uint64, tn, fn string) (uint64, error) {
	if at%uoffsetBytes != 0 {
		return 0, &VerifyError{Kind: ErrVerifyAlign, Table: tn, Field: fn, Pos: int64(at)}
	}
	if !v.inBuf(at, uoffsetBytes) {
		return 0, &VerifyError{Kind: ErrVerifyBounds, Table: tn, Field: fn, Pos: int64(at)}
	}
	u := v.u32(at)
	target := at + uint64(u)
	if u == 0 || u > uoffsetMax || !v.inBuf(target, 1) {
		return 0, &VerifyError{Kind: ErrVerifyBounds, Table: tn, Field: fn, Pos: int64(at)}
	}
	return target, nil
}

// table checks the table at pos against t.
func (v *verifier) table(pos uint64, t *tableDesc, depth int) error {
	if depth > v.lim.DepthMax {
		return v.fail(ErrVerifyDepth, t, nil, pos)
	}
	if err := v.spend(t.name, "", pos); err != nil {
		return err
	}
	if pos%soffsetBytes != 0 {
		return v.fail(ErrVerifyAlign, t, nil, pos)
	}
	if !v.inBuf(pos, soffsetBytes) {
		return v.fail(ErrVerifyBounds, t, nil, pos)
	}
	vt := int64(pos) - int64(int32(v.u32(pos)))
	if vt < 0 || vt%voffsetBytes != 0 || !v.inBuf(uint64(vt), vtableHeaderBytes) {
		return v.fail(ErrVerifyVTable, t, nil, pos)
	}
	vtPos := uint64(vt)
	vtSize := v.u16(vtPos)
	tableSize := v.u16(vtPos + voffsetBytes)
	if vtSize < vtableHeaderBytes || vtSize%voffsetBytes != 0 || !v.inBuf(vtPos, uint64(vtSize)) {
		return v.fail(ErrVerifyVTable, t, nil, vtPos)
	}
	if tableSize < soffsetBytes || !v.inBuf(pos, uint64(tableSize)) {
		return v.fail(ErrVerifyVTable, t, nil, vtPos)
	}
	slots := (vtSize - vtableHeaderBytes) / voffsetBytes
	var unionTag uint32
	for i := range t.fields {
		f := &t.fields[i]
		var fo uint32
		if uint32(i) < slots {
			fo = v.u16(vtPos + vtableHeaderBytes + uint64(i)*voffsetBytes)
		}
		if fo == 0 {
			if f.required {
				return v.fail(ErrVerifyRequired, t, f, pos)
			}
			switch f.kind {
			case kindUnionType:
				unionTag = 0
			case kindUnionValue:
				if unionTag != 0 {
					return v.fail(ErrVerifyUnion, t, f, pos)
				}
			}
			continue
		}
		if fo < soffsetBytes || fo+f.inlineBytes() > tableSize {
			return v.fail(ErrVerifyVTable, t, f, pos)
		}
		at := pos + uint64(fo)
		if a := uint64(f.inlineAlign()); a > 1 && at%a != 0 {
			return v.fail(ErrVerifyAlign, t, f, at)
		}
		var err error
		switch f.kind {
		case kindScalar, kindStruct:
			// In bounds and aligned: nothing more to check.
		case kindUnionType:
			unionTag = uint32(v.buf[at])
		case kindUnionValue:
			err = v.unionValue(at, unionTag, t, f, depth)
		case kindString:
			err = v.string(at, t, f)
		case kindTable:
			var target uint64
			if target, err = v.offset(at, t.name, f.name); err == nil {
				err = v.table(target, f.table, depth+1)
			}
		case kindScalarVector, kindStructVector:
			_, _, err = v.vector(at, f.size, f.align, f.kind == kindStructVector, t, f)
		case kindStringVector, kindTableVector:
			err = v.offsetVector(at, t, f, depth)
		default:
			err = v.fail(ErrVerifyVTable, t, f, at)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) unionValue(at uint64, tag uint32, t *tableDesc, f *field, depth int) error {
	if tag == 0 || tag > uint32(len(f.union.members)) {
		return v.fail(ErrVerifyUnion, t, f, at)
	}
	target, err := v.offset(at, t.name, f.name)
	if err != nil {
		return err
	}
	return v.table(target, f.union.members[tag-1], depth+1)
}

// string checks the string an offset at at points to, NUL included.
func (v *verifier) string(at uint64, t *tableDesc, f *field) error {
	target, err := v.offset(at, t.name, f.name)
	if err != nil {
		return err
	}
	if err := v.spend(t.name, f.name, target); err != nil {
		return err
	}
	if target%uoffsetBytes != 0 {
		return v.fail(ErrVerifyAlign, t, f, target)
	}
	if !v.inBuf(target, uoffsetBytes) {
		return v.fail(ErrVerifyBounds, t, f, target)
	}
	n := uint64(v.u32(target))
	end := target + uoffsetBytes + n
	if !v.inBuf(end, 1) {
		return v.fail(ErrVerifyBounds, t, f, target)
	}
	if v.buf[end] != 0 {
		return v.fail(ErrVerifyString, t, f, end)
	}
	return nil
}

// vector checks the vector an offset at at points to and returns the
// position of its first element and its length.
func (v *verifier) vector(at uint64, elemBytes, elemAlign uint32, counted bool, t *tableDesc, f *field) (uint64, uint64, error) {
	target, err := v.offset(at, t.name, f.name)
	if err != nil {
		return 0, 0, err
	}
	if err := v.spend(t.name, f.name, target); err != nil {
		return 0, 0, err
	}
	if target%uoffsetBytes != 0 {
		return 0, 0, v.fail(ErrVerifyAlign, t, f, target)
	}
	if !v.inBuf(target, uoffsetBytes) {
		return 0, 0, v.fail(ErrVerifyBounds, t, f, target)
	}
	n := uint64(v.u32(target))
	if counted && n > uint64(v.lim.VectorLenMax) {
		return 0, 0, v.fail(ErrVerifyVectorLen, t, f, target)
	}
	data := target + uoffsetBytes
	if elemAlign > 1 && data%uint64(elemAlign) != 0 {
		return 0, 0, v.fail(ErrVerifyAlign, t, f, data)
	}
	if !v.inBuf(data, n*uint64(elemBytes)) {
		return 0, 0, v.fail(ErrVerifyBounds, t, f, target)
	}
	return data, n, nil
}

// offsetVector checks a vector of offsets to strings or tables and each
// element it points to.
func (v *verifier) offsetVector(at uint64, t *tableDesc, f *field, depth int) error {
	data, n, err := v.vector(at, uoffsetBytes, uoffsetBytes, true, t, f)
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		elem := data + i*uoffsetBytes
		if f.kind == kindStringVector {
			err = v.string(elem, t, f)
		} else {
			var target uint64
			if target, err = v.offset(elem, t.name, f.name); err == nil {
				err = v.table(target, f.table, depth+1)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
