package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// TestOpErrorLines checks how failures the client wraps in its own words
// are told: a detail that adds to the operation is kept before the code,
// one that repeats it is dropped, several failures share one line, the
// library's prefixes go, and what is not an operation's failure passes.
func TestOpErrorLines(t *testing.T) {
	notLeader := &schema.CodeError{Code: fb.ErrorCodeNotLeader}
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("list offsets of t/3: %w", notLeader),
			`consume "t": list offsets of t/3: NOT_LEADER: this broker is not the partition's leader; refresh metadata`},
		{fmt.Errorf("create topic %q: %w", "t", &schema.CodeError{Code: fb.ErrorCodeInvalidConfig, Message: "INVALID_CONFIG: segment.bytes: 1 is outside [4096, 1073741824]"}),
			`consume "t": create topic "t": INVALID_CONFIG: segment.bytes: 1 is outside [4096, 1073741824]`},
		{errors.Join(fmt.Errorf("fetch t/0: %w", notLeader), fmt.Errorf("fetch t/1: %w", &schema.CodeError{Code: fb.ErrorCodeStorageError})),
			`consume "t": fetch t/0: NOT_LEADER: this broker is not the partition's leader; refresh metadata; ` +
				`fetch t/1: STORAGE_ERROR: the broker could not read or write the partition's log`},
		{fmt.Errorf("%w (last error: %w)", context.DeadlineExceeded, notLeader),
			`consume "t": context deadline exceeded (last error: NOT_LEADER: this broker is not the partition's leader; refresh metadata)`},
		{fmt.Errorf("%w: 9 bytes", client.ErrRecordTooLarge),
			`consume "t": record larger than the producer's buffer: 9 bytes`},
	} {
		if got := failed(`consume "t"`, "t", c.err).Error(); got != c.want {
			t.Errorf("got\n%q\nwant\n%q", got, c.want)
		}
	}
	if got := failed(`create topic "t"`, "t", fmt.Errorf("create topic %q: %w", "t", notLeader)).Error(); got != `create topic "t": NOT_LEADER: this broker is not the partition's leader; refresh metadata` {
		t.Errorf("a detail that repeats the operation: %q", got)
	}
	for _, err := range []error{nil, usageError{errors.New("bad")}, interrupted{}} {
		if got := failed("op", "t", err); got != err {
			t.Errorf("failed(%v) = %v, want it as it was", err, got)
		}
	}
	told := failed("op", "t", notLeader)
	if failed("other", "t", told) != told || exitCode(told) != 1 {
		t.Errorf("an error told once is told again, or exits %d", exitCode(told))
	}
}
