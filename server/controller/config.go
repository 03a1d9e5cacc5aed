package controller

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/controller/transport"
	"github.com/strata-db/strata/server/metadata"
	"go.etcd.io/raft/v3"
)

// Defaults. A tick is DefaultTickMs; an election takes 10 ticks (about
// 1 s, randomized by raft to 1-2 s) and the leader heartbeats every tick.
const (
	DefaultTickMs             = 100
	DefaultElectionTicks      = 10
	DefaultHeartbeatTicks     = 1
	DefaultSnapshotEntries    = 4096
	DefaultCompactKeepEntries = 1024
	// inboxLen bounds the messages waiting for the loop; more are
	// dropped (raft retransmits).
	inboxLen = 4096
	// reportLen bounds the transport's pending reports.
	reportLen = 1024
	// proposalQueueLen bounds commands waiting for the loop.
	proposalQueueLen = 1024
	// maxDeferred bounds commands held while a new leader catches up.
	maxDeferred = 1024
	// maxPendingReads bounds ReadIndex requests in flight.
	maxPendingReads = 4096
	// maxProposalBytes bounds one command's encoded records.
	maxProposalBytes         = 8 << 20
	maxSizePerMsgBytes       = 1 << 20
	maxInflightMsgs          = 256
	maxUncommittedBytes      = 64 << 20
	maxCommittedPerReadyByte = 16 << 20
	// DefaultSubscriptionLen is a subscription's buffer when none is given.
	DefaultSubscriptionLen = 1024
)

// Config configures a Node.
type Config struct {
	// ID is this voter's id (non-zero); Voters lists every voter's id,
	// this one included. Membership is static.
	ID     uint64
	Voters []uint64
	// Dir holds the voter's Raft state (raftlog); FS is its filesystem
	// (segment.OSFS when nil). SegmentBytes and IndexBytes size the Raft
	// log's segments (raftlog defaults when zero).
	Dir          string
	FS           segment.FS
	SegmentBytes int64
	IndexBytes   int64
	// Transport carries messages to the other voters; it may be nil for a
	// single voter.
	Transport transport.Transport
	// TickMs is the period of the real ticker (DefaultTickMs). Ticks, when
	// set, replaces the ticker: each receive is one tick (test clocks).
	TickMs int64
	Ticks  <-chan struct{}
	// NowMs is the clock given to the metadata controller (wall clock by
	// default).
	NowMs func() int64
	// ElectionTicks and HeartbeatTicks are raft's timeouts in ticks.
	ElectionTicks  int
	HeartbeatTicks int
	// SnapshotEntries is how many applied entries trigger a snapshot;
	// CompactKeepEntries is how many entries stay behind it in the log for
	// followers that lag a little (so they need no snapshot).
	SnapshotEntries    uint64
	CompactKeepEntries uint64
	// Metadata configures the leader's metadata.Controller.
	Metadata metadata.Config
	// Logger receives raft's log lines (discarded when nil).
	Logger raft.Logger
	// OnFence, when set, hears on the leader of every broker its session
	// check fences, and why, as the fence is proposed. It runs on the
	// node's loop and must not block.
	OnFence func(metadata.Fence)
}

func (c Config) withDefaults() (Config, error) {
	if c.ID == 0 || !slices.Contains(c.Voters, c.ID) {
		return c, fmt.Errorf("controller: id %d is not one of the voters %v", c.ID, c.Voters)
	}
	if slices.Contains(c.Voters, 0) {
		return c, errors.New("controller: voter id 0 is reserved")
	}
	// raft addresses its local storage threads with the two largest ids.
	if slices.ContainsFunc(c.Voters, func(id uint64) bool { return id >= raft.LocalApplyThread }) {
		return c, fmt.Errorf("controller: voter ids from %d up are reserved", uint64(raft.LocalApplyThread))
	}
	c.Voters = slices.Sorted(slices.Values(c.Voters))
	if len(slices.Compact(slices.Clone(c.Voters))) != len(c.Voters) {
		return c, fmt.Errorf("controller: voters %v list an id twice", c.Voters)
	}
	if c.Dir == "" {
		return c, errors.New("controller: no Dir")
	}
	if c.Transport == nil && len(c.Voters) > 1 {
		return c, errors.New("controller: several voters need a Transport")
	}
	if c.TickMs <= 0 {
		c.TickMs = DefaultTickMs
	}
	if c.NowMs == nil {
		c.NowMs = func() int64 { return time.Now().UnixMilli() }
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.HeartbeatTicks >= c.ElectionTicks {
		return c, fmt.Errorf("controller: heartbeat of %d ticks is not below the election timeout of %d", c.HeartbeatTicks, c.ElectionTicks)
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = DefaultSnapshotEntries
	}
	if c.CompactKeepEntries == 0 {
		c.CompactKeepEntries = DefaultCompactKeepEntries
	}
	if c.Logger == nil {
		c.Logger = discardLogger{}
	}
	return c, nil
}

// discardLogger drops raft's log lines but still panics where raft must.
type discardLogger struct{}

func (discardLogger) Debug(...any)              {}
func (discardLogger) Debugf(string, ...any)     {}
func (discardLogger) Error(...any)              {}
func (discardLogger) Errorf(string, ...any)     {}
func (discardLogger) Info(...any)               {}
func (discardLogger) Infof(string, ...any)      {}
func (discardLogger) Warning(...any)            {}
func (discardLogger) Warningf(string, ...any)   {}
func (discardLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (discardLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
