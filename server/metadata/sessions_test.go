package metadata

import (
	"slices"
	"testing"
)

// sessionsCluster is a controller with three unfenced brokers at epoch 1
// and a topic of one partition on all three, led by broker 1, all of it at
// time 0.
func sessionsCluster(t *testing.T, cfg Config) (*Controller, TopicID) {
	t.Helper()
	c := NewController(nil, cfg, 0)
	for id := int32(1); id <= 3; id++ {
		if _, err := c.RegisterBroker(RegisterBrokerRequest{ID: id, Incarnation: incarnation(id),
			Listeners: []Listener{{Name: "P", Host: "h", Port: 1}}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	for id := int32(1); id <= 3; id++ {
		if _, err := c.BrokerHeartbeat(HeartbeatRequest{ID: id, Epoch: 1, AppliedOffset: c.State().Offset()}, 0); err != nil {
			t.Fatal(err)
		}
	}
	id := sampleTopicID(1)
	if _, err := c.CreateTopic(CreateTopicRequest{Name: "t", ID: id, Configs: map[string]string{
		ConfigReplicationFactor: "3"}}); err != nil {
		t.Fatal(err)
	}
	if p, _ := c.State().PartitionByID(id, 0); p.Leader != 1 {
		t.Fatalf("leader %d, want 1", p.Leader)
	}
	return c, id
}

func heartbeat(t *testing.T, c *Controller, id int32, conn uint64, nowMs int64) {
	t.Helper()
	if _, err := c.BrokerHeartbeat(HeartbeatRequest{ID: id, Epoch: c.State().brokers[id].epoch,
		AppliedOffset: c.State().Offset(), Conn: conn}, nowMs); err != nil {
		t.Fatal(err)
	}
}

func lost(t *testing.T, c *Controller, id int32, epoch int64, conn uint64, nowMs int64) {
	t.Helper()
	recs, err := c.BrokerConnectionLost(ConnectionLostRequest{ID: id, Epoch: epoch, Conn: conn}, nowMs)
	if err != nil || len(recs) != 0 {
		t.Fatalf("connection lost: %v records, %v", recs, err)
	}
}

// tickFences ticks at nowMs and returns whom it fenced.
func tickFences(t *testing.T, c *Controller, nowMs int64) []Fence {
	t.Helper()
	if _, err := c.Tick(nowMs); err != nil {
		t.Fatal(err)
	}
	return c.LastFences()
}

// TestConnectionLossFencesAfterGrace: a broker whose session connection
// ends is fenced by the first Tick at or past the grace, long before its
// session lapses, with the cause named, and its leadership moves to an
// ISR member; the other brokers are untouched.
func TestConnectionLossFencesAfterGrace(t *testing.T) {
	c, topic := sessionsCluster(t, Config{SessionTimeoutMs: 9000, ConnectionLossGraceMs: 1000})
	for id := int32(1); id <= 3; id++ {
		heartbeat(t, c, id, uint64(10+id), 500)
	}
	lost(t, c, 1, 1, 11, 2000)
	for _, now := range []int64{2000, 2500, 2999} {
		if f := tickFences(t, c, now); len(f) != 0 {
			t.Fatalf("tick at %d fenced %v within the grace", now, f)
		}
	}
	f := tickFences(t, c, 3000)
	if want := []Fence{{ID: 1, Epoch: 1, Cause: FenceConnectionLost}}; !slices.Equal(f, want) {
		t.Fatalf("tick at 3000 fenced %v, want %v", f, want)
	}
	if !c.State().brokers[1].fenced || c.State().brokers[2].fenced || c.State().brokers[3].fenced {
		t.Fatal("wrong brokers fenced")
	}
	p, _ := c.State().PartitionByID(topic, 0)
	if p.Leader == 1 || !slices.Contains([]int32{2, 3}, p.Leader) || slices.Contains(p.ISR, 1) || p.LeaderEpoch != 1 {
		t.Fatalf("partition after the fence: %+v", p)
	}
	// Nothing more to fence, and the session check names its own cause.
	if f := tickFences(t, c, 4000); len(f) != 0 {
		t.Fatalf("fenced again: %v", f)
	}
	f = tickFences(t, c, 9501)
	if want := []Fence{{ID: 2, Epoch: 1, Cause: FenceSessionLapsed}, {ID: 3, Epoch: 1, Cause: FenceSessionLapsed}}; !slices.Equal(f, want) {
		t.Fatalf("session lapse fenced %v, want %v", f, want)
	}
}

// TestConnectionLossReconnectWithinGrace: a heartbeat on a newer
// connection within the grace keeps the broker in service, whichever of
// the loss and the new connection's heartbeat the controller hears first.
func TestConnectionLossReconnectWithinGrace(t *testing.T) {
	c, _ := sessionsCluster(t, Config{SessionTimeoutMs: 9000, ConnectionLossGraceMs: 1000})
	heartbeat(t, c, 2, 20, 100)
	// Loss first, then the heartbeat on the new connection.
	lost(t, c, 2, 1, 20, 1000)
	heartbeat(t, c, 2, 21, 1900)
	// The new connection's heartbeat first, then the old one's loss.
	heartbeat(t, c, 2, 22, 2000)
	lost(t, c, 2, 1, 21, 2100)
	for _, now := range []int64{2000, 3000, 5000, 9000} {
		if f := tickFences(t, c, now); slices.ContainsFunc(f, func(f Fence) bool { return f.ID == 2 }) {
			t.Fatalf("tick at %d fenced broker 2: %v", now, f)
		}
	}
	// A heartbeat on the connection that was reported lost cannot vouch
	// for a newer one; a loss of the newest connection still fences.
	lost(t, c, 2, 1, 22, 9000)
	heartbeat(t, c, 2, 22, 9100)
	if f := tickFences(t, c, 10000); !slices.Equal(f, []Fence{{ID: 1, Epoch: 1, Cause: FenceSessionLapsed},
		{ID: 2, Epoch: 1, Cause: FenceConnectionLost}, {ID: 3, Epoch: 1, Cause: FenceSessionLapsed}}) {
		t.Fatalf("tick at 10000 fenced %v", f)
	}
}

// TestConnectionLossIgnored: reports that must not fence: another
// epoch's connection (a restarted broker), a fenced broker, the loss of a
// connection that carried no heartbeat (id 0), fencing turned off, and a
// new controller (fresh soft state, as after a leader change).
func TestConnectionLossIgnored(t *testing.T) {
	c, _ := sessionsCluster(t, Config{SessionTimeoutMs: 9000, ConnectionLossGraceMs: 1000})
	heartbeat(t, c, 3, 30, 100)
	if _, err := c.BrokerConnectionLost(ConnectionLostRequest{ID: 3, Epoch: 7, Conn: 30}, 200); CodeOf(err) != ErrStaleBrokerEpoch {
		t.Fatalf("another epoch: %v", err)
	}
	if _, err := c.BrokerConnectionLost(ConnectionLostRequest{ID: 9, Epoch: 1, Conn: 30}, 200); CodeOf(err) != ErrBrokerNotRegistered {
		t.Fatalf("unknown broker: %v", err)
	}
	lost(t, c, 3, 1, 0, 200)
	if f := tickFences(t, c, 5000); len(f) != 0 {
		t.Fatalf("fenced %v", f)
	}

	// A restart: the old incarnation's loss, then the new incarnation
	// registers (fencing the old one) and is not fenced for the old loss.
	lost(t, c, 3, 1, 30, 5000)
	if _, err := c.RegisterBroker(RegisterBrokerRequest{ID: 3, Incarnation: incarnation(33),
		Listeners: []Listener{{Name: "P", Host: "h", Port: 1}}}, 5100); CodeOf(err) != ErrDuplicateBrokerRegistration {
		t.Fatalf("register within the grace: %v", err)
	}
	if f := tickFences(t, c, 6000); !slices.Equal(f, []Fence{{ID: 3, Epoch: 1, Cause: FenceConnectionLost}}) {
		t.Fatalf("fenced %v", f)
	}
	lost(t, c, 3, 1, 31, 6000) // fenced: nothing
	if _, err := c.RegisterBroker(RegisterBrokerRequest{ID: 3, Incarnation: incarnation(33),
		Listeners: []Listener{{Name: "P", Host: "h", Port: 1}}}, 6100); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, c, 3, 40, 6200)
	if b := c.State().brokers[3]; b.fenced || b.epoch != 2 {
		t.Fatalf("broker 3 after its restart: fenced %v epoch %d", b.fenced, b.epoch)
	}
	heartbeat(t, c, 1, 0, 6200)
	heartbeat(t, c, 2, 0, 6200)
	if f := tickFences(t, c, 8000); len(f) != 0 {
		t.Fatalf("fenced %v", f)
	}

	// A new controller over the same state knows of no loss.
	lost(t, c, 2, 1, 50, 8000)
	c2 := NewController(c.State(), Config{SessionTimeoutMs: 9000, ConnectionLossGraceMs: 1000}, 8000)
	if f := tickFences(t, c2, 9500); len(f) != 0 {
		t.Fatalf("new controller fenced %v", f)
	}

	// Turned off, a loss is only a report.
	off, _ := sessionsCluster(t, Config{SessionTimeoutMs: 9000, ConnectionLossGraceMs: -1})
	heartbeat(t, off, 1, 11, 100)
	lost(t, off, 1, 1, 11, 200)
	if f := tickFences(t, off, 5000); len(f) != 0 {
		t.Fatalf("fenced with the grace off: %v", f)
	}
}

// newLeadership is the controller a newly elected leader builds over c's
// state at nowMs, with the reconnect wait started, as the controller node
// does on election.
func newLeadership(t *testing.T, c *Controller, cfg Config, nowMs int64) *Controller {
	t.Helper()
	st, err := Restore(c.State().AppendSnapshot(nil))
	if err != nil {
		t.Fatal(err)
	}
	n := NewController(st, cfg, nowMs)
	n.ExpectReconnects(nowMs)
	return n
}

// TestNewLeaderFencesBrokersThatDoNotReconnect: a broker that died with
// the old controller leader never heartbeats to the new one, which fences
// it at the reconnect grace after its election, not a whole session
// later; the brokers that heartbeat to it in time stay unfenced.
func TestNewLeaderFencesBrokersThatDoNotReconnect(t *testing.T) {
	cfg := Config{SessionTimeoutMs: 9000, ConnectionLossGraceMs: 1000, ReconnectGraceMs: 5000}
	old, topic := sessionsCluster(t, cfg)
	c := newLeadership(t, old, cfg, 10_000)
	heartbeat(t, c, 2, 21, 11_000)
	heartbeat(t, c, 3, 0, 12_500) // the new leader's own broker
	for _, now := range []int64{11_000, 14_999} {
		if f := tickFences(t, c, now); len(f) != 0 {
			t.Fatalf("tick at %d fenced %v within the reconnect grace", now, f)
		}
	}
	f := tickFences(t, c, 15_000)
	if want := []Fence{{ID: 1, Epoch: 1, Cause: FenceNotReconnected}}; !slices.Equal(f, want) {
		t.Fatalf("tick at 15000 fenced %v, want %v", f, want)
	}
	if p, _ := c.State().PartitionByID(topic, 0); p.Leader == 1 {
		t.Fatalf("the fenced broker still leads: %+v", p)
	}
	// The others heartbeat on; nothing else is fenced before their
	// sessions would lapse.
	heartbeat(t, c, 2, 21, 17_000)
	heartbeat(t, c, 3, 0, 17_000)
	if f := tickFences(t, c, 25_000); len(f) != 0 {
		t.Fatalf("tick at 25000 fenced %v", f)
	}
	if got := FenceNotReconnected.String(); got != "not_reconnected" {
		t.Fatalf("cause named %q", got)
	}
}

// TestNewLeaderReconnectWaitOffOrCapped: with no reconnect grace a new
// leader waits out the session, as before; a grace beyond the session is
// the session.
func TestNewLeaderReconnectWaitOffOrCapped(t *testing.T) {
	for _, tc := range []struct {
		name      string
		graceMs   int64
		firstMs   int64 // the first tick that fences
		wantCause FenceCause
	}{
		{"off", 0, 19_001, FenceSessionLapsed},
		{"capped", 60_000, 19_000, FenceNotReconnected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{SessionTimeoutMs: 9000, ReconnectGraceMs: tc.graceMs}
			old, _ := sessionsCluster(t, cfg)
			c := newLeadership(t, old, cfg, 10_000)
			heartbeat(t, c, 2, 21, 11_000)
			heartbeat(t, c, 3, 22, 11_000)
			heartbeat(t, c, 2, 21, 18_000)
			heartbeat(t, c, 3, 22, 18_000)
			if f := tickFences(t, c, tc.firstMs-1); len(f) != 0 {
				t.Fatalf("tick at %d fenced %v", tc.firstMs-1, f)
			}
			f := tickFences(t, c, tc.firstMs)
			if want := []Fence{{ID: 1, Epoch: 1, Cause: tc.wantCause}}; !slices.Equal(f, want) {
				t.Fatalf("tick at %d fenced %v, want %v", tc.firstMs, f, want)
			}
		})
	}
}

// TestReregistrationEndsReconnectWait: a broker that registers again (a
// new incarnation) after the election is not fenced for having missed
// the reconnect wait of its old one.
func TestReregistrationEndsReconnectWait(t *testing.T) {
	cfg := Config{SessionTimeoutMs: 9000, ReconnectGraceMs: 5000}
	old, _ := sessionsCluster(t, cfg)
	c := newLeadership(t, old, cfg, 10_000)
	heartbeat(t, c, 2, 21, 11_000)
	heartbeat(t, c, 3, 22, 11_000)
	if f := tickFences(t, c, 10_500); len(f) != 0 {
		t.Fatalf("fenced %v", f)
	}
	// Broker 1's session is still live at the new leader, so a new
	// incarnation is refused until Tick fences the old one; that is the
	// reconnect wait's fence, and the new incarnation then registers and
	// heartbeats without being fenced again.
	f := tickFences(t, c, 15_000)
	if want := []Fence{{ID: 1, Epoch: 1, Cause: FenceNotReconnected}}; !slices.Equal(f, want) {
		t.Fatalf("fenced %v, want %v", f, want)
	}
	if _, err := c.RegisterBroker(RegisterBrokerRequest{ID: 1, Incarnation: incarnation(9), PreviousBrokerEpoch: 1,
		Listeners: []Listener{{Name: "P", Host: "h", Port: 1}}}, 15_100); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, c, 1, 31, 15_200)
	heartbeat(t, c, 2, 21, 15_200)
	heartbeat(t, c, 3, 22, 15_200)
	if f := tickFences(t, c, 20_000); len(f) != 0 {
		t.Fatalf("the new incarnation was fenced: %v", f)
	}
}

