package client

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-db/strata/schema"
)

// The group member's protocol state machine: sans-IO, in the manner of
// etcd's raft node. It never touches a socket, a clock or a goroutine.
// Inputs are the answers of the requests it asked for, the application's
// confirmations that it let go of or took up partitions, and the time
// (nowMs arguments); outputs are memberActions, taken with actions. The
// GroupConsumer drives it: it performs the network actions on its
// heartbeat goroutine and hands the partition actions to Poll.
//
// The safety rule it keeps is KIP-848's: a partition is reported owned in
// every heartbeat from the moment it is handed to the application until
// the application confirms (revoked) that it stopped fetching it and ran
// OnRevoked, so the coordinator never gives it to another member while
// this one may still read it or commit for it.

// Member epochs with a meaning of their own in a heartbeat (the
// coordinator's, docs/consumer-groups.md).
const (
	memberEpochJoin        = schema.MemberEpochJoin
	memberEpochLeave       = schema.MemberEpochLeave
	memberEpochStaticLeave = schema.MemberEpochStaticLeave
)

// sessionTimeoutMsDefault is the coordinator's default session
// (group.consumer.session.timeout.ms). The member gives up its partitions
// when no heartbeat sent within this long was answered: by then the
// coordinator has removed it and may have given them to others.
const sessionTimeoutMsDefault = 45_000

// heartbeatIntervalMsDefault is the interval used until the coordinator
// names its own in the first answer.
const heartbeatIntervalMsDefault = 5_000

// memberConfig is what the core needs to know of the member.
type memberConfig struct {
	groupID    string
	memberID   string // chosen by the client (KIP-1082), so a lost join answer leaves no ghost member
	instanceID string // static membership when set
	topics     []string
	regex      string
	assignor   string
	// autoCommitIntervalMs > 0 asks for a commit of the positions that
	// often while the member holds partitions.
	autoCommitIntervalMs int64
	sessionTimeoutMs     int64
	// rebalanceTimeoutMs goes in every heartbeat; -1: the coordinator's.
	rebalanceTimeoutMs int32
	// backoff is the wait before retry number attempt (1 for the first).
	backoffMs func(attempt int) int64
}

// memberActionKind says what a memberAction asks for.
type memberActionKind uint8

const (
	// actFindCoordinator: look the group's coordinator up, then call
	// coordinatorFound or coordinatorFailed.
	actFindCoordinator memberActionKind = iota + 1
	// actHeartbeat: send hb to the coordinator, then call heartbeatAnswered
	// or heartbeatFailed.
	actHeartbeat
	// actRevoke: run OnRevoked (OnLost when lost) for parts, then stop
	// fetching them, then call revoked(parts).
	actRevoke
	// actAssign: start fetching parts from their committed offsets (or the
	// reset policy), run OnAssigned, then call assigned(parts).
	actAssign
	// actCommit: commit the positions of the held partitions (auto-commit).
	actCommit
	// actFail: the member cannot go on; err says why. Poll returns it.
	actFail
	// actLeft: the member has left the group (or never joined it).
	actLeft
)

// memberAction is one thing the core asks its driver to do.
type memberAction struct {
	kind  memberActionKind
	hb    memberHeartbeat
	parts []TopicPartition // sorted
	// lost marks a revocation of partitions the member no longer holds in
	// the coordinator's eyes (fenced, unknown, session over): commits for
	// them are refused, so none is attempted.
	lost bool
	err  error
}

// memberHeartbeat is one ConsumerGroupHeartbeat to send.
type memberHeartbeat struct {
	memberID   string
	instanceID string
	epoch      int32
	topics     []string // with regex: the subscription, sent whole every time
	regex      string
	assignor   string
	owned      []TopicPartition // sorted
	// rebalanceTimeoutMs is how long the member may hold partitions it
	// was asked to revoke; -1: the coordinator's setting.
	rebalanceTimeoutMs int32
}

