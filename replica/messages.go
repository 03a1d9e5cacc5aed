package replica

import "fmt"

// NoLeader is the leader of a partition that has none.
const NoLeader int32 = -1

// Acks values of a produce request, as Kafka's.
const (
	AcksNone int8 = 0
	AcksOne  int8 = 1
	AcksAll  int8 = -1
)

// ErrorCode names why a request was refused. The names are Kafka's, so that
// the broker maps each onto the wire code of the same name.
type ErrorCode uint8

const (
	ErrNone ErrorCode = iota
	// ErrNotLeaderOrFollower: this replica does not lead the partition (a
	// produce or a fetch), or the fetcher is not one of its replicas.
	ErrNotLeaderOrFollower
	// ErrFencedLeaderEpoch: the caller's leader epoch is older than ours
	// (KIP-320): the caller must refresh its metadata.
	ErrFencedLeaderEpoch
	// ErrUnknownLeaderEpoch: the caller's leader epoch is newer than ours:
	// we have not seen that image yet, and the caller retries.
	ErrUnknownLeaderEpoch
	// ErrNotEnoughReplicas: acks=all with an ISR below min.insync.replicas;
	// nothing was appended.
	ErrNotEnoughReplicas
	// ErrNotEnoughReplicasAfterAppend: appended, but the ISR fell below
	// min.insync.replicas before the high watermark passed the batch.
	ErrNotEnoughReplicasAfterAppend
	// ErrRequestTimedOut: a produce's timeout passed before its acks.
	ErrRequestTimedOut
	// ErrInvalidRequest: a request that contradicts itself or the log
	// (a window that ends before it starts, a last fetched epoch above the
	// leader's).
	ErrInvalidRequest
	// ErrInvalidUpdateVersion: an AlterPartition built on an old partition
	// epoch (the controller's compare-and-set failed).
	ErrInvalidUpdateVersion
	// ErrIneligibleReplica: an AlterPartition naming a replica the
	// controller will not put in the ISR (fenced, shutting down, unknown).
	ErrIneligibleReplica
	// ErrOffsetOutOfRange: the follower's log ends below the leader's log
	// start (retention or DeleteRecords removed what it would fetch
	// next), or it names no epoch for a log the leader cannot check; the
	// answer's LogStart says where the leader's log begins.
	ErrOffsetOutOfRange
)

var errorNames = [...]string{"NONE", "NOT_LEADER_OR_FOLLOWER", "FENCED_LEADER_EPOCH",
	"UNKNOWN_LEADER_EPOCH", "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
	"REQUEST_TIMED_OUT", "INVALID_REQUEST", "INVALID_UPDATE_VERSION", "INELIGIBLE_REPLICA",
	"OFFSET_OUT_OF_RANGE"}

func (c ErrorCode) String() string {
	if int(c) < len(errorNames) {
		return errorNames[c]
	}
	return fmt.Sprintf("ErrorCode(%d)", uint8(c))
}

// Batch is one frame as the machine sees it: its base offset, how many
// offsets it holds, and the leader epoch it was written in. Payload is the
// driver's (bytes, a span, a record id in the simulator): the machine
// carries it from a fetch answer to an append and never reads it.
type Batch struct {
	Base    int64
	Count   int64
	Epoch   int32
	Payload any
}

// End is the offset after the batch.
func (b Batch) End() int64 { return b.Base + b.Count }

// Msg is an input to Partition.Step.
type Msg interface{ isMsg() }

// Image is what a new metadata image says about the partition.
type Image struct {
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	Replicas       []int32
	ISR            []int32
	// MinInsync is the topic's min.insync.replicas.
	MinInsync int
	// Ineligible lists the replicas the controller would refuse to add to
	// the ISR (fenced, in controlled shutdown), so that the leader does
	// not propose them (KIP-841).
	Ineligible []int32
}

// Produce asks the leader to append one batch of Count offsets.
type Produce struct {
	ID        uint64 // the driver's, echoed in the answer
	Acks      int8
	Count     int64
	Payload   any
	TimeoutMs int64 // 0: no timeout of the machine's own
}

