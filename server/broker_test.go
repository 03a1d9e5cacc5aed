package server

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/strata-db/strata/schema/fb"
)

func startBroker(t *testing.T, dir string, cores int) *Broker {
	t.Helper()
	b, err := StartBroker(BrokerConfig{DataDir: dir, Listen: "127.0.0.1:0", Cores: cores, NodeID: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBrokerProduceFetchRestart creates a topic, produces to every
// partition across shards, reads everything back byte for byte, restarts
// the broker on the same folder and reads it all again.
func TestBrokerProduceFetchRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, 2)
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("orders", 4); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	if code := c.createTopic("orders", 4); code != fb.ErrorCodeTopicAlreadyExists {
		t.Fatalf("create twice: %v", code)
	}
	const perPartition = 50
	for p := int32(0); p < 4; p++ {
		for i := 0; i < perPartition; i += 10 {
			env, _ := c.call(produceMsg(fb.AcksAll, "orders", p, batch(t, int(p)*1000+i, 10, 1000+int64(i))))
			r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
			if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != int64(i) {
				t.Fatalf("produce p%d i%d: %v base %d", p, i, r.ErrorCode, r.BaseOffset)
			}
		}
	}
	check := func(c *testClient) {
		t.Helper()
		for p := int32(0); p < 4; p++ {
			env, trailing := c.call(fetchMsg("orders", p, 0, 0, 0))
			fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
			if fr.ErrorCode != fb.ErrorCodeNone || fr.HighWatermark != perPartition {
				t.Fatalf("fetch p%d: %v hw %d", p, fr.ErrorCode, fr.HighWatermark)
			}
			recs := records(t, trailing)
			if len(recs) != perPartition {
				t.Fatalf("fetch p%d: %d records, want %d", p, len(recs), perPartition)
			}
			for i, r := range recs {
				if r.Offset != int64(i) || string(r.Value) != fmt.Sprintf("value-%d", int(p)*1000+i) {
					t.Fatalf("p%d record %d: offset %d value %q", p, i, r.Offset, r.Value)
				}
			}
		}
	}
	check(c)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir, 2)
	defer b.Stop()
	c = newTestClient(t, b.Addr().String())
	check(c)
	env, _ := c.call(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{}})
	md := env.Message.Value.(*fb.MetadataResponseT)
	if len(md.Topics) != 1 || md.Topics[0].Name != "orders" || len(md.Topics[0].Partitions) != 4 || md.Topics[0].Partitions[0].LeaderId != 1 {
		t.Fatalf("metadata after restart: %+v", md.Topics)
	}
}

// A second broker on a data folder in use, or on a port in use, fails to
// start with an error that says so, and leaves the first serving.
func TestSecondBrokerRefused(t *testing.T) {
	dir := t.TempDir()
	first := startBroker(t, dir, 1)
	stopped := false
	defer func() {
		if !stopped {
			first.Stop()
		}
	}()
	_, err := StartBroker(BrokerConfig{DataDir: dir, Listen: "127.0.0.1:0", Cores: 1, NodeID: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "in use by another broker") {
		t.Fatalf("second broker on the same data folder: %v", err)
	}
	_, err = StartBroker(BrokerConfig{DataDir: t.TempDir(), Listen: first.Addr().String(), Cores: 1, NodeID: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second broker on the same port: %v", err)
	}
	c := newTestClient(t, first.Addr().String())
	if code := c.createTopic("still-serving", 1); code != fb.ErrorCodeNone {
		t.Fatalf("first broker after the refusals: %v", code)
	}
	// Once stopped, the folder can be opened again.
	stopped = true
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	again := startBroker(t, dir, 1)
	again.Stop()
}