// memberAnswer is a heartbeat's answer as the core reads it.
type memberAnswer struct {
	code       ErrorCodeName // "" for none
	memberID   string
	epoch      int32
	intervalMs int64
	assignment []TopicPartition
	// retriable marks a code worth a retry at the same coordinator after
	// a backoff (REQUEST_TIMED_OUT: the answer's write did not commit in
	// time).
	retriable bool
	// cause is the refusal as the wire told it (a *schema.CodeError), for
	// the error a refusal that ends the member carries.
	cause error
}

// ErrorCodeName is a wire error code's name as the core compares it; the
// driver maps schema codes onto it so the core needs no wire types.
type ErrorCodeName = string

// Heartbeat answers the core acts on by name.
const (
	codeFencedMemberEpoch   ErrorCodeName = "FENCED_MEMBER_EPOCH"
	codeUnknownMemberID     ErrorCodeName = "UNKNOWN_MEMBER_ID"
	codeNotCoordinator      ErrorCodeName = "NOT_COORDINATOR"
	codeCoordinatorNotAvail ErrorCodeName = "COORDINATOR_NOT_AVAILABLE"
	codeCoordinatorLoading  ErrorCodeName = "COORDINATOR_LOAD_IN_PROGRESS"
)

// coordinatorMoved reports whether a heartbeat's code says the coordinator
// is elsewhere or not ready: look it up again and retry with backoff.
func coordinatorMoved(code ErrorCodeName) bool {
	return code == codeNotCoordinator || code == codeCoordinatorNotAvail || code == codeCoordinatorLoading
}

type memberState uint8

const (
	// stateJoining: the next heartbeat is a join (epoch 0), sent once the
	// member holds nothing.
	stateJoining memberState = iota
	// stateStable: joined, heartbeating at its epoch.
	stateStable
	// stateLeaving: letting go of everything, then sending the leave.
	stateLeaving
	// stateLeft and stateFailed are final.
	stateLeft
	stateFailed
)

// memberCore is the state machine. Not safe for concurrent use; the
// driver serialises calls.
type memberCore struct {
	cfg      memberConfig
	memberID string
	epoch    int32
	state    memberState
	// incarnation counts the member's starts over (fenced, unknown,
	// session over): an answer to a heartbeat of an earlier one is stale.
	incarnation uint64
	// known: the coordinator has answered this member id and not said it
	// does not know it since. A member known to it sends a leave even
	// when fenced, so its partitions are freed now rather than at the
	// end of its session.
	known bool

	coordKnown   bool
	findInFlight bool
	findAttempts int
	findAtMs     int64

	hbInFlight    bool
	sent          memberHeartbeat // the heartbeat in flight
	sentAtMs      int64
	sentIncarn    uint64
	hbAttempts    int // failed heartbeats in a row
	nextHbMs      int64
	intervalMs    int64
	sessionFromMs int64 // when the last answered heartbeat was sent

	// target is the coordinator's latest assignment. held are partitions
	// the application fetches; assigning were handed to it to start and
	// revoking to stop, neither confirmed yet. All three are reported
	// owned.
	target    tpSet
	held      tpSet
	assigning tpSet
	revoking  tpSet

	commitAtMs int64
	err        error
	out        []memberAction
}

func newMemberCore(cfg memberConfig) *memberCore {
	if cfg.sessionTimeoutMs <= 0 {
		cfg.sessionTimeoutMs = sessionTimeoutMsDefault
	}
	return &memberCore{cfg: cfg, memberID: cfg.memberID, intervalMs: heartbeatIntervalMsDefault,
		target: tpSet{}, held: tpSet{}, assigning: tpSet{}, revoking: tpSet{}}
}

// owned is what a heartbeat reports: everything handed to the
// application and not confirmed let go of.
func (m *memberCore) owned() []TopicPartition {
	return union(m.held, m.assigning, m.revoking).sorted()
}

// holdsNothing reports whether the application holds no partition, as a
// join and a leave require.
func (m *memberCore) holdsNothing() bool {
	return len(m.held) == 0 && len(m.assigning) == 0 && len(m.revoking) == 0
}

// actions advances the timers to nowMs and returns what the driver must
// do, in order (revocations before assignments, both before the
// heartbeat that depends on them).
func (m *memberCore) actions(nowMs int64) []memberAction {
	m.tick(nowMs)
	out := m.out
	m.out = nil
	return out
}

