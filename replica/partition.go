package replica

import (
	"fmt"
	"slices"
)

// Role is what a replica does for its partition under the latest image.
type Role uint8

const (
	// RoleNone: no image yet, no leader, or not a replica.
	RoleNone Role = iota
	RoleLeader
	RoleFollower
)

func (r Role) String() string {
	return [...]string{"none", "leader", "follower"}[r]
}

// LogState is the local log as the driver found it on open: its end, how
// much of it is durable (after a crash, all of what was recovered), the
// epoch cache, and the high watermark from its checkpoint.
type LogState struct {
	// LogStart is the log's first offset; a log with nothing in it
	// (LogStart == LogEnd) needs no epochs.
	LogStart      int64
	LogEnd        int64
	DurableEnd    int64
	HighWatermark int64
	Epochs        []EpochStart
}

// Status is a replica's view of its partition. DurableEnd beside LogEnd
// is what the controller's eligible-leader rules (KIP-966) need: what a
// crash of this replica would keep.
type Status struct {
	ID             int32
	Role           Role
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32
	PendingISR     []int32 // the ISR change in flight, if any
	LogEnd         int64
	DurableEnd     int64
	HighWatermark  int64
}

// Partition is one replica of one partition: leader and follower in one
// machine. It is not safe for concurrent use; its shard owns it.
type Partition struct {
	cfg   Config
	nowMs int64

	role           Role
	leader         int32
	leaderEpoch    int32 // NoEpoch before the first image
	partitionEpoch int32
	replicas       []int32
	isr            []int32
	ineligible     []int32
	minInsync      int

	hw       int64
	logStart int64 // the local log's first offset, as the driver last said
	logEnd   int64 // the offset the next append gets
	durable  int64
	epochs   *EpochCache

	rd    Ready
	taken bool // Ready returned, Advance not yet called

	lead leaderState   // meaningful while role == RoleLeader
	fol  followerState // meaningful while role == RoleFollower
}

// NewPartition returns the machine for a replica whose log is in log. It
// has no role until the first Image.
func NewPartition(cfg Config, log LogState) (*Partition, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log.LogEnd < 0 || log.LogStart < 0 || log.LogStart > log.LogEnd || log.DurableEnd < 0 || log.DurableEnd > log.LogEnd ||
		log.HighWatermark < 0 || log.HighWatermark > log.LogEnd {
		return nil, fmt.Errorf("replica: inconsistent log state %+v", log)
	}
	epochs, err := NewEpochCache(log.Epochs)
	if err != nil {
		return nil, err
	}
	// A checkpointed cache may end in epochs that wrote nothing (a
	// leadership with no appends); they name no record and are dropped.
	epochs.TruncateFromEnd(log.LogEnd)
	if log.LogEnd > log.LogStart && epochs.Latest() == NoEpoch {
		return nil, fmt.Errorf("replica: no epoch cache for a log ending at %d", log.LogEnd)
	}
	p := &Partition{cfg: cfg, leader: NoLeader, leaderEpoch: NoEpoch, partitionEpoch: NoEpoch,
		hw: log.HighWatermark, logStart: log.LogStart, logEnd: log.LogEnd, durable: log.DurableEnd, epochs: epochs}
	p.fol.leaderEnd = -1
	return p, nil
}

// Step feeds one input to the machine.
func (p *Partition) Step(m Msg) {
	p.mustBeAdvanced()
	switch m := m.(type) {
	case Image:
		p.stepImage(m)
	case Produce:
		p.stepProduce(m)
	case FetchRequest:
		p.stepFetch(m)
	case FetchResponse:
		p.stepFetchResponse(m)
	case AlterPartitionResult:
		p.stepAlterResult(m)
	case LogDurable:
		p.stepDurable(m)
	case LogStartMoved:
		p.stepLogStart(m)
	default:
		panic(fmt.Sprintf("replica: invariant: unknown message %T", m))
	}
	p.check()
}

