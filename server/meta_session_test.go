package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/strata-db/strata/server/metadata"
)

// TestSessionReconnectWithinGraceNotFenced: on a 3-voter quorum in this
// process (a session timeout of minutes, so that only connection loss can
// fence), broker lead's session connection to the controller leader is
// closed from its side and it heartbeats again on a new one within the
// grace: it stays unfenced. Broker other's is closed later and it stays
// silent: the leader fences it, naming connection loss, and by then lead's
// grace has long passed, so lead would have been fenced too had the new
// connection not vouched for it.
func TestSessionReconnectWithinGraceNotFenced(t *testing.T) {
	log := &capturedLog{}
	members, ctl, lead, other := startReplicationQuorumWith(t, log, metadata.Config{
		SessionTimeoutMs: alterTestSessionTimeout.Milliseconds(), ConnectionLossGraceMs: 3000})
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	heartbeat := func(id int32) {
		t.Helper()
		if _, err := members[id].heartbeat(ctx, &rpcRequest{Kind: rpcBrokerHeartbeat, BrokerID: id, Epoch: 1,
			AppliedOffset: members[id].node.Image().Offset()}); err != nil {
			t.Fatalf("heartbeat %d: %v", id, err)
		}
	}
	closed := func(id int32) bool {
		// Logged only where the loss was proposed: on the leader.
		return log.has("broker's controller session connection closed; fencing it unless", fmt.Sprintf("broker=%d", id))
	}
	fenced := func(id int32) bool {
		b, ok := members[ctl].node.Image().Broker(id)
		return ok && b.Fenced
	}

	members[lead].session.close()
	waitUntil(t, fmt.Sprintf("the leader seeing broker %d's connection close", lead), func() bool { return closed(lead) })
	heartbeat(lead) // on a new connection, within the grace

	members[other].session.close()
	waitUntil(t, fmt.Sprintf("the leader seeing broker %d's connection close", other), func() bool { return closed(other) })
	waitUntil(t, fmt.Sprintf("broker %d fenced", other), func() bool { return fenced(other) })
	if !log.has("controller fences a broker", fmt.Sprintf("broker=%d", other), "cause=connection_lost") {
		t.Fatalf("broker %d fenced without naming connection loss", other)
	}
	if fenced(lead) || log.has("controller fences a broker", fmt.Sprintf("broker=%d", lead)) {
		t.Fatalf("broker %d fenced though it reconnected within the grace", lead)
	}
	// The fenced broker's next caught-up heartbeat unfences it.
	heartbeat(other)
	waitUntil(t, fmt.Sprintf("broker %d unfenced", other), func() bool { return !fenced(other) })
}