func (m *memberCore) emit(a memberAction) { m.out = append(m.out, a) }

func (m *memberCore) tick(nowMs int64) {
	switch m.state {
	case stateLeft, stateFailed:
		return
	}
	if m.state == stateStable && nowMs-m.sessionFromMs >= m.cfg.sessionTimeoutMs {
		// No heartbeat sent in the last session was answered: the
		// coordinator has removed the member. Its partitions may be
		// someone else's now; stop at once and join again.
		m.startOver(nowMs)
	}
	if m.state == stateStable && m.cfg.autoCommitIntervalMs > 0 && len(m.held) > 0 && nowMs >= m.commitAtMs {
		m.emit(memberAction{kind: actCommit})
		m.commitAtMs = nowMs + m.cfg.autoCommitIntervalMs
	}
	if m.state == stateLeaving && !m.known && !m.hbInFlight && m.holdsNothing() {
		// Never joined, or out of the group already: nothing to tell. (A
		// join whose answer was lost leaves a member that its session
		// removes.)
		m.finish(nil)
		return
	}
	if !m.coordKnown {
		if !m.findInFlight && nowMs >= m.findAtMs {
			m.findInFlight = true
			m.emit(memberAction{kind: actFindCoordinator})
		}
		return
	}
	if m.hbInFlight || nowMs < m.nextHbMs {
		return
	}
	hb := memberHeartbeat{memberID: m.memberID, instanceID: m.cfg.instanceID, epoch: m.epoch,
		topics: m.cfg.topics, regex: m.cfg.regex, assignor: m.cfg.assignor, owned: m.owned(),
		rebalanceTimeoutMs: m.cfg.rebalanceTimeoutMs}
	switch m.state {
	case stateJoining:
		if !m.holdsNothing() {
			return // a join owns nothing: wait for the revocations
		}
		hb.epoch = memberEpochJoin
	case stateLeaving:
		if !m.holdsNothing() {
			return
		}
		hb.epoch = memberEpochLeave
		if m.cfg.instanceID != "" {
			hb.epoch = memberEpochStaticLeave
		}
		hb.owned = nil
	}
	m.hbInFlight, m.sent, m.sentAtMs, m.sentIncarn = true, hb, nowMs, m.incarnation
	m.emit(memberAction{kind: actHeartbeat, hb: hb})
}

// nextDeadlineMs is when actions should be called again if no input
// comes first (math.MaxInt64-like far future when nothing is timed).
func (m *memberCore) nextDeadlineMs() int64 {
	const never = int64(1) << 62
	switch m.state {
	case stateLeft, stateFailed:
		return never
	}
	d := never
	if m.state == stateStable {
		d = min(d, m.sessionFromMs+m.cfg.sessionTimeoutMs)
		if m.cfg.autoCommitIntervalMs > 0 && len(m.held) > 0 {
			d = min(d, m.commitAtMs)
		}
	}
	switch {
	case !m.coordKnown && !m.findInFlight:
		d = min(d, m.findAtMs)
	case m.coordKnown && !m.hbInFlight:
		d = min(d, m.nextHbMs)
	}
	return d
}

// coordinatorFound: the lookup answered; heartbeats go there now.
func (m *memberCore) coordinatorFound(nowMs int64) {
	m.findInFlight, m.coordKnown, m.findAttempts = false, true, 0
	m.nextHbMs = min(m.nextHbMs, nowMs)
}

// coordinatorFailed: the lookup failed; retriable errors are retried after
// a backoff, others end the member.
func (m *memberCore) coordinatorFailed(err error, retriable bool, nowMs int64) {
	m.findInFlight = false
	if !retriable {
		m.fail(err)
		return
	}
	m.findAttempts++
	m.findAtMs = nowMs + m.cfg.backoffMs(m.findAttempts)
}

// heartbeatFailed: the heartbeat got no answer (a lost connection, a
// timeout). The coordinator may be gone: look it up again, after a
// backoff. A leave that gets no answer ends the member anyway: its
// session runs out on the coordinator.
func (m *memberCore) heartbeatFailed(nowMs int64) {
	m.hbInFlight = false
	if m.sent.epoch < 0 {
		m.finish(nil)
		return
	}
	m.lookAgain(nowMs)
}

