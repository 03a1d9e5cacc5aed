package group

import (
	"regexp"
	"slices"
	"strconv"
)

// Subscription is what a member consumes: a list of topic names or one
// regular expression (RE2 syntax, matched against the whole name), never
// both.
type Subscription struct {
	Topics []string
	Regex  string
}

// HeartbeatRequest is one ConsumerGroupHeartbeat.
type HeartbeatRequest struct {
	GroupID string
	// MemberID is the member's id; a joining member may leave it empty and
	// be given one, or choose its own (as Kafka 4.0 clients do).
	MemberID string
	// InstanceID makes the member static (group.instance.id).
	InstanceID string
	// MemberEpoch is the epoch the member last received, or EpochJoin,
	// EpochLeave or EpochStaticLeave.
	MemberEpoch int32
	// Subscription is nil when it has not changed; a join must carry it.
	Subscription *Subscription
	// ServerAssignor is the assignor the member asks for; empty keeps what
	// it asked for before.
	ServerAssignor string
	// Owned is every partition the member owns now, including ones it was
	// asked to revoke and has not yet let go of. A joining member owns
	// nothing.
	Owned []TopicPartition
	// RebalanceTimeoutMs is how long the member may hold partitions it was
	// asked to revoke (its max.poll.interval.ms); 0 or less keeps what it
	// sent before, or the coordinator's setting if it never sent one.
	RebalanceTimeoutMs int64
}

// HeartbeatResponse answers a heartbeat.
type HeartbeatResponse struct {
	Error               ErrorCode
	MemberID            string
	MemberEpoch         int32
	HeartbeatIntervalMs int64
	// Assignment is every partition the member may own now. Partitions it
	// owns and that are missing here are revoked: it must stop consuming
	// them and heartbeat without them before anyone else gets them.
	Assignment []TopicPartition
}

// Heartbeat handles one heartbeat: joins, leaves, subscription changes,
// and one step of the member's reconciliation toward its target.
func (c *Coordinator) Heartbeat(req HeartbeatRequest, nowMs int64) (HeartbeatResponse, []Record) {
	resp := c.heartbeat(req, nowMs)
	c.observeRebalance(req.GroupID, req.MemberID, nowMs)
	resp.HeartbeatIntervalMs = c.heartbeatInterval(req.GroupID, resp.MemberID)
	return resp, c.take()
}

// heartbeatInterval is the interval to tell a member: the short one while
// it is still reconciling (it has partitions to revoke, or its target holds
// partitions it has not been given yet), so that a moving partition is
// handed over within a few short intervals; else the configured one.
func (c *Coordinator) heartbeatInterval(groupID, memberID string) int64 {
	g := c.groups[groupID]
	if g == nil {
		return c.cfg.HeartbeatIntervalMs
	}
	m := g.members[memberID]
	if m == nil || m.epoch < 0 {
		return c.cfg.HeartbeatIntervalMs
	}
	if len(m.pending) > 0 || m.epoch != g.assignmentEpoch || !m.assigned.equal(g.target[m.id]) {
		return c.cfg.ReconcileHeartbeatIntervalMs
	}
	return c.cfg.HeartbeatIntervalMs
}

func (c *Coordinator) heartbeat(req HeartbeatRequest, nowMs int64) HeartbeatResponse {
	if code := validateHeartbeat(req); code != ErrNone {
		return HeartbeatResponse{Error: code}
	}
	g := c.groups[req.GroupID]
	var m *member
	switch {
	case req.MemberEpoch == EpochLeave || req.MemberEpoch == EpochStaticLeave:
		return c.leave(g, req, nowMs)
	case req.MemberEpoch == EpochJoin:
		var code ErrorCode
		if g, m, code = c.join(g, req, nowMs); code != ErrNone {
			return HeartbeatResponse{Error: code}
		}
	default:
		if g == nil || g.members[req.MemberID] == nil {
			return HeartbeatResponse{Error: ErrUnknownMemberID}
		}
		m = g.members[req.MemberID]
		if m.instanceID != req.InstanceID {
			return HeartbeatResponse{Error: ErrUnknownMemberID}
		}
		if !epochAccepted(m, req.MemberEpoch, setOf(req.Owned)) {
			return HeartbeatResponse{Error: ErrFencedMemberEpoch}
		}
		c.updateSubscription(g, m, req)
	}
	m.lastHeartbeatMs = nowMs
	c.updateTarget(g)
	c.reconcile(g, m, setOf(req.Owned), nowMs)
	if m.epoch <= 0 {
		panic("group: invariant: member " + m.id + " answered with epoch " + strconv.Itoa(int(m.epoch)) + "\n" + c.Describe())
	}
	return HeartbeatResponse{MemberID: m.id, MemberEpoch: m.epoch, Assignment: m.assigned.sorted()}
}

