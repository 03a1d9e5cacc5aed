package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// libraryPrefixes are the prefixes the client library and schema/ put on
// their own errors. The CLI says "strata: " once, in front of the line, so
// these are dropped wherever they appear in it.
var libraryPrefixes = []string{"strata client: ", "schema: "}

// opError is a client command's failed operation (exit 1), told as one
// line: "<operation>: [<detail>: ]<CODE>: <reason>[; <remedy>]", where
// the detail is the client's account of which request failed when it adds
// to the operation (a partition, say), and a wire error code comes with
// the broker's reason or the code's description. main prefixes "strata: ".
type opError struct {
	op    string // what the command was doing, e.g. `create topic "x"`
	named bool   // the command names a topic: topic
	topic string
	err   error
}

// failed tells err as the failure of op on topic; failedOp, of an
// operation that names no topic. Usage errors, signals and errors already
// told pass through as they are; nil stays nil.
func failed(op, topic string, err error) error {
	return asOpError(&opError{op: op, named: true, topic: topic, err: err})
}

func failedOp(op string, err error) error { return asOpError(&opError{op: op, err: err}) }

// asOpError is e, or e's error where that is not to be told as an
// operation's failure.
func asOpError(e *opError) error {
	var told *opError
	switch e.err.(type) {
	case nil:
		return nil
	case usageError, interrupted:
		return e.err
	}
	if errors.As(e.err, &told) {
		return e.err
	}
	return e
}

func (e *opError) Unwrap() error { return e.err }

func (e *opError) Error() string {
	parts := []error{e.err}
	if j, ok := joined(e.err); ok {
		parts = j // several topics or partitions failed: one line still
	}
	told := make([]string, 0, len(parts))
	for _, p := range parts {
		told = append(told, e.tell(p))
	}
	line := e.op + ": " + strings.Join(told, "; ")
	for _, prefix := range libraryPrefixes {
		line = strings.ReplaceAll(line, prefix, "")
	}
	return line
}

// joined is the errors errors.Join put together in err, the failures of
// several topics or partitions, each on its own line. An error that wraps
// several in a sentence of its own (fmt.Errorf with two %w) is one.
func joined(err error) ([]error, bool) {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return nil, false
	}
	parts := j.Unwrap()
	texts := make([]string, len(parts))
	for i, p := range parts {
		texts[i] = p.Error()
	}
	return parts, err.Error() == strings.Join(texts, "\n")
}

// oneLine joins errors as errors.Join does, but on one line.
type oneLine []error

func (e oneLine) Error() string {
	texts := make([]string, len(e))
	for i, err := range e {
		texts[i] = err.Error()
	}
	return strings.Join(texts, "; ")
}

func (e oneLine) Unwrap() []error { return e }

// tell is one error of the operation, without the operation.
func (e *opError) tell(err error) string {
	var big *client.BatchTooLargeError
	if errors.As(err, &big) {
		return tooLarge(big)
	}
	var ce *schema.CodeError
	text := err.Error()
	if !errors.As(err, &ce) || !strings.HasSuffix(text, ce.Error()) {
		return text // no code, or one told in the middle of other words
	}
	detail := strings.TrimSuffix(strings.TrimSuffix(text, ce.Error()), ": ")
	reason := ce.Reason()
	if ce.Code == fb.ErrorCodeInvalidTopic && e.named {
		// The broker refuses a bad name before copying it, so its answer
		// names the rule; the CLI still has the name and tells the fault.
		if nerr := metadata.TopicNameError(e.topic); nerr != nil {
			reason = nerr.Error()
		}
	}
	out := schema.ErrorName(ce.Code) + ": " + reason
	if detail != "" && detail != e.op {
		out = detail + ": " + out
	}
	return out
}

// tooLarge tells a refused batch with its size, the setting that limits it
// and how to raise it while the topic runs. The line names the setting
// rather than its value, which `strata topic describe --configs` shows:
// the produce path has no reason to ask for it.
func tooLarge(e *client.BatchTooLargeError) string {
	return fmt.Sprintf("%s: record batch of %d bytes to %s/%d is larger than the topic's %s; "+
		"raise the limit with `strata topic alter-config %s --set %s=%d`",
		schema.ErrorName(e.Err.Code), e.Bytes, e.Topic, e.Partition, metadata.ConfigMaxMessageBytes,
		e.Topic, metadata.ConfigMaxMessageBytes, e.Bytes)
}
