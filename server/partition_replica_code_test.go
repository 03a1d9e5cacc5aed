package server

import (
	"testing"

	"github.com/strata-db/strata/replica"
	"github.com/strata-db/strata/schema/fb"
)

// TestWireReplicaCodeLeaderBehind: a leader's answers that say it has
// not taken the follower's image yet (an unknown leader epoch, a partition
// its image lacks) reach the replica machine as UNKNOWN_LEADER_EPOCH,
// which it retries after a short backoff; the others keep their meaning.
func TestWireReplicaCodeLeaderBehind(t *testing.T) {
	for code, want := range map[fb.ErrorCode]replica.ErrorCode{
		fb.ErrorCodeNone:                    replica.ErrNone,
		fb.ErrorCodeUnknownLeaderEpoch:      replica.ErrUnknownLeaderEpoch,
		fb.ErrorCodeUnknownTopicOrPartition: replica.ErrUnknownLeaderEpoch,
		fb.ErrorCodeFencedLeaderEpoch:       replica.ErrFencedLeaderEpoch,
		fb.ErrorCodeInvalidRequest:          replica.ErrInvalidRequest,
		fb.ErrorCodeNotLeader:               replica.ErrNotLeaderOrFollower,
		fb.ErrorCodeStorageError:            replica.ErrNotLeaderOrFollower,
		fb.ErrorCodeOffsetOutOfRange:        replica.ErrOffsetOutOfRange,
	} {
		if got := wireReplicaCode(code); got != want {
			t.Errorf("%v: %v, want %v", code, got, want)
		}
	}
}