func validateHeartbeat(req HeartbeatRequest) ErrorCode {
	if req.GroupID == "" || len(req.GroupID) > maxGroupIDLen || len(req.MemberID) > maxMemberIDLen ||
		len(req.InstanceID) > maxInstanceIDLen || len(req.Owned) > maxOwnedPartitions ||
		req.MemberEpoch < EpochStaticLeave {
		return ErrInvalidRequest
	}
	if req.MemberEpoch != EpochJoin && req.MemberID == "" {
		return ErrInvalidRequest
	}
	if req.MemberEpoch == EpochJoin && (req.Subscription == nil || len(req.Owned) > 0) {
		// A member joins owning nothing: the coordinator takes a join as
		// proof that the member let go of whatever it held before.
		return ErrInvalidRequest
	}
	if req.ServerAssignor != "" && !knownAssignor(req.ServerAssignor) {
		return ErrUnsupportedAssignor
	}
	if s := req.Subscription; s != nil {
		if (s.Regex != "" && len(s.Topics) > 0) || len(s.Topics) > maxSubscribedTopics || len(s.Regex) > maxRegexLen {
			return ErrInvalidRequest
		}
		for _, t := range s.Topics {
			if t == "" || len(t) > maxTopicNameLen {
				return ErrInvalidRequest
			}
		}
		if s.Regex != "" {
			if _, err := compileSubscription(s.Regex); err != nil {
				return ErrInvalidRegularExpression
			}
		}
	}
	return ErrNone
}

// epochAccepted applies KIP-848's fencing rule. The member's own epoch is
// accepted, and so is its previous epoch when it owns no more than it is
// allowed: that is a member whose last response was lost. Owning a
// partition the coordinator did not give it fences the member whatever its
// epoch.
func epochAccepted(m *member, epoch int32, owned partSet) bool {
	if m.epoch == EpochStaticLeave {
		return false
	}
	if epoch != m.epoch && epoch != m.prevEpoch {
		return false
	}
	for tp := range owned {
		if !m.assigned.has(tp) && !m.pending.has(tp) {
			return false
		}
	}
	return true
}

// leave handles EpochLeave and EpochStaticLeave. A static member leaving
// with EpochStaticLeave keeps its assignment, reserved for its instance id,
// until its session runs out; any other leave frees its partitions now.
func (c *Coordinator) leave(g *group, req HeartbeatRequest, nowMs int64) HeartbeatResponse {
	if g == nil || g.members[req.MemberID] == nil {
		return HeartbeatResponse{Error: ErrUnknownMemberID}
	}
	m := g.members[req.MemberID]
	if m.instanceID != req.InstanceID {
		return HeartbeatResponse{Error: ErrUnknownMemberID}
	}
	if req.MemberEpoch == EpochStaticLeave && m.instanceID != "" {
		if m.epoch != EpochStaticLeave {
			// By leaving it let go of everything. What its target still
			// holds stays reserved for its next incarnation; the rest, and
			// what it was revoking, is free now.
			c.writeCurrent(g, m, EpochStaticLeave, m.epoch, m.assigned.and(g.target[m.id]), partSet{})
		}
		m.lastHeartbeatMs = nowMs
		return HeartbeatResponse{MemberID: m.id, MemberEpoch: EpochStaticLeave}
	}
	c.removeMember(g, m, nowMs)
	return HeartbeatResponse{MemberID: req.MemberID, MemberEpoch: EpochLeave}
}

