package client

import "time"

// Header is one application header of a record.
type Header struct {
	Key   []byte
	Value []byte // nil: absent
}

// Record is one record: what a producer sends (Topic, Key, Value, Headers,
// Timestamp) and what a consumer receives (all fields). A nil Key or Value
// is null, which differs from empty; a null Value is a tombstone.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	// Timestamp is the record's time, kept to the millisecond. A producer
	// stamps a zero Timestamp with the time of Send.
	Timestamp time.Time
}

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}
