package server

import (
	"testing"
	"time"

	"github.com/strata-db/strata/schema/fb"
)

// TestStopAnswersParkedFetches stops a broker while a fetch long-polls
// with a 30 s wait: the stop answers it at once, empty, instead of
// waiting out the wait (the client's read deadline is shorter). The
// controlled shutdown moves the partition's leadership away, so the answer
// says NOT_LEADER, as Kafka's does; a stop whose controlled shutdown
// failed answers with no error.
func TestStopAnswersParkedFetches(t *testing.T) {
	b := startBroker(t, t.TempDir(), 2)
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("quiet", 2); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	corr := c.send(fetchMsg("quiet", 1, 0, fetchWaitMaxMs, 1))
	stopped := make(chan error, 1)
	go func() { stopped <- b.Stop() }()
	c.conn.SetReadDeadline(time.Now().Add(fetchWaitMaxMs * time.Millisecond * 2 / 3))
	env, trailing := c.recv()
	if env.CorrelationId != corr {
		t.Fatalf("answer for correlation %d, want %d", env.CorrelationId, corr)
	}
	r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
	if r.ErrorCode != fb.ErrorCodeNone && r.ErrorCode != fb.ErrorCodeNotLeader || len(trailing) != 0 {
		t.Fatalf("fetch answered on stop: %v with %d bytes", r.ErrorCode, len(trailing))
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
