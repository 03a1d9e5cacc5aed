package schema

import "github.com/strata-db/strata/schema/fb"

// Accessors of the topic config and partition count APIs' messages.

// DescribeConfigsRequest returns the message as a DescribeConfigsRequest.
func (e *Envelope) DescribeConfigsRequest() (m fb.DescribeConfigsRequest, err error) {
	t, err := e.table(fb.MessageDescribeConfigsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// DescribeConfigsResponse returns the message as a DescribeConfigsResponse.
func (e *Envelope) DescribeConfigsResponse() (m fb.DescribeConfigsResponse, err error) {
	t, err := e.table(fb.MessageDescribeConfigsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// IncrementalAlterConfigsRequest returns the message as a IncrementalAlterConfigsRequest.
func (e *Envelope) IncrementalAlterConfigsRequest() (m fb.IncrementalAlterConfigsRequest, err error) {
	t, err := e.table(fb.MessageIncrementalAlterConfigsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// IncrementalAlterConfigsResponse returns the message as a IncrementalAlterConfigsResponse.
func (e *Envelope) IncrementalAlterConfigsResponse() (m fb.IncrementalAlterConfigsResponse, err error) {
	t, err := e.table(fb.MessageIncrementalAlterConfigsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// CreatePartitionsRequest returns the message as a CreatePartitionsRequest.
func (e *Envelope) CreatePartitionsRequest() (m fb.CreatePartitionsRequest, err error) {
	t, err := e.table(fb.MessageCreatePartitionsRequest)
	m.Init(t.Bytes, t.Pos)
	return m, err
}

// CreatePartitionsResponse returns the message as a CreatePartitionsResponse.
func (e *Envelope) CreatePartitionsResponse() (m fb.CreatePartitionsResponse, err error) {
	t, err := e.table(fb.MessageCreatePartitionsResponse)
	m.Init(t.Bytes, t.Pos)
	return m, err
}