// join handles EpochJoin: a new member, a known member starting over, or a
// static member's new incarnation taking over its instance's assignment.
func (c *Coordinator) join(g *group, req HeartbeatRequest, nowMs int64) (*group, *member, ErrorCode) {
	if g != nil && req.InstanceID != "" {
		// The instance's new incarnation may come back under the member id it
		// left with or under a new one; either way it takes over.
		if old := g.memberByInstance(req.InstanceID); old != nil && (old.id != req.MemberID || old.epoch == EpochStaticLeave) {
			if old.epoch != EpochStaticLeave {
				return nil, nil, ErrUnreleasedInstanceID
			}
			if req.MemberID != "" && req.MemberID != old.id && g.members[req.MemberID] != nil {
				return nil, nil, ErrInvalidRequest
			}
			return g, c.replaceStatic(g, old, req, nowMs), ErrNone
		}
	}
	if g != nil && req.MemberID != "" && g.members[req.MemberID] != nil {
		m := g.members[req.MemberID]
		if m.instanceID != req.InstanceID {
			return nil, nil, ErrUnknownMemberID
		}
		c.writeCurrent(g, m, 0, 0, partSet{}, partSet{})
		c.updateSubscription(g, m, req)
		return g, m, ErrNone
	}
	if g != nil && len(g.members) >= c.cfg.MaxGroupSize {
		return nil, nil, ErrGroupMaxSizeReached
	}
	id := req.MemberID
	if id == "" {
		id = c.newMemberID(req.GroupID, nowMs)
	}
	c.emit(memberRecord(req.GroupID, id, req.InstanceID, *req.Subscription, req.ServerAssignor, max(req.RebalanceTimeoutMs, 0)))
	g = c.groups[req.GroupID]
	m := g.members[id]
	c.writeCurrent(g, m, 0, 0, partSet{}, partSet{})
	c.bumpEpoch(g)
	return g, m, ErrNone
}

// newMemberID makes up an id for a member that brought none: a sequence
// number the group's log keeps (so no two members of the group's life get
// the same one, across failovers) and the time (so a group of the same
// name deleted and made again does not reuse its predecessor's ids).
func (c *Coordinator) newMemberID(groupID string, nowMs int64) string {
	r := Record{Type: RecordGroup, Group: groupID, EmptySinceMs: -1, MemberSeq: 1}
	if g := c.groups[groupID]; g != nil {
		r.Epoch, r.MetadataHash, r.EmptySinceMs, r.MemberSeq = g.epoch, g.metadataHash, g.emptySinceMs, g.memberSeq+1
	}
	c.emit(r)
	return "m" + strconv.FormatUint(r.MemberSeq, 10) + "-" + strconv.FormatInt(nowMs, 10)
}

// replaceStatic gives a static member's assignment and target to the new
// incarnation of its instance. The group epoch moves only if the
// subscription changed, so no other member notices the restart.
func (c *Coordinator) replaceStatic(g *group, old *member, req HeartbeatRequest, nowMs int64) *member {
	id := req.MemberID
	if id == "" {
		id = c.newMemberID(req.GroupID, nowMs)
	}
	assigned, target, hadTarget := old.assigned, g.target[old.id], g.target[old.id] != nil
	leftAt := old.prevEpoch
	oldSub := Subscription{Topics: old.topics, Regex: old.regex}
	c.emit(Record{Type: RecordCurrent, Tombstone: true, Group: g.id, MemberID: old.id})
	if hadTarget {
		c.emit(Record{Type: RecordTarget, Tombstone: true, Group: g.id, MemberID: old.id})
	}
	c.emit(Record{Type: RecordMember, Tombstone: true, Group: g.id, MemberID: old.id})
	assignor := req.ServerAssignor
	if assignor == "" {
		assignor = old.assignor
	}
	rebalance := old.rebalanceTimeoutMs
	if req.RebalanceTimeoutMs > 0 {
		rebalance = req.RebalanceTimeoutMs
	}
	c.emit(memberRecord(g.id, id, req.InstanceID, *req.Subscription, assignor, rebalance))
	m := g.members[id]
	if hadTarget {
		c.emit(Record{Type: RecordTarget, Group: g.id, MemberID: id, Partitions: target.sorted()})
	}
	// The new incarnation goes on from the epoch its instance left at, so
	// if it must revoke something first it does so at a real epoch.
	c.writeCurrent(g, m, leftAt, leftAt, assigned, partSet{})
	if !sameSubscription(oldSub, *req.Subscription) || assignor != old.assignor {
		c.bumpEpoch(g)
	}
	return m
}

