package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/strata-db/strata/client"
)

// jsonInput is one stdin line under produce --format json: the object
// consume --format json prints. Its topic and offset are read and not
// used: the topic is the command's, and offsets are the broker's to give.
type jsonInput struct {
	Topic         string       `json:"topic"`
	Partition     *int32       `json:"partition"`
	Offset        *int64       `json:"offset"`
	Timestamp     *int64       `json:"timestamp"` // unix milliseconds
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding"`
	Value         *string      `json:"value"`
	ValueEncoding string       `json:"value_encoding"`
	Headers       []jsonHeader `json:"headers"`
}

// jsonPartitioner places JSON records: at the line's partition, else at
// --partition, else by key, else round robin (the producer's sticky
// partition needs it to choose, and a line may name a partition).
type jsonPartitioner struct {
	fixed int32 // --partition, or client.AllPartitions
	count int32 // the topic's partitions
	next  int32 // round robin for records without key or partition
}

// parseJSONRecord reads line n as a record of base's topic.
func parseJSONRecord(base client.Record, line []byte, n int, parts *jsonPartitioner) (*client.Record, error) {
	var in jsonInput
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("stdin line %d: %w", n, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("stdin line %d: more than one JSON value", n)
	}
	r := base
	var err error
	if r.Key, err = decodeJSONBytes(in.Key, in.KeyEncoding); err != nil {
		return nil, fmt.Errorf("stdin line %d: key: %w", n, err)
	}
	if in.Key == nil {
		r.Key = base.Key
	}
	if r.Value, err = decodeJSONBytes(in.Value, in.ValueEncoding); err != nil {
		return nil, fmt.Errorf("stdin line %d: value: %w", n, err)
	}
	if len(in.Headers) > 0 {
		r.Headers = append([]client.Header(nil), base.Headers...)
		for _, h := range in.Headers {
			v, err := decodeJSONBytes(h.Value, h.ValueEncoding)
			if err != nil {
				return nil, fmt.Errorf("stdin line %d: header %q: %w", n, h.Key, err)
			}
			r.Headers = append(r.Headers, client.Header{Key: []byte(h.Key), Value: v})
		}
	}
	if in.Timestamp != nil {
		if *in.Timestamp < 0 {
			return nil, fmt.Errorf("stdin line %d: timestamp %d: want unix milliseconds", n, *in.Timestamp)
		}
		r.Timestamp = time.UnixMilli(*in.Timestamp)
	}
	switch {
	case in.Partition != nil:
		r.Partition = *in.Partition // the producer refuses one the topic lacks
	case parts.fixed != client.AllPartitions:
		r.Partition = parts.fixed
	case r.Key != nil:
		r.Partition = client.KeyPartition(r.Key, parts.count)
	default:
		r.Partition = parts.next
		parts.next = (parts.next + 1) % parts.count
	}
	return &r, nil
}

// decodeJSONBytes is a JSON key, value or header value as bytes: null is
// nil, and the encoding ("" or text, base64, hex) says how to read it.
func decodeJSONBytes(s *string, encoding string) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	switch encoding {
	case "", encodingText:
		return []byte(*s), nil
	case encodingBase64:
		return base64.StdEncoding.DecodeString(*s)
	case encodingHex:
		return hex.DecodeString(*s)
	}
	return nil, fmt.Errorf("encoding %q: want text, base64 or hex", encoding)
}