// coordinatorLost: another request to the coordinator (a commit, an
// offset fetch) found it gone or moved; look it up again.
func (m *memberCore) coordinatorLost(nowMs int64) {
	if m.coordKnown {
		m.lookAgain(nowMs)
	}
}

// lookAgain drops the coordinator and schedules a lookup and the
// heartbeat after a backoff.
func (m *memberCore) lookAgain(nowMs int64) {
	m.hbAttempts++
	m.coordKnown = false
	m.findAtMs = nowMs + m.cfg.backoffMs(m.hbAttempts)
	m.nextHbMs = nowMs
}

// heartbeatAnswered takes a heartbeat's answer.
func (m *memberCore) heartbeatAnswered(a memberAnswer, nowMs int64) {
	m.hbInFlight = false
	sent := m.sent
	if sent.epoch < 0 {
		if coordinatorMoved(a.code) {
			m.lookAgain(nowMs) // tell the coordinator where it is now
			return
		}
		m.finish(nil) // whatever else it says, the member is out
		return
	}
	switch {
	case coordinatorMoved(a.code):
		m.lookAgain(nowMs)
		return
	case a.retriable:
		m.hbAttempts++
		m.nextHbMs = nowMs + m.cfg.backoffMs(m.hbAttempts)
		return
	case a.code == codeFencedMemberEpoch || a.code == codeUnknownMemberID:
		if a.code == codeUnknownMemberID {
			m.known = false
		}
		switch {
		case m.state == stateLeaving:
			// What it still holds is lost. Fenced, it is still in the
			// group, and its leave frees its partitions now; unknown,
			// there is nothing to tell.
			m.epoch = memberEpochJoin
			m.reconcile(true)
		case m.sentIncarn == m.incarnation:
			m.startOver(nowMs)
		}
		return
	case a.code != "":
		m.fail(&groupError{group: m.cfg.groupID, code: a.code, cause: a.cause})
		return
	}
	if m.sentIncarn != m.incarnation || m.state == stateLeft || m.state == stateFailed {
		return // an answer to the member's earlier life
	}
	if a.epoch <= 0 {
		// An accepted heartbeat always gets a real epoch; going on with
		// this one would make the next heartbeat a join or a leave.
		m.fail(fmt.Errorf("group %q: the coordinator accepted a heartbeat with member epoch %d", m.cfg.groupID, a.epoch))
		return
	}
	m.hbAttempts = 0
	m.known = true
	if a.memberID != "" {
		m.memberID = a.memberID
	}
	m.epoch = a.epoch
	if a.intervalMs > 0 {
		m.intervalMs = a.intervalMs
	}
	m.sessionFromMs = m.sentAtMs
	m.nextHbMs = nowMs + m.intervalMs
	switch m.state {
	case stateLeaving:
		m.nextHbMs = nowMs // the leave goes at once
		return             // it lets go of everything whatever the target
	case stateJoining:
		m.state = stateStable
		m.commitAtMs = nowMs + m.cfg.autoCommitIntervalMs
	}
	m.target = setOfTP(a.assignment)
	m.reconcile(false)
}

// revoked: the application ran OnRevoked (or OnLost) for parts and
// fetches them no more. The next heartbeat, sent now, reports them gone.
func (m *memberCore) revoked(parts []TopicPartition, nowMs int64) {
	for _, tp := range parts {
		delete(m.revoking, tp)
	}
	m.nextHbMs = nowMs
	m.reconcile(m.lostMode())
}

// assigned: the application fetches parts now and ran OnAssigned.
func (m *memberCore) assigned(parts []TopicPartition) {
	for _, tp := range parts {
		if m.assigning.has(tp) {
			delete(m.assigning, tp)
			m.held[tp] = struct{}{}
		}
	}
	m.reconcile(m.lostMode())
}

// lostMode reports whether partitions taken away now are lost rather than
// revoked: the coordinator no longer counts the member as their owner.
func (m *memberCore) lostMode() bool {
	return m.state == stateJoining || m.state == stateFailed || (m.state == stateLeaving && m.epoch <= 0)
}