// compileSubscription compiles a subscription regex to match whole topic
// names, as Kafka's does: "orders" subscribes to orders, not to
// orders-eu.
func compileSubscription(expr string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + expr + ")$")
}

func memberRecord(groupID, memberID, instanceID string, s Subscription, assignor string, rebalanceTimeoutMs int64) Record {
	topics := slices.Clone(s.Topics)
	slices.Sort(topics)
	topics = slices.Compact(topics)
	return Record{Type: RecordMember, Group: groupID, MemberID: memberID, InstanceID: instanceID,
		Topics: topics, Regex: s.Regex, Assignor: assignor, RebalanceTimeoutMs: rebalanceTimeoutMs}
}

func sameSubscription(a, b Subscription) bool {
	at, bt := slices.Clone(a.Topics), slices.Clone(b.Topics)
	slices.Sort(at)
	slices.Sort(bt)
	return a.Regex == b.Regex && slices.Equal(slices.Compact(at), slices.Compact(bt))
}

// updateSubscription records a changed subscription or assignor and starts
// a new group epoch for it; a changed rebalance timeout alone is recorded
// without one (it changes no assignment).
func (c *Coordinator) updateSubscription(g *group, m *member, req HeartbeatRequest) {
	sub := Subscription{Topics: m.topics, Regex: m.regex}
	if req.Subscription != nil {
		sub = *req.Subscription
	}
	assignor := m.assignor
	if req.ServerAssignor != "" {
		assignor = req.ServerAssignor
	}
	rebalance := m.rebalanceTimeoutMs
	if req.RebalanceTimeoutMs > 0 {
		rebalance = req.RebalanceTimeoutMs
	}
	same := sameSubscription(sub, Subscription{Topics: m.topics, Regex: m.regex}) && assignor == m.assignor
	if same && rebalance == m.rebalanceTimeoutMs {
		return
	}
	c.emit(memberRecord(g.id, m.id, m.instanceID, sub, assignor, rebalance))
	if !same {
		c.bumpEpoch(g)
	}
}

// reconcile moves the member's current assignment one step toward its
// target. First the member lets go of what its target no longer holds: the
// coordinator takes those partitions out of its assignment, keeps them as
// pending revocation (no one else can get them) and waits until a
// heartbeat reports them no longer owned. Only then does the member reach
// the assignment epoch, and it is given the partitions of its target that
// nobody holds; those still held by others come on later heartbeats, once
// their owners let go. A member whose target it already holds is never
// asked to give anything up.
func (c *Coordinator) reconcile(g *group, m *member, owned partSet, nowMs int64) {
	epoch, prev, assigned, pending := m.epoch, m.prevEpoch, m.assigned, m.pending
	target := g.target[m.id]
	changed := false
	if len(pending) > 0 {
		// A revocation the target no longer wants is called off: nobody
		// else can have been given a partition pending revocation, so the
		// member simply keeps it (or gets it back if it already let go).
		if back := pending.and(target); len(back) > 0 {
			assigned, pending = union(assigned, back), pending.minus(back)
			changed = true
		}
		if len(owned.and(pending)) > 0 {
			if changed {
				c.writeCurrent(g, m, epoch, prev, assigned, pending)
			}
			return
		}
		if len(pending) > 0 {
			pending, changed = partSet{}, true
		}
	}
	if epoch != g.assignmentEpoch {
		if revoke := assigned.minus(target); len(revoke) > 0 {
			c.writeCurrent(g, m, epoch, prev, assigned.and(target), revoke)
			m.revokeSinceMs = nowMs
			return
		}
		prev, epoch, changed = epoch, g.assignmentEpoch, true
	}
	grant := partSet{}
	for tp := range assigned {
		grant[tp] = struct{}{}
	}
	for tp := range target.minus(assigned) {
		if o, held := g.owner[tp]; !held || o == m.id {
			grant[tp] = struct{}{}
			changed = true
		}
	}
	if changed {
		c.writeCurrent(g, m, epoch, prev, grant, pending)
	}
}
