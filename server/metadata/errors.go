package metadata

import (
	"errors"
	"fmt"
)

// ErrorCode names why the controller rejected a command. The codes follow
// Kafka's error names where Kafka has one, so that the broker can map them
// onto wire error codes one to one.
type ErrorCode uint8

const (
	// ErrNone is the code of an accepted command.
	ErrNone ErrorCode = iota
	// ErrInvalidRequest: a malformed argument (bad id, bad listener, ...).
	ErrInvalidRequest
	// ErrBrokerNotRegistered: the broker id has never registered.
	ErrBrokerNotRegistered
	// ErrStaleBrokerEpoch: the request carries an epoch other than the
	// broker's current registration.
	ErrStaleBrokerEpoch
	// ErrDuplicateBrokerRegistration: another incarnation of the broker id
	// holds a live session.
	ErrDuplicateBrokerRegistration
	// ErrInconsistentRegistration: a retried registration of the same
	// incarnation carries different listeners or rack.
	ErrInconsistentRegistration
	// ErrTooManyBrokers: registering would exceed maxBrokers.
	ErrTooManyBrokers
	// ErrBrokerFenced: the broker is fenced and the command needs it live.
	ErrBrokerFenced
	// ErrBrokerNotFenced: unfencing a broker that is not fenced.
	ErrBrokerNotFenced
	// ErrBrokerShuttingDown: the broker is in controlled shutdown.
	ErrBrokerShuttingDown
	// ErrInvalidTopic: the topic name is empty, too long or has a character
	// outside [a-zA-Z0-9._-].
	ErrInvalidTopic
	// ErrTopicAlreadyExists: a topic of that name exists.
	ErrTopicAlreadyExists
	// ErrInvalidTopicID: the topic id is all zeros or already in use.
	ErrInvalidTopicID
	// ErrUnknownTopicOrPartition: no such topic or partition.
	ErrUnknownTopicOrPartition
	// ErrInvalidConfig: an unknown config key or a value out of range.
	ErrInvalidConfig
	// ErrInvalidPartitions: a partition count out of range.
	ErrInvalidPartitions
	// ErrInvalidReplicationFactor: a replication factor out of range or
	// above the number of usable brokers.
	ErrInvalidReplicationFactor
	// ErrPolicyViolation: the cluster-wide topic or partition limit.
	ErrPolicyViolation
	// ErrNotLeader: an ISR change proposed by a broker that does not lead
	// the partition.
	ErrNotLeader
	// ErrFencedLeaderEpoch: the proposer's leader epoch is older than the
	// partition's.
	ErrFencedLeaderEpoch
	// ErrUnknownLeaderEpoch: the proposer's leader epoch is newer than the
	// partition's (it has seen a change the controller has not made).
	ErrUnknownLeaderEpoch
	// ErrInvalidUpdateVersion: the proposer's partition epoch is stale.
	ErrInvalidUpdateVersion
	// ErrEmptyISR: the proposed ISR is empty.
	ErrEmptyISR
	// ErrIneligibleReplica: the proposed ISR holds a broker that is not a
	// replica, appears twice, or omits the leader.
	ErrIneligibleReplica
	// ErrFencedReplica: the proposed ISR holds a fenced broker or one in
	// controlled shutdown.
	ErrFencedReplica
	// ErrElectionNotNeeded: the leader an election would choose already leads.
	ErrElectionNotNeeded
	// ErrEligibleLeadersNotAvailable: no live ISR member, and unclean
	// election is off or has no live replica either.
	ErrEligibleLeadersNotAvailable
	numErrorCodes
)

var errorCodeNames = [numErrorCodes]string{
	ErrNone:                        "NONE",
	ErrInvalidRequest:              "INVALID_REQUEST",
	ErrBrokerNotRegistered:         "BROKER_NOT_REGISTERED",
	ErrStaleBrokerEpoch:            "STALE_BROKER_EPOCH",
	ErrDuplicateBrokerRegistration: "DUPLICATE_BROKER_REGISTRATION",
	ErrInconsistentRegistration:    "INCONSISTENT_REGISTRATION",
	ErrTooManyBrokers:              "TOO_MANY_BROKERS",
	ErrBrokerFenced:                "BROKER_FENCED",
	ErrBrokerNotFenced:             "BROKER_NOT_FENCED",
	ErrBrokerShuttingDown:          "BROKER_SHUTTING_DOWN",
	ErrInvalidTopic:                "INVALID_TOPIC_EXCEPTION",
	ErrTopicAlreadyExists:          "TOPIC_ALREADY_EXISTS",
	ErrInvalidTopicID:              "INVALID_TOPIC_ID",
	ErrUnknownTopicOrPartition:     "UNKNOWN_TOPIC_OR_PARTITION",
	ErrInvalidConfig:               "INVALID_CONFIG",
	ErrInvalidPartitions:           "INVALID_PARTITIONS",
	ErrInvalidReplicationFactor:    "INVALID_REPLICATION_FACTOR",
	ErrPolicyViolation:             "POLICY_VIOLATION",
	ErrNotLeader:                   "NOT_LEADER_OR_FOLLOWER",
	ErrFencedLeaderEpoch:           "FENCED_LEADER_EPOCH",
	ErrUnknownLeaderEpoch:          "UNKNOWN_LEADER_EPOCH",
	ErrInvalidUpdateVersion:        "INVALID_UPDATE_VERSION",
	ErrEmptyISR:                    "EMPTY_ISR",
	ErrIneligibleReplica:           "INELIGIBLE_REPLICA",
	ErrFencedReplica:               "FENCED_REPLICA",
	ErrElectionNotNeeded:           "ELECTION_NOT_NEEDED",
	ErrEligibleLeadersNotAvailable: "ELIGIBLE_LEADERS_NOT_AVAILABLE",
}

// String returns the code's upper-case name, e.g. "FENCED_LEADER_EPOCH".
func (c ErrorCode) String() string {
	if c < numErrorCodes {
		return errorCodeNames[c]
	}
	return fmt.Sprintf("ErrorCode(%d)", uint8(c))
}

// Rejection is the error a command returns when it is refused: a code for
// the broker to put on the wire and a detail for logs and operators.
type Rejection struct {
	Code   ErrorCode
	Detail string
}

func (r *Rejection) Error() string {
	if r.Detail == "" {
		return r.Code.String()
	}
	return r.Code.String() + ": " + r.Detail
}

func reject(code ErrorCode, format string, args ...any) error {
	return &Rejection{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of a command's error: ErrNone for nil and
// ErrInvalidRequest for an error that is not a Rejection.
func CodeOf(err error) ErrorCode {
	if err == nil {
		return ErrNone
	}
	var r *Rejection
	if errors.As(err, &r) {
		return r.Code
	}
	return ErrInvalidRequest
}