// subscribe replaces the subscription; the next heartbeat, sent now,
// carries it, and the coordinator's answers move the assignment to it.
func (m *memberCore) subscribe(topics []string, regex string, nowMs int64) {
	m.cfg.topics, m.cfg.regex = topics, regex
	m.nextHbMs = nowMs
}

// leave starts leaving: everything held is revoked (OnRevoked runs, so the
// application can commit), then the leave heartbeat goes at once: epoch
// -1, or -2 for a static member, which keeps its partitions reserved for
// its next incarnation for a session.
func (m *memberCore) leave(nowMs int64) {
	switch m.state {
	case stateLeft, stateFailed, stateLeaving:
		return
	}
	m.state = stateLeaving
	m.target = tpSet{}
	m.nextHbMs = nowMs
	m.reconcile(m.lostMode())
}

// reconcile hands the application what the target adds and takes away
// what it no longer holds. Partitions being revoked are not handed out
// again until the revocation is confirmed; one the coordinator gives back
// meanwhile is handed out again after it.
func (m *memberCore) reconcile(lost bool) {
	var revoke []TopicPartition
	for tp := range m.held {
		if !m.target.has(tp) {
			revoke = append(revoke, tp)
		}
	}
	if len(revoke) > 0 {
		slices.SortFunc(revoke, compareTP)
		for _, tp := range revoke {
			delete(m.held, tp)
			m.revoking[tp] = struct{}{}
		}
		m.emit(memberAction{kind: actRevoke, parts: revoke, lost: lost})
	}
	if m.state != stateStable {
		return
	}
	var assign []TopicPartition
	for tp := range m.target {
		if !m.held.has(tp) && !m.assigning.has(tp) && !m.revoking.has(tp) {
			assign = append(assign, tp)
		}
	}
	if len(assign) > 0 {
		slices.SortFunc(assign, compareTP)
		for _, tp := range assign {
			m.assigning[tp] = struct{}{}
		}
		m.emit(memberAction{kind: actAssign, parts: assign})
	}
}

// startOver gives up everything as lost and joins again with epoch 0 and
// the same member id once the application confirms.
func (m *memberCore) startOver(nowMs int64) {
	m.incarnation++
	m.state = stateJoining
	m.epoch = memberEpochJoin
	m.target = tpSet{}
	m.nextHbMs = nowMs
	m.reconcile(true)
}

// fail ends the member with err: everything held is lost.
func (m *memberCore) fail(err error) {
	m.state = stateFailed
	m.err = err
	m.target = tpSet{}
	m.reconcile(true)
	m.emit(memberAction{kind: actFail, err: err})
}

func (m *memberCore) finish(err error) {
	m.state = stateLeft
	m.emit(memberAction{kind: actLeft, err: err})
}

// groupError is a coordinator's refusal that ends the member
// (GROUP_MAX_SIZE_REACHED, UNRELEASED_INSTANCE_ID, INVALID_REQUEST, ...).
type groupError struct {
	group string
	code  ErrorCodeName
	cause error
}

func (e *groupError) Error() string {
	if e.cause != nil {
		return "group " + strconv.Quote(e.group) + ": heartbeat refused: " + e.cause.Error()
	}
	return "group " + strconv.Quote(e.group) + ": heartbeat refused: " + e.code
}

func (e *groupError) Unwrap() error { return e.cause }

// tpSet is a set of partitions.
type tpSet map[TopicPartition]struct{}

func setOfTP(parts []TopicPartition) tpSet {
	s := make(tpSet, len(parts))
	for _, tp := range parts {
		s[tp] = struct{}{}
	}
	return s
}

func (s tpSet) has(tp TopicPartition) bool { _, ok := s[tp]; return ok }

func (s tpSet) sorted() []TopicPartition {
	out := make([]TopicPartition, 0, len(s))
	for tp := range s {
		out = append(out, tp)
	}
	slices.SortFunc(out, compareTP)
	return out
}

func union(sets ...tpSet) tpSet {
	out := tpSet{}
	for _, s := range sets {
		for tp := range s {
			out[tp] = struct{}{}
		}
	}
	return out
}

func compareTP(a, b TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Partition) - int(b.Partition)
}
