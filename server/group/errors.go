package group

// ErrorCode is why the coordinator refused a request or a partition of
// it. The names are Kafka's, so the broker maps them onto wire codes one
// to one.
type ErrorCode uint8

const (
	// ErrNone: accepted.
	ErrNone ErrorCode = iota
	// ErrInvalidRequest: a malformed request (an id too long, a join
	// without a subscription, both a topic list and a regex, ...).
	ErrInvalidRequest
	// ErrInvalidRegularExpression: the subscription regex does not compile.
	ErrInvalidRegularExpression
	// ErrUnknownMemberID: the member is not in the group (it left, or its
	// session expired); it must rejoin with epoch 0 owning nothing.
	ErrUnknownMemberID
	// ErrFencedMemberEpoch: the heartbeat's member epoch is not the
	// member's (nor its previous one with a subset of its partitions); the
	// member must give up all its partitions and rejoin with epoch 0.
	ErrFencedMemberEpoch
	// ErrUnreleasedInstanceID: another member holds the instance id and has
	// not left with epoch -2.
	ErrUnreleasedInstanceID
	// ErrGroupMaxSizeReached: the group has as many members as it may.
	ErrGroupMaxSizeReached
	// ErrStaleMemberEpoch: an offset commit from a member epoch other than
	// the member's current one, or for a partition the member does not own.
	ErrStaleMemberEpoch
	// ErrGroupIDNotFound: no such group.
	ErrGroupIDNotFound
	// ErrUnsupportedAssignor: a server assignor the coordinator lacks.
	ErrUnsupportedAssignor
	// ErrOffsetMetadataTooLarge: commit metadata above maxOffsetMetadataLen.
	ErrOffsetMetadataTooLarge
	// ErrNonEmptyGroup: a group with members cannot be deleted.
	ErrNonEmptyGroup
)

var errorNames = [...]string{
	ErrNone:                     "NONE",
	ErrInvalidRequest:           "INVALID_REQUEST",
	ErrInvalidRegularExpression: "INVALID_REGULAR_EXPRESSION",
	ErrUnknownMemberID:          "UNKNOWN_MEMBER_ID",
	ErrFencedMemberEpoch:        "FENCED_MEMBER_EPOCH",
	ErrUnreleasedInstanceID:     "UNRELEASED_INSTANCE_ID",
	ErrGroupMaxSizeReached:      "GROUP_MAX_SIZE_REACHED",
	ErrStaleMemberEpoch:         "STALE_MEMBER_EPOCH",
	ErrGroupIDNotFound:          "GROUP_ID_NOT_FOUND",
	ErrUnsupportedAssignor:      "UNSUPPORTED_ASSIGNOR",
	ErrOffsetMetadataTooLarge:   "OFFSET_METADATA_TOO_LARGE",
	ErrNonEmptyGroup:            "NON_EMPTY_GROUP",
}

func (e ErrorCode) String() string {
	if int(e) < len(errorNames) {
		return errorNames[e]
	}
	return "UNKNOWN_ERROR"
}
