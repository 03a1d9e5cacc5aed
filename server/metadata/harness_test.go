package metadata

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScripts runs the scripts in testdata/*.txt. Each script drives one
// controller; after every command the harness replays the records through
// the codec onto a follower state and checks that it matches the
// controller's, so every script also tests encoding and determinism.
//
// Commands (ids are broker ids; topics are named; defaults in brackets):
//
//	init session-timeout=<ms> [imbalance-check=<ms>]
//	add-brokers count=<n> [racks=(a, b, ...)] [now=0]   (registers 1..n and unfences them)
//	register-broker id=<n> [rack=] [inc=1] [host=b<id>] [port=9092] [now=0] [clean=true]
//	    (clean=false: the previous incarnation's shutdown is not proven clean)
//	heartbeat id=<n> now=<ms> [epoch=current] [offset=caught up]
//	fence id=<n> | unfence id=<n>
//	controlled-shutdown id=<n> [epoch=current]
//	create-topic name=<t> [partitions=] [rf=] [start=0] [id=next]   (input: key=value configs)
//	delete-topic name=<t>
//	alter-configs topic=<t> [delete=(k, ...)]   (input: key=value configs to set)
//	create-partitions topic=<t> count=<n> [start=0]
//	alter-partition topic=<t> partition=<p> broker=<n> isr=(...) [broker-epoch=] [leader-epoch=] [partition-epoch=]
//	report-offline topic=<t> partition=<p> broker=<n> [broker-epoch=]
//	elect-leader topic=<t> partition=<p>
//	tick now=<ms>
//	failover now=<ms>   (a new leader: restore the state from a snapshot, fresh sessions)
//	describe | hash | snapshot
func TestScripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			h := &harness{ctrl: NewController(nil, Config{}, 0), follower: NewState()}
			datadriven.RunTest(t, path, h.run)
		})
	}
}

type harness struct {
	ctrl        *Controller
	follower    *State
	nextTopicID byte
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	var recs []Record
	var err error
	c := h.ctrl
	switch d.Cmd {
	case "init":
		var timeout int64
		d.ScanArgs(t, "session-timeout", &timeout)
		h.ctrl = NewController(nil, Config{SessionTimeoutMs: timeout,
			LeaderImbalanceCheckIntervalMs: int64Arg(t, d, "imbalance-check", 0)}, 0)
		h.follower = NewState()
		return "ok"
	case "register-broker":
		id := intArg(t, d, "id", -1)
		host := "b" + strconv.Itoa(int(id))
		d.MaybeScanArgs(t, "host", &host)
		req := RegisterBrokerRequest{
			ID:          id,
			Incarnation: incarnation(intArg(t, d, "inc", 1)),
			Rack:        strArg(t, d, "rack", ""),
			Listeners:   []Listener{{Name: "PLAINTEXT", Host: host, Port: uint16(intArg(t, d, "port", 9092))}},
		}
		// A restart is clean (its previous epoch proven) unless the
		// script says clean=false.
		clean := true
		d.MaybeScanArgs(t, "clean", &clean)
		if clean {
			req.PreviousBrokerEpoch = h.brokerEpoch(id)
		}
		recs, err = c.RegisterBroker(req, int64Arg(t, d, "now", 0))
	case "failover":
		return h.failover(t, d)
	case "add-brokers":
		return h.addBrokers(t, d)
	case "heartbeat":
		id := intArg(t, d, "id", -1)
		req := HeartbeatRequest{ID: id, Epoch: h.brokerEpoch(id), AppliedOffset: c.State().Offset()}
		d.MaybeScanArgs(t, "epoch", &req.Epoch)
		d.MaybeScanArgs(t, "offset", &req.AppliedOffset)
		recs, err = c.BrokerHeartbeat(req, int64Arg(t, d, "now", 0))
	case "fence":
		recs, err = c.FenceBroker(intArg(t, d, "id", -1))
	case "unfence":
		recs, err = c.UnfenceBroker(intArg(t, d, "id", -1))
	case "controlled-shutdown":
		id := intArg(t, d, "id", -1)
		epoch := h.brokerEpoch(id)
		d.MaybeScanArgs(t, "epoch", &epoch)
		recs, err = c.ControlledShutdown(id, epoch)
	case "create-topic":
		recs, err = h.createTopic(t, d)
	case "delete-topic":
		recs, err = c.DeleteTopic(strArg(t, d, "name", ""))
	case "alter-configs":
		req := AlterTopicConfigsRequest{Topic: strArg(t, d, "topic", ""), Set: inputConfigs(t, d)}
		if arg, ok := d.Arg("delete"); ok {
			for _, k := range arg.Vals {
				req.Delete = append(req.Delete, strings.TrimSpace(k))
			}
		}
		recs, err = c.AlterTopicConfigs(req)
	case "create-partitions":
		recs, err = c.CreatePartitions(CreatePartitionsRequest{Topic: strArg(t, d, "topic", ""),
			Count: int(intArg(t, d, "count", 0)), StartIndex: uint32(intArg(t, d, "start", 0))})
	case "alter-partition":
		recs, err = h.alterPartition(t, d)
	case "report-offline":
		im := c.State().Image()
		name := strArg(t, d, "topic", "")
		ti, _ := im.TopicByName(name)
		req := OfflineReplicaRequest{BrokerID: intArg(t, d, "broker", -1), TopicID: ti.ID, Partition: intArg(t, d, "partition", 0)}
		req.BrokerEpoch = h.brokerEpoch(req.BrokerID)
		d.MaybeScanArgs(t, "broker-epoch", &req.BrokerEpoch)
		recs, err = c.ReportOfflineReplica(req)
	case "elect-leader":
		recs, err = c.ElectLeader(strArg(t, d, "topic", ""), intArg(t, d, "partition", 0))
	case "tick":
		recs, err = c.Tick(int64Arg(t, d, "now", 0))
	case "describe":
		return describe(c.State().Image())
	case "hash":
		sum := c.State().Hash()
		return hex.EncodeToString(sum[:])
	case "snapshot":
		return h.snapshot(t)
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	if err != nil {
		if _, ok := err.(*Rejection); !ok {
			t.Fatalf("%s: not a rejection: %v", d.Pos, err)
		}
		return "rejected: " + err.Error()
	}
	h.replay(t, d, recs)
	var b strings.Builder
	if len(recs) == 0 {
		b.WriteString("no records\n")
	}
	for _, r := range recs {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	b.WriteString("state:\n")
	b.WriteString(describe(c.State().Image()))
	return b.String()
}

// replay sends recs through the batch codec to the follower state and
// checks that the follower now equals the controller.
func (h *harness) replay(t *testing.T, d *datadriven.TestData, recs []Record) {
	decoded, err := DecodeBatch(AppendBatch(nil, recs))
	if err != nil {
		t.Fatalf("%s: decoding the batch: %v", d.Pos, err)
	}
	if err := h.follower.ApplyAll(decoded); err != nil {
		t.Fatalf("%s: follower refused: %v", d.Pos, err)
	}
	if h.follower.Hash() != h.ctrl.State().Hash() {
		t.Fatalf("%s: follower state differs from controller state", d.Pos)
	}
}

// addBrokers registers brokers 1..count, rack i%len(racks), and unfences
// each with a caught-up heartbeat: the set-up most scripts start from.
func (h *harness) addBrokers(t *testing.T, d *datadriven.TestData) string {
	count := intArg(t, d, "count", 0)
	now := int64Arg(t, d, "now", 0)
	var racks []string
	if arg, ok := d.Arg("racks"); ok {
		racks = arg.Vals
	}
	for id := int32(1); id <= count; id++ {
		req := RegisterBrokerRequest{
			ID: id, Incarnation: incarnation(1),
			Listeners: []Listener{{Name: "PLAINTEXT", Host: "b" + strconv.Itoa(int(id)), Port: 9092}},
		}
		if len(racks) > 0 {
			req.Rack = strings.TrimSpace(racks[int(id-1)%len(racks)])
		}
		recs, err := h.ctrl.RegisterBroker(req, now)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		h.replay(t, d, recs)
		recs, err = h.ctrl.BrokerHeartbeat(HeartbeatRequest{ID: id, Epoch: h.brokerEpoch(id), AppliedOffset: h.ctrl.State().Offset()}, now)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		h.replay(t, d, recs)
	}
	return describe(h.ctrl.State().Image())
}

// failover models a new Raft leader: it restores the committed state from
// a snapshot and starts a controller whose sessions all begin at now.
func (h *harness) failover(t *testing.T, d *datadriven.TestData) string {
	restored, err := Restore(h.ctrl.State().AppendSnapshot(nil))
	if err != nil {
		t.Fatalf("%s: restore: %v", d.Pos, err)
	}
	h.ctrl = NewController(restored, Config{SessionTimeoutMs: h.ctrl.SessionTimeoutMs(),
		LeaderImbalanceCheckIntervalMs: h.ctrl.LeaderImbalanceCheckIntervalMs()}, int64Arg(t, d, "now", 0))
	return describe(restored.Image())
}

func (h *harness) snapshot(t *testing.T) string {
	s := h.ctrl.State()
	snap := s.AppendSnapshot(nil)
	restored, err := Restore(snap)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if restored.Hash() != s.Hash() {
		return "restored state differs"
	}
	return fmt.Sprintf("%d bytes; restored state has the same hash", len(snap))
}

// inputConfigs reads a command's input lines as key=value configs.
func inputConfigs(t *testing.T, d *datadriven.TestData) map[string]string {
	configs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			d.Fatalf(t, "config line %q is not key=value", line)
		}
		configs[k] = v
	}
	return configs
}

func (h *harness) createTopic(t *testing.T, d *datadriven.TestData) ([]Record, error) {
	configs := inputConfigs(t, d)
	if d.HasArg("partitions") {
		configs[ConfigPartitions] = strArg(t, d, "partitions", "")
	}
	if d.HasArg("rf") {
		configs[ConfigReplicationFactor] = strArg(t, d, "rf", "")
	}
	// Topic ids count up from 1 over the topics created, unless given.
	var id TopicID
	id[topicIDLen-1] = h.nextTopicID + 1
	if d.HasArg("id") {
		id[topicIDLen-1] = byte(intArg(t, d, "id", 0))
	}
	req := CreateTopicRequest{
		Name: strArg(t, d, "name", ""), ID: id, Configs: configs,
		StartIndex: uint32(intArg(t, d, "start", 0)),
	}
	recs, err := h.ctrl.CreateTopic(req)
	if err == nil && !d.HasArg("id") {
		h.nextTopicID++
	}
	return recs, err
}

func (h *harness) alterPartition(t *testing.T, d *datadriven.TestData) ([]Record, error) {
	im := h.ctrl.State().Image()
	name := strArg(t, d, "topic", "")
	ti, _ := im.TopicByName(name)
	part := intArg(t, d, "partition", 0)
	pi, _ := im.Partition(name, part)
	req := AlterPartitionRequest{
		BrokerID: intArg(t, d, "broker", -1), TopicID: ti.ID, Partition: part,
		LeaderEpoch: pi.LeaderEpoch, PartitionEpoch: pi.PartitionEpoch,
	}
	req.BrokerEpoch = h.brokerEpoch(req.BrokerID)
	d.MaybeScanArgs(t, "broker-epoch", &req.BrokerEpoch)
	d.MaybeScanArgs(t, "leader-epoch", &req.LeaderEpoch)
	d.MaybeScanArgs(t, "partition-epoch", &req.PartitionEpoch)
	if arg, ok := d.Arg("isr"); ok {
		for _, v := range arg.Vals {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				d.Fatalf(t, "isr member %q: %v", v, err)
			}
			req.ISR = append(req.ISR, int32(n))
		}
	}
	return h.ctrl.AlterPartition(req)
}

func (h *harness) brokerEpoch(id int32) int64 {
	b, _ := h.ctrl.State().Image().Broker(id)
	return b.Epoch
}

func incarnation(n int32) IncarnationID {
	var id IncarnationID
	id[incarnationIDLen-1] = byte(n)
	return id
}

func intArg(t *testing.T, d *datadriven.TestData, key string, def int32) int32 {
	v := int(def)
	d.MaybeScanArgs(t, key, &v)
	return int32(v)
}

func int64Arg(t *testing.T, d *datadriven.TestData, key string, def int64) int64 {
	v := def
	d.MaybeScanArgs(t, key, &v)
	return v
}

func strArg(t *testing.T, d *datadriven.TestData, key, def string) string {
	v := def
	d.MaybeScanArgs(t, key, &v)
	return v
}

// describe prints an image: brokers, then topics with their partitions.
func describe(im *Image) string {
	var b strings.Builder
	fmt.Fprintf(&b, "offset %d\n", im.Offset())
	for _, br := range im.Brokers() {
		status := "live"
		switch {
		case br.Fenced && br.ShuttingDown:
			status = "fenced shutting-down"
		case br.Fenced:
			status = "fenced"
		case br.ShuttingDown:
			status = "shutting-down"
		}
		fmt.Fprintf(&b, "broker %d epoch=%d rack=%q %s\n", br.ID, br.Epoch, br.Rack, status)
	}
	for _, t := range im.Topics() {
		fmt.Fprintf(&b, "topic %s id=%s {%s}\n", t.Name, t.ID, formatConfigs(t.Configs))
		for _, p := range t.Partitions {
			fmt.Fprintf(&b, "  %s-%d replicas=%v leader=%d isr=%v%s leader-epoch=%d partition-epoch=%d\n",
				t.Name, p.Partition, p.Replicas, p.Leader, p.ISR, formatELR(p.ELR, p.LastKnownELR), p.LeaderEpoch, p.PartitionEpoch)
		}
	}
	return b.String()
}
