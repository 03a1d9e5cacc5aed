package schema

import (
	"errors"
	"fmt"
	"strings"

	"github.com/strata-db/strata/schema/fb"
)

// ErrorCode is the wire error code (fb.ErrorCode), named here so that
// callers need not import the generated package for it.
type ErrorCode = fb.ErrorCode

// errorInfo is what Strata says about each wire error code.
type errorInfo struct {
	name        string // the documented SCREAMING_CASE name
	description string
	retriable   bool // the same request may succeed later unchanged
}

var errorInfos = map[fb.ErrorCode]errorInfo{
	fb.ErrorCodeNone:                         {"NONE", "no error", false},
	fb.ErrorCodeUnknown:                      {"UNKNOWN", "the broker hit an unexpected error", false},
	fb.ErrorCodeUnknownTopicOrPartition:      {"UNKNOWN_TOPIC_OR_PARTITION", "this broker does not host the topic or partition", true},
	fb.ErrorCodeNotLeader:                    {"NOT_LEADER", "this broker is not the partition's leader; refresh metadata", true},
	fb.ErrorCodeMessageTooLarge:              {"MESSAGE_TOO_LARGE", "a frame is larger than the topic's maximum message size", false},
	fb.ErrorCodeNotEnoughReplicas:            {"NOT_ENOUGH_REPLICAS", "the in-sync replicas are fewer than the topic's minimum; nothing was written", true},
	fb.ErrorCodeNotEnoughReplicasAfterAppend: {"NOT_ENOUGH_REPLICAS_AFTER_APPEND", "written to the leader, but the in-sync replicas fell below the minimum before acknowledging", true},
	fb.ErrorCodeOffsetOutOfRange:             {"OFFSET_OUT_OF_RANGE", "the requested offset is outside the partition's log", false},
	fb.ErrorCodeCorruptMessage:               {"CORRUPT_MESSAGE", "a frame failed its length, magic, version, CRC or body check", false},
	fb.ErrorCodeInvalidRequest:               {"INVALID_REQUEST", "the request is malformed or inconsistent", false},
	fb.ErrorCodeUnsupportedVersion:           {"UNSUPPORTED_VERSION", "the broker does not support this API or version", false},
	fb.ErrorCodeTopicAlreadyExists:           {"TOPIC_ALREADY_EXISTS", "a topic of that name already exists", false},
	fb.ErrorCodeInvalidPartitions:            {"INVALID_PARTITIONS", "the partition count is not valid", false},
	fb.ErrorCodeInvalidConfig:                {"INVALID_CONFIG", "a topic configuration entry is unknown or out of range", false},
	fb.ErrorCodeRequestTimedOut:              {"REQUEST_TIMED_OUT", "the request did not complete within its timeout", true},
	fb.ErrorCodeInvalidReplicationFactor:     {"INVALID_REPLICATION_FACTOR", "the replication factor is not valid for this cluster", false},
	fb.ErrorCodeInvalidTopic:                 {"INVALID_TOPIC", "the topic name is not valid", false},
	fb.ErrorCodeLeaderNotAvailable:           {"LEADER_NOT_AVAILABLE", "the partition has no leader at the moment (an election is under way)", true},
	fb.ErrorCodeFencedLeaderEpoch:            {"FENCED_LEADER_EPOCH", "the request's leader epoch is older than the broker's", true},
	fb.ErrorCodeUnknownLeaderEpoch:           {"UNKNOWN_LEADER_EPOCH", "the request's leader epoch is newer than the broker's", true},
	fb.ErrorCodeInvalidRequiredAcks:          {"INVALID_REQUIRED_ACKS", "acks must be -1 (all), 0 or 1", false},
	fb.ErrorCodeInvalidTimestamp:             {"INVALID_TIMESTAMP", "a record timestamp is outside the topic's accepted range", false},
	fb.ErrorCodeStorageError:                 {"STORAGE_ERROR", "the broker could not read or write the partition's log", true},
	fb.ErrorCodeNotController:                {"NOT_CONTROLLER", "this broker is not the active controller", true},
	fb.ErrorCodeDuplicateSequence:            {"DUPLICATE_SEQUENCE", "the batch repeats one already written for this producer", false},
	fb.ErrorCodeOutOfOrderSequence:           {"OUT_OF_ORDER_SEQUENCE", "the batch's sequence number leaves a gap for this producer", false},
	fb.ErrorCodeNotCoordinator:               {"NOT_COORDINATOR", "this broker is not the group's coordinator; find the coordinator again", true},
	fb.ErrorCodeCoordinatorNotAvailable:      {"COORDINATOR_NOT_AVAILABLE", "the group's coordinator is not available yet (its offsets partition has no leader, or is being created)", true},
	fb.ErrorCodeCoordinatorLoadInProgress:    {"COORDINATOR_LOAD_IN_PROGRESS", "the coordinator is still loading the group's state from its log", true},
	fb.ErrorCodeUnknownMemberId:              {"UNKNOWN_MEMBER_ID", "the member is not in the group; rejoin with epoch 0 owning nothing", false},
	fb.ErrorCodeFencedMemberEpoch:            {"FENCED_MEMBER_EPOCH", "the member epoch is not the member's; give up every partition and rejoin with epoch 0", false},
	fb.ErrorCodeUnreleasedInstanceId:         {"UNRELEASED_INSTANCE_ID", "another member holds the instance id and has not left", false},
	fb.ErrorCodeGroupMaxSizeReached:          {"GROUP_MAX_SIZE_REACHED", "the group has as many members as it may", false},
	fb.ErrorCodeStaleMemberEpoch:             {"STALE_MEMBER_EPOCH", "the member epoch is not the member's current one, or the member does not own the partition; heartbeat for the current epoch", false},
	fb.ErrorCodeGroupIdNotFound:              {"GROUP_ID_NOT_FOUND", "no such group", false},
	fb.ErrorCodeUnsupportedAssignor:          {"UNSUPPORTED_ASSIGNOR", "the coordinator has no server assignor of that name", false},
	fb.ErrorCodeInvalidRegularExpression:     {"INVALID_REGULAR_EXPRESSION", "the subscription regular expression does not compile (RE2 syntax)", false},
	fb.ErrorCodeNonEmptyGroup:                {"NON_EMPTY_GROUP", "the group still has members", false},
	fb.ErrorCodeOffsetMetadataTooLarge:       {"OFFSET_METADATA_TOO_LARGE", "the commit's metadata is longer than the coordinator accepts", false},
	fb.ErrorCodeUnsupportedCompressionType:   {"UNSUPPORTED_COMPRESSION_TYPE", "a batch's codec is not the one the topic's compression.type names", false},
}

