package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/controller/transport"
)

// TestSingleNodeDescribeQuorum: a broker with no quorum configured runs a
// lone voter, which it reports as itself, leading and with no lag.
func TestSingleNodeDescribeQuorum(t *testing.T) {
	b := startBroker(t, t.TempDir(), 1)
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	env, _ := c.call(&fb.MessageT{Type: fb.MessageDescribeQuorumRequest, Value: &fb.DescribeQuorumRequestT{}})
	q := env.Message.Value.(*fb.DescribeQuorumResponseT)
	if q.ErrorCode != fb.ErrorCodeNone || q.LeaderId != 1 || q.Term == 0 || q.LogEnd == 0 || q.CommitIndex != q.LogEnd ||
		q.MetadataOffset == 0 || len(q.Voters) != 1 {
		t.Fatalf("describe quorum: %+v", q)
	}
	if v := q.Voters[0]; v.VoterId != 1 || v.LogEnd != q.LogEnd || v.Lag != 0 || !v.Active {
		t.Fatalf("voter: %+v", v)
	}
	env, _ = c.call(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{}})
	if md := env.Message.Value.(*fb.MetadataResponseT); md.ControllerId != 1 || len(md.Brokers) != 1 {
		t.Fatalf("metadata: controller %d brokers %d", md.ControllerId, len(md.Brokers))
	}
}

// TestSingleNodeCrashRestart: a single `strata serve` killed with SIGKILL
// (no controlled shutdown, its registration left unfenced) comes back at
// once on restart with every topic and record.
func TestSingleNodeCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker process")
	}
	dir := filepath.Join(t.TempDir(), "data")
	run := func() (*exec.Cmd, string) { return startBrokerProcessIn(t, dir, 2) }
	cmd, addr := run()
	c := newTestClient(t, addr)
	if code := c.createTopic("crash", 3); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	for p := int32(0); p < 3; p++ {
		env, _ := c.call(produceMsg(fb.AcksAll, "crash", p, batch(t, int(p)*10, 10, 1)))
		if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("produce p%d: %v", p, r.ErrorCode)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	// The previous registration still looks live to the new controller;
	// waiting out its session would take DefaultSessionTimeout. The lone
	// voter fences it instead, so the restart is ready well before that.
	start := time.Now()
	_, addr = run()
	if waited := time.Since(start); waited >= DefaultSessionTimeout {
		t.Fatalf("restart took %v: the old session was waited out", waited)
	}
	c = newTestClient(t, addr)
	for p := int32(0); p < 3; p++ {
		env, trailing := c.call(fetchMsg("crash", p, 0, 0, 0))
		fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
		recs := records(t, trailing)
		if fr.ErrorCode != fb.ErrorCodeNone || len(recs) != 10 || !strings.HasPrefix(string(recs[0].Value), "value-") {
			t.Fatalf("fetch p%d after crash: %v, %d records", p, fr.ErrorCode, len(recs))
		}
	}
}

// TestControllerRPCLengthBound: a forwarded message longer than the bound
// is refused before its body is read, and a well-formed one round-trips.
func TestControllerRPCLengthBound(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	req := &rpcRequest{Kind: rpcCreateTopic, Topic: "t", Configs: map[string]string{"partitions": "3"}, StartIndex: 9}
	req.TopicID[0] = 7
	if err := writeRPC(w, req); err != nil {
		t.Fatal(err)
	}
	var got rpcRequest
	if err := readRPC(bufio.NewReader(&buf), &got); err != nil || got.Topic != "t" || got.TopicID != req.TopicID ||
		got.StartIndex != 9 || got.Configs["partitions"] != "3" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	huge := binary.LittleEndian.AppendUint32(nil, rpcMaxBytes+1)
	if err := readRPC(bufio.NewReader(bytes.NewReader(huge)), &got); err == nil {
		t.Fatal("accepted a message over the bound")
	}
	// The listener tells the services apart by their first word.
	if rpcMagic == transport.ServiceRaft {
		t.Fatal("rpcMagic is the Raft service word")
	}
}
