package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/client"
)

// restartWait bounds how long a test waits for a workload to get going
// before it restarts the broker under it; restartPoll is how often it
// looks.
const (
	restartWait = 30 * time.Second
	restartPoll = 20 * time.Millisecond
)

// TestConsumeRidesThroughBrokerRestart connects and positions the
// consumers of `loadgen consume` (the same job consumeTopic runs), kills
// the broker (SIGKILL) and starts it again on the same folder and port:
// the consumers meet lost and refused connections, then the restarted
// broker's LEADER_NOT_AVAILABLE while it rejoins, and still read every
// record once, up to the log end.
func TestConsumeRidesThroughBrokerRestart(t *testing.T) {
	b := startBroker(t)
	const records, size = 4000, 100
	mustRun(t, append([]string{"produce"}, clientArgs(b, "restarted",
		"--records", records, "--record-size", size, "--partitions", 2)...)...)

	start := time.Now()
	job := &consumeJob{
		cfg:        client.Config{Brokers: []string{b.Addr}, ClientID: "loadgen"},
		ccfg:       client.ConsumerConfig{Reset: client.ResetEarliest, ReuseFetchBuffers: true},
		topic:      "restarted",
		partitions: []int32{0, 1},
		consumers:  2,
		untilEnd:   true,
		clock:      monoClock{base: start},
		progress:   &progress{},
	}
	run, err := job.open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer run.close()
	b.Kill()
	type outcome struct {
		res consumeResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := run.run(start)
		done <- outcome{res, err}
	}()
	b.Restart(t)
	o := <-done
	if o.err != nil {
		t.Fatalf("consume across a broker restart: %v", o.err)
	}
	if o.res.records != records || o.res.bytes != records*size || o.res.stoppedBy != stopLogEnd {
		t.Fatalf("consume across a broker restart read %d records (%d bytes), stopped by %q; want %d records to the log end",
			o.res.records, o.res.bytes, o.res.stoppedBy, records)
	}
}

// TestProduceRidesThroughBrokerRestart runs `loadgen produce` at a fixed
// rate for a duration and kills and restarts the broker once records are
// landing: the run ends without error, every acknowledged record is in the
// log (which may hold more: batches sent again after the kill).
func TestProduceRidesThroughBrokerRestart(t *testing.T) {
	b := startBroker(t)
	const topic = "steady"
	type outcome struct {
		stdout, stderr string
		code           int
	}
	done := make(chan outcome, 1)
	go func() {
		stdout, stderr, code := loadgenRun(t, append([]string{"produce"}, clientArgs(b, topic,
			"--duration", "3s", "--rate", 1000, "--record-size", 16, "--partitions", 2)...)...)
		done <- outcome{stdout, stderr, code}
	}()
	waitLanding(t, b.Addr, topic)
	b.Kill()
	b.Restart(t)
	o := <-done
	if o.code != exitOK {
		t.Fatalf("loadgen produce across a broker restart: exit %d\nstderr:\n%s\nstdout:\n%s", o.code, o.stderr, o.stdout)
	}
	m := lastJSONLine(t, o.stdout)
	acked := jsonInt(t, m, "records")
	if got := jsonString(t, m, "stopped_by"); got != "duration" {
		t.Errorf("stopped_by = %q, want duration", got)
	}
	if held, _ := logEnds(t, b.Addr, topic); held < acked || acked < 1 {
		t.Errorf("broker holds %d records, the report acknowledged %d", held, acked)
	}
}

// waitLanding waits until topic exists and holds records.
func waitLanding(t *testing.T, addr, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), restartWait)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		parts, err := cl.Partitions(ctx, topic)
		if err == nil {
			ends, err := cl.ListOffsets(ctx, topic, parts, client.OffsetLatest)
			if err == nil && (ends[0] > 0 || ends[1] > 0) {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no records of %s landed within %v (last error: %v)", topic, restartWait, err)
		}
		if err != nil && !strings.Contains(err.Error(), "does not exist") {
			t.Logf("waiting for %s: %v", topic, err)
		}
		time.Sleep(restartPoll)
	}
}

// TestConsumeStartsWhileBrokerJoins starts `loadgen consume` as soon as a
// restarted broker accepts connections, before it has joined its cluster
// and logged that it is ready: the lookups it makes first meet
// LEADER_NOT_AVAILABLE and are retried, and the run reads the whole
// topic. (Whether the run lands in that moment depends on the machine's
// timing; outside it the run meets no refusal, and passes the same way.)
func TestConsumeStartsWhileBrokerJoins(t *testing.T) {
	b := startBroker(t)
	const records = 2000
	mustRun(t, append([]string{"produce"}, clientArgs(b, "joining", "--records", records, "--record-size", 64)...)...)
	b.Kill()
	ready := b.RestartInBackground()
	deadline := time.Now().Add(restartWait)
	for {
		nc, err := net.Dial("tcp", b.Addr)
		if err == nil {
			nc.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted broker not accepting within %v: %v", restartWait, err)
		}
		time.Sleep(time.Millisecond)
	}
	m := mustRun(t, append([]string{"consume"}, clientArgs(b, "joining")...)...)
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	if got := jsonInt(t, m, "records"); got != records {
		t.Errorf("consume read %d records, want %d", got, records)
	}
}