// TestRebuildKeepsSessions: a Controller rebuilt within one leadership
// (CarrySessions) keeps the sessions' soft state: a broker whose loss was
// reported before the rebuild is still fenced at the grace, and one that
// has been silent is not given a fresh session.
func TestRebuildKeepsSessions(t *testing.T) {
	cfg := Config{SessionTimeoutMs: 9000, ConnectionLossGraceMs: 1000}
	c, _ := sessionsCluster(t, cfg)
	heartbeat(t, c, 1, 11, 500)
	heartbeat(t, c, 2, 12, 500)
	heartbeat(t, c, 3, 13, 8000)
	lost(t, c, 1, 1, 11, 2000)
	st, err := Restore(c.State().AppendSnapshot(nil))
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := NewController(st, cfg, 2500)
	rebuilt.CarrySessions(c)
	f := tickFences(t, rebuilt, 3000)
	if want := []Fence{{ID: 1, Epoch: 1, Cause: FenceConnectionLost}}; !slices.Equal(f, want) {
		t.Fatalf("tick at 3000 fenced %v, want %v", f, want)
	}
	f = tickFences(t, rebuilt, 9501)
	if want := []Fence{{ID: 2, Epoch: 1, Cause: FenceSessionLapsed}}; !slices.Equal(f, want) {
		t.Fatalf("tick at 9501 fenced %v, want broker 2's lapsed session %v", f, want)
	}
}