// ProduceAnswer answers a Produce: the batch's base offset, or why not.
type ProduceAnswer struct {
	ID   uint64
	Err  ErrorCode
	Base int64
}

// FetchRequest is a follower's fetch of one window of offsets.
type FetchRequest struct {
	To                 int32 // the leader it is sent to
	ReplicaID          int32
	CurrentLeaderEpoch int32 // KIP-320: fenced or unknown unless it is the leader's
	// Gen and Seq name the follower's pipeline and the window in it; the
	// answer echoes them.
	Gen uint64
	Seq uint64
	// LogEnd, LastFetchedEpoch and DurableEnd describe the follower's log
	// when it sent the request: its log end offset (Kafka's fetch offset),
	// the epoch of its last record, and how much of it is durable.
	LogEnd           int64
	LastFetchedEpoch int32
	DurableEnd       int64
	// WindowStart and WindowEnd bound the base offsets of the batches
	// wanted. The first window starts at LogEnd; each further window in
	// flight starts where the one before it ends.
	WindowStart int64
	WindowEnd   int64
	MaxWaitMs   int64
}

// DivergingEpoch is the leader's answer to a follower whose last fetched
// epoch does not match its log (Fetch v12): the largest epoch at or below
// the follower's that the leader has, and where it ends on the leader.
type DivergingEpoch struct {
	Epoch     int32
	EndOffset int64
}

// FetchResponse is the leader's answer to one FetchRequest. The machine
// decides everything but Batches: the driver fills Batches with the frames
// of its log whose base offset lies in [WindowStart, Limit), in order, and
// lowers Limit to the end of the last one it included if it stops early
// (a byte limit).
type FetchResponse struct {
	To, From      int32
	LeaderEpoch   int32
	Gen, Seq      uint64
	Err           ErrorCode
	Diverging     *DivergingEpoch
	HighWatermark int64
	LogEnd        int64 // the leader's log end offset
	LogStart      int64 // the leader's log start offset
	WindowStart   int64
	WindowEnd     int64
	Limit         int64 // batches with a base below Limit are all here
	Batches       []Batch
}

// AlterPartition is the leader's ISR change, a compare-and-set on the
// partition epoch at the controller (Kafka's AlterPartition).
type AlterPartition struct {
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32
}

// AlterPartitionResult is the controller's answer. Accepted or refused, it
// carries the partition's epochs and ISR as the controller holds them
// after the request (a refusal says why in Err).
type AlterPartitionResult struct {
	Err            ErrorCode
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32
}

// LogDurable reports that the local log, as it stands after every effect
// the driver has carried out, is durable below End.
type LogDurable struct{ End int64 }

// LogStartMoved reports the local log's new start after the driver
// trimmed it (retention, DeleteRecords, a follower following its
// leader's start). A leader refuses fetches from below it.
type LogStartMoved struct{ Start int64 }

func (Image) isMsg()                {}
func (Produce) isMsg()              {}
func (FetchRequest) isMsg()         {}
func (FetchResponse) isMsg()        {}
func (AlterPartitionResult) isMsg() {}
func (LogDurable) isMsg()           {}
func (LogStartMoved) isMsg()        {}

// Ready is a batch of effects for the driver, in the order it must carry
// them out: cut the log at Truncate (when HasTruncate), empty it and
// start it again at Reset (when HasReset: a follower whose log ends below
// its leader's log start; nothing of the old log is kept), write Appends in
// order, send Fetches and Responses, send AlterPartition, answer the
// produce requests in Answers. HighWatermark is the current high
// watermark (the driver serves consumers below it and may checkpoint it).
type Ready struct {
	HighWatermark  int64
	HasTruncate    bool
	Truncate       int64
	HasReset       bool
	Reset          int64
	Appends        []Batch
	Fetches        []FetchRequest
	Responses      []FetchResponse
	AlterPartition *AlterPartition
	Answers        []ProduceAnswer
}

// Empty reports whether the batch asks for nothing.
func (r *Ready) Empty() bool {
	return !r.HasTruncate && !r.HasReset && len(r.Appends) == 0 && len(r.Fetches) == 0 &&
		len(r.Responses) == 0 && r.AlterPartition == nil && len(r.Answers) == 0
}