// Tick tells the machine the time. nowMs may not go back; an older value
// is taken as the last one.
func (p *Partition) Tick(nowMs int64) {
	p.mustBeAdvanced()
	p.nowMs = max(p.nowMs, nowMs)
	switch p.role {
	case RoleLeader:
		p.tickLeader()
	case RoleFollower:
		p.tickFollower()
	}
	p.check()
}

// Ready returns the effects accumulated since the last Advance. The driver
// carries them out, in the order Ready documents, and then calls Advance;
// Step and Tick refuse to run in between.
func (p *Partition) Ready() Ready {
	p.taken = true
	p.rd.HighWatermark = p.hw
	return p.rd
}

// Advance tells the machine the last Ready has been carried out.
func (p *Partition) Advance() {
	p.rd = Ready{}
	p.taken = false
}

func (p *Partition) mustBeAdvanced() {
	if p.taken {
		panic("replica: invariant: Step or Tick between Ready and Advance")
	}
}

// Status returns the replica's view; the slices are copies.
func (p *Partition) Status() Status {
	s := Status{ID: p.cfg.ID, Role: p.role, Leader: p.leader, LeaderEpoch: p.leaderEpoch,
		PartitionEpoch: p.partitionEpoch, ISR: slices.Clone(p.isr),
		LogEnd: p.logEnd, DurableEnd: p.durable, HighWatermark: p.hw}
	if p.role == RoleLeader && p.lead.alter != nil {
		s.PendingISR = slices.Clone(p.lead.alter.req.ISR)
	}
	return s
}

// Role is the replica's role under the latest image.
func (p *Partition) Role() Role { return p.role }

// LeaderEpoch is the leader epoch of the latest image (NoEpoch before one).
func (p *Partition) LeaderEpoch() int32 { return p.leaderEpoch }

// HighWatermark is the replica's high watermark.
func (p *Partition) HighWatermark() int64 { return p.hw }

// EpochCache returns a copy of the replica's epoch cache.
func (p *Partition) EpochCache() []EpochStart { return p.epochs.Entries() }

// stepImage applies a metadata image. An image of an older leader epoch
// changes nothing. Of the current leader epoch, an image with no newer
// partition epoch changes only what is not partition state: the
// ineligible replicas (broker state) and min.insync.replicas (a topic
// config), both of which change without a new partition epoch; images
// arrive in order, so the latest says. A new leader epoch moves the
// machine to its role afresh; the same leader epoch brings a new ISR.
func (p *Partition) stepImage(im Image) {
	if im.LeaderEpoch < p.leaderEpoch {
		return
	}
	p.ineligible = slices.Clone(im.Ineligible)
	if im.LeaderEpoch == p.leaderEpoch && im.PartitionEpoch <= p.partitionEpoch {
		if minInsync := max(im.MinInsync, 1); minInsync != p.minInsync {
			p.minInsync = minInsync
			if p.role == RoleLeader {
				p.isrChanged()
			}
		}
		return
	}
	newEpoch := im.LeaderEpoch != p.leaderEpoch
	p.partitionEpoch = im.PartitionEpoch
	p.replicas = slices.Clone(im.Replicas)
	p.isr = slices.Clone(im.ISR)
	p.minInsync = max(im.MinInsync, 1)
	if !newEpoch {
		switch {
		case p.role == RoleLeader:
			p.replicasChanged()
			p.isrChanged()
		case p.role == RoleFollower && !slices.Contains(p.replicas, p.cfg.ID):
			p.leaveRole() // reassigned away
		}
		return
	}
	p.leaveRole()
	p.leaderEpoch, p.leader = im.LeaderEpoch, im.Leader
	switch {
	case im.Leader == p.cfg.ID && im.LeaderEpoch <= p.epochs.Latest():
		// The log already holds this epoch or a later one, so this is an
		// image from before this replica's last restart (replayed from the
		// local metadata log): leading again in an epoch it may have led
		// would let two different records share an epoch and an offset.
		p.role = RoleNone
	case im.Leader == p.cfg.ID:
		p.becomeLeader()
	case im.Leader != NoLeader && slices.Contains(im.Replicas, p.cfg.ID):
		p.becomeFollower()
	default:
		p.role = RoleNone
	}
}

