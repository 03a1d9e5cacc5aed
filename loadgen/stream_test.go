package main

import (
	"errors"
	"testing"
	"time"
)

// A receiver that fails must stop the sender, however much it still had to
// send, and its error, not the sender's broken pipe, is reported.
func TestStreamReportsTheReceiversFailure(t *testing.T) {
	accepted, dialed, err := loopbackPair(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	defer dialed.Close()

	errDiskFull := errors.New("disk full")
	buf := make([]byte, 64<<10)
	start := time.Now()
	s := stream{
		sender:     dialed,
		receiver:   accepted,
		chunkBytes: int64(len(buf)),
		// An hour-long run: only the failure can end it within the test.
		budget:   newBudget(t.Context(), &workloadFlags{recordSizeBytes: 1, duration: time.Hour}, start),
		progress: &progress{},
		send: func(n int64) error {
			_, err := dialed.Write(buf[:n])
			return err
		},
		take: func([]byte) error { return errDiskFull },
	}
	if _, err := s.run(start); !errors.Is(err, errDiskFull) {
		t.Errorf("run = %v, want the receiver's error", err)
	}
}