// ErrorName is the documented name of c, such as "NOT_LEADER", or
// "ERROR_CODE(n)" for a code this version does not know.
func ErrorName(c ErrorCode) string {
	if info, ok := errorInfos[c]; ok {
		return info.name
	}
	return fmt.Sprintf("ERROR_CODE(%d)", int16(c))
}

// ErrorDescription says what c means.
func ErrorDescription(c ErrorCode) string {
	if info, ok := errorInfos[c]; ok {
		return info.description
	}
	return "an error code this version does not know"
}

// ErrorRetriable reports whether a request that failed with c may succeed
// if sent again unchanged (possibly after refreshing metadata).
func ErrorRetriable(c ErrorCode) bool { return errorInfos[c].retriable }

// CodeError is a wire error code as a Go error.
type CodeError struct {
	Code    ErrorCode
	Message string // optional detail from the response
}

// Error is "NAME: message", or "NAME: description" without a message. A
// message that starts with the name itself (as the controller's rejections
// do) is not given it twice. Whoever wraps the error says where it came
// from, so it carries no prefix of its own.
func (e *CodeError) Error() string {
	return ErrorName(e.Code) + ": " + e.Reason()
}

// Reason is the message without a leading repeat of the code's name, or
// the code's description when the message is empty.
func (e *CodeError) Reason() string {
	msg := strings.TrimPrefix(e.Message, ErrorName(e.Code)+": ")
	if msg == "" {
		return ErrorDescription(e.Code)
	}
	return msg
}

// CodeOf is the wire error code a broker answers for err: the code of a
// *CodeError, CORRUPT_MESSAGE for a frame or body that fails its checks,
// MESSAGE_TOO_LARGE for one over the size limits, INVALID_REQUEST for an
// envelope that fails verification, NONE for nil and UNKNOWN otherwise.
func CodeOf(err error) ErrorCode {
	var ce *CodeError
	switch {
	case err == nil:
		return fb.ErrorCodeNone
	case errors.As(err, &ce):
		return ce.Code
	case errors.Is(err, ErrFrameLength), errors.Is(err, ErrBatchTooLarge):
		return fb.ErrorCodeMessageTooLarge
	case errors.Is(err, ErrFrameShort), errors.Is(err, ErrFrameMagic),
		errors.Is(err, ErrFrameVersion), errors.Is(err, ErrFrameCRC),
		errors.Is(err, ErrFrameRecords), errors.Is(err, ErrFrameTruncated),
		errors.Is(err, ErrBody):
		return fb.ErrorCodeCorruptMessage
	case errors.Is(err, ErrVerify), errors.Is(err, ErrEnvelope):
		return fb.ErrorCodeInvalidRequest
	default:
		return fb.ErrorCodeUnknown
	}
}