// stepDurable takes the driver's report of what is durable.
func (p *Partition) stepDurable(m LogDurable) {
	end := min(m.End, p.logEnd)
	if end <= p.durable {
		return
	}
	p.durable = end
	switch p.role {
	case RoleLeader:
		p.maybeAdvanceHW()
		p.completeProduces()
	case RoleFollower:
		p.sendFetches()
	}
}

// appendLocal adds b at the log end: its epoch enters the cache and the
// driver is asked to write it.
func (p *Partition) appendLocal(b Batch) {
	if b.Base != p.logEnd || b.Count < 1 {
		panic(fmt.Sprintf("replica: invariant: appending %d+%d at log end %d", b.Base, b.Count, p.logEnd))
	}
	p.epochs.Assign(b.Epoch, b.Base)
	p.rd.Appends = append(p.rd.Appends, b)
	p.logEnd = b.End()
}

// truncate cuts the log at to. Offsets below the high watermark are
// committed: every later leader has them, so a divergence is always above
// it, and a cut below it is a bug.
func (p *Partition) truncate(to int64) {
	if to >= p.logEnd {
		return
	}
	if to < p.hw {
		panic(fmt.Sprintf("replica: invariant: replica %d truncating to %d below the high watermark %d", p.cfg.ID, to, p.hw))
	}
	if len(p.rd.Appends) > 0 {
		panic("replica: invariant: a truncation after appends in one Ready")
	}
	if !p.rd.HasTruncate || to < p.rd.Truncate {
		p.rd.HasTruncate, p.rd.Truncate = true, to
	}
	p.logEnd = to
	p.logStart = min(p.logStart, to)
	p.durable = min(p.durable, to)
	p.epochs.TruncateFromEnd(to)
}

// resetLog empties the log and starts it again at to, past its end: the
// leader's log starts there, so nothing this log holds will ever be
// fetched or served again. The high watermark moves to to (the leader's
// is at or past its log start).
func (p *Partition) resetLog(to int64) {
	if to <= p.logEnd {
		panic(fmt.Sprintf("replica: invariant: replica %d resetting to %d, not past its log end %d", p.cfg.ID, to, p.logEnd))
	}
	if len(p.rd.Appends) > 0 {
		panic("replica: invariant: a reset after appends in one Ready")
	}
	p.rd.HasReset, p.rd.Reset = true, to
	p.logStart, p.logEnd, p.durable = to, to, to
	p.epochs.TruncateFromEnd(0)
	p.setHW(to)
}

// stepLogStart follows the driver's trim of the local log.
func (p *Partition) stepLogStart(m LogStartMoved) {
	if m.Start < 0 {
		panic(fmt.Sprintf("replica: invariant: replica %d log start %d", p.cfg.ID, m.Start))
	}
	// A truncation the driver has not carried out yet may have cut the
	// machine's log below the driver's start.
	p.logStart = max(p.logStart, min(m.Start, p.logEnd))
	if p.role != RoleLeader {
		return
	}
	// A parked fetch whose window now starts below the log has nothing
	// left to be served: its follower starts again at the log start.
	kept := p.lead.parked[:0]
	for _, pf := range p.lead.parked {
		if pf.req.WindowStart < p.logStart {
			p.rd.Responses = append(p.rd.Responses, p.errResponse(pf.req, ErrOffsetOutOfRange))
		} else {
			kept = append(kept, pf)
		}
	}
	p.lead.parked = kept
}

// setHW raises the high watermark; it never goes down.
func (p *Partition) setHW(hw int64) bool {
	if hw <= p.hw {
		return false
	}
	p.hw = hw
	return true
}

func (p *Partition) check() {
	if p.hw > p.logEnd || p.durable > p.logEnd || p.hw < 0 {
		panic(fmt.Sprintf("replica: invariant: replica %d hw %d durable %d log end %d", p.cfg.ID, p.hw, p.durable, p.logEnd))
	}
	if p.role == RoleLeader && p.epochs.Latest() != p.leaderEpoch {
		panic(fmt.Sprintf("replica: invariant: leader of epoch %d with latest cached epoch %d", p.leaderEpoch, p.epochs.Latest()))
	}
}
