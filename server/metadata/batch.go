package metadata

import (
	"encoding/binary"
	"fmt"
)

// A batch is the records of one command, which the controller proposes as
// one Raft entry so that they commit, and are applied, all or none:
//
//	batch = count:uvarint (length:uvarint record)*

// minBatchElemBytes is the smallest length-prefixed record: a one-byte
// length, type and version, and a two-byte body (broker id and epoch).
const minBatchElemBytes = 5

// AppendBatch appends the encoding of records as one batch.
func AppendBatch(dst []byte, records []Record) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(records)))
	var scratch []byte
	for _, rec := range records {
		scratch = rec.AppendTo(scratch[:0])
		dst = binary.AppendUvarint(dst, uint64(len(scratch)))
		dst = append(dst, scratch...)
	}
	return dst
}

// DecodeBatch decodes a batch written by AppendBatch, refusing anything
// longer than maxBatchBytes and any malformed record in it.
func DecodeBatch(b []byte) ([]Record, error) {
	if len(b) > maxBatchBytes {
		return nil, fmt.Errorf("metadata: batch of %d bytes exceeds %d", len(b), maxBatchBytes)
	}
	r := &reader{b: b}
	n := r.count(len(b)/minBatchElemBytes, minBatchElemBytes, "records")
	if r.err != nil {
		return nil, r.err
	}
	records := make([]Record, 0, n)
	for i := 0; i < n; i++ {
		size := r.count(len(r.b), 1, "record bytes")
		if r.err != nil {
			return nil, r.err
		}
		rec, err := DecodeRecord(r.b[:size])
		if err != nil {
			return nil, fmt.Errorf("metadata: record %d of batch: %w", i, err)
		}
		r.b = r.b[size:]
		records = append(records, rec)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return records, nil
}
