package server

import (
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// alterConfigs sends one topic's IncrementalAlterConfigs: set holds
// key=value entries, del the keys to delete.
func (c *testClient) alterConfigs(topic string, validateOnly bool, set []string, del ...string) *fb.AlterConfigsTopicResultT {
	c.t.Helper()
	at := &fb.AlterConfigsTopicT{Name: topic}
	for _, kv := range set {
		k, v, _ := strings.Cut(kv, "=")
		at.Configs = append(at.Configs, &fb.AlterableConfigT{Name: k, Op: fb.AlterConfigOpSet, Value: v})
	}
	for _, k := range del {
		at.Configs = append(at.Configs, &fb.AlterableConfigT{Name: k, Op: fb.AlterConfigOpDelete})
	}
	env, _ := c.call(&fb.MessageT{Type: fb.MessageIncrementalAlterConfigsRequest, Value: &fb.IncrementalAlterConfigsRequestT{
		ValidateOnly: validateOnly, Topics: []*fb.AlterConfigsTopicT{at}}})
	return env.Message.Value.(*fb.IncrementalAlterConfigsResponseT).Topics[0]
}

// describeConfigs returns a topic's configs by key.
func (c *testClient) describeConfigs(topic string) map[string]*fb.DescribedConfigT {
	c.t.Helper()
	env, _ := c.call(&fb.MessageT{Type: fb.MessageDescribeConfigsRequest, Value: &fb.DescribeConfigsRequestT{Topics: []string{topic}}})
	r := env.Message.Value.(*fb.DescribeConfigsResponseT).Topics[0]
	if r.ErrorCode != fb.ErrorCodeNone {
		c.t.Fatalf("describe configs of %s: %v %s", topic, r.ErrorCode, r.ErrorMessage)
	}
	out := map[string]*fb.DescribedConfigT{}
	for _, cfg := range r.Configs {
		out[cfg.Name] = cfg
	}
	return out
}

func (c *testClient) createPartitions(topic string, count int32, validateOnly bool) *fb.CreatePartitionsTopicResultT {
	c.t.Helper()
	env, _ := c.call(&fb.MessageT{Type: fb.MessageCreatePartitionsRequest, Value: &fb.CreatePartitionsRequestT{
		ValidateOnly: validateOnly, Topics: []*fb.CreatePartitionsTopicT{{Name: topic, Count: count}}}})
	return env.Message.Value.(*fb.CreatePartitionsResponseT).Topics[0]
}

// startStoppableBroker is startRetentionBroker with a stop that the test
// may call itself (Stop runs once).
func startStoppableBroker(t *testing.T, dir string) (*Broker, func()) {
	t.Helper()
	b, err := StartBroker(BrokerConfig{DataDir: dir, Listen: "127.0.0.1:0", Cores: 2, NodeID: 1,
		Logger:                    slog.New(slog.NewTextHandler(io.Discard, nil)),
		LogRetentionCheckInterval: retentionCheckIntervalTest})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { b.Stop() }) }
	t.Cleanup(stop)
	return b, stop
}

// TestAlterConfigsOnBroker: a retention.bytes lowered at run time takes
// effect without a restart; a read-only key, an unknown key and a bad
// value are refused with the key named and change nothing; validate_only
// changes nothing; DescribeConfigs shows every key with its value and
// whether it is the default; and the change survives a restart.
func TestAlterConfigsOnBroker(t *testing.T) {
	dir := t.TempDir()
	b, stop := startStoppableBroker(t, dir)
	c := newTestClient(t, b.Addr().String())
	const topic = "altered"
	if code := c.createTopic(topic, 1, topicConfigs("segment.bytes="+strconv.Itoa(retentionSegmentBytes))...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	cfgs := c.describeConfigs(topic)
	if got := cfgs["retention.bytes"]; got == nil || got.Value != "-1" || !got.IsDefault {
		t.Fatalf("retention.bytes before: %+v", got)
	}
	if got := cfgs["segment.bytes"]; got == nil || got.Value != strconv.Itoa(retentionSegmentBytes) || got.IsDefault {
		t.Fatalf("segment.bytes: %+v", got)
	}
	if got := cfgs["partitions"]; got == nil || got.Value != "1" || !got.ReadOnly {
		t.Fatalf("partitions: %+v", got)
	}
	for _, k := range []string{"compression.type", "cleanup.policy", "flush.policy", "max.message.bytes", "min.insync.replicas"} {
		if got := cfgs[k]; got == nil || !got.IsDefault || got.Value == "" {
			t.Fatalf("%s: %+v", k, got)
		}
	}

	f := &feeder{t: t, c: c, topic: topic}
	f.feed(8<<20, nowMs())
	if start := logStart(t, c, topic); start != 0 {
		t.Fatalf("log start %d before any retention bound", start)
	}

	// Refusals name the key and change nothing.
	for _, tc := range []struct {
		set  []string
		del  []string
		code fb.ErrorCode
		key  string
	}{
		{set: []string{"partitions=4"}, code: fb.ErrorCodeInvalidConfig, key: "partitions"},
		{del: []string{"replication.factor"}, code: fb.ErrorCodeInvalidConfig, key: "replication.factor"},
		{set: []string{"retention.bytes=1048576", "no.such.key=1"}, code: fb.ErrorCodeInvalidConfig, key: "no.such.key"},
		{set: []string{"retention.bytes=lots"}, code: fb.ErrorCodeInvalidConfig, key: "retention.bytes"},
		{set: []string{"compression.type=zstd"}, code: fb.ErrorCodeInvalidConfig, key: "compression.type"},
	} {
		r := c.alterConfigs(topic, false, tc.set, tc.del...)
		if r.ErrorCode != tc.code || !strings.Contains(r.ErrorMessage, tc.key) {
			t.Fatalf("alter %v delete %v: %v %q, want %v naming %s", tc.set, tc.del, r.ErrorCode, r.ErrorMessage, tc.code, tc.key)
		}
	}
	// validate_only checks and changes nothing.
	if r := c.alterConfigs(topic, true, []string{"retention.bytes=1048576"}); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("validate only: %v %s", r.ErrorCode, r.ErrorMessage)
	}
	if r := c.alterConfigs(topic, true, []string{"retention.bytes=x"}); r.ErrorCode != fb.ErrorCodeInvalidConfig {
		t.Fatalf("validate only of a bad value: %v", r.ErrorCode)
	}
	if got := c.describeConfigs(topic)["retention.bytes"]; got.Value != "-1" || !got.IsDefault {
		t.Fatalf("retention.bytes after refusals and validate_only: %+v", got)
	}
	// Several retention checks pass with nothing deleted.
	time.Sleep(3 * retentionCheckIntervalTest) // not a synchronisation: a window in which nothing may happen
	if start := logStart(t, c, topic); start != 0 {
		t.Fatalf("log start %d after refused changes", start)
	}

	// Lowered at run time, retention.bytes applies without a restart.
	const limit = 2 << 20
	if r := c.alterConfigs(topic, false, []string{"retention.bytes=" + strconv.Itoa(limit)}); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("alter: %v %s", r.ErrorCode, r.ErrorMessage)
	}
	if got := c.describeConfigs(topic)["retention.bytes"]; got.Value != strconv.Itoa(limit) || got.IsDefault {
		t.Fatalf("retention.bytes after the change: %+v", got)
	}
	start := awaitRetention(t, c, dir, topic, limit+retentionSegmentBytes)
	if start == 0 {
		t.Fatal("retention.bytes lowered at run time deleted nothing")
	}
	checkServedFrom(t, c, topic, start)

	// The change survives a restart: the broker reads it back from the
	// metadata log.
	c.conn.Close()
	stop()
	b = startRetentionBroker(t, dir)
	c = newTestClient(t, b.Addr().String())
	if got := c.describeConfigs(topic)["retention.bytes"]; got.Value != strconv.Itoa(limit) || got.IsDefault {
		t.Fatalf("retention.bytes after a restart: %+v", got)
	}
	// Deleting the key returns it to its default.
	if r := c.alterConfigs(topic, false, nil, "retention.bytes"); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("delete: %v %s", r.ErrorCode, r.ErrorMessage)
	}
	if got := c.describeConfigs(topic)["retention.bytes"]; got.Value != "-1" || !got.IsDefault {
		t.Fatalf("retention.bytes after delete: %+v", got)
	}
}

// TestCreatePartitionsOnBroker: a topic grows from one partition to
// three; the new partitions take produce and serve it back; shrinking
// or keeping the count is INVALID_PARTITIONS; validate_only adds none.
func TestCreatePartitionsOnBroker(t *testing.T) {
	b := startRetentionBroker(t, t.TempDir())
	c := newTestClient(t, b.Addr().String())
	const topic = "grown"
	if code := c.createTopic(topic, 1); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	partitionCount := func() int {
		env, _ := c.call(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{Topics: []string{topic}}})
		return len(env.Message.Value.(*fb.MetadataResponseT).Topics[0].Partitions)
	}
	if r := c.createPartitions(topic, 5, true); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("validate only: %v %s", r.ErrorCode, r.ErrorMessage)
	}
	if n := partitionCount(); n != 1 {
		t.Fatalf("%d partitions after validate_only", n)
	}
	if r := c.createPartitions(topic, 3, false); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("create partitions: %v %s", r.ErrorCode, r.ErrorMessage)
	}
	if n := partitionCount(); n != 3 {
		t.Fatalf("%d partitions, want 3", n)
	}
	for _, count := range []int32{2, 3} {
		if r := c.createPartitions(topic, count, false); r.ErrorCode != fb.ErrorCodeInvalidPartitions {
			t.Fatalf("count %d: %v %s, want INVALID_PARTITIONS", count, r.ErrorCode, r.ErrorMessage)
		}
	}
	if r := c.createPartitions("no-such-topic", 3, false); r.ErrorCode != fb.ErrorCodeUnknownTopicOrPartition {
		t.Fatalf("unknown topic: %v", r.ErrorCode)
	}
	if got := c.describeConfigs(topic)["partitions"]; got.Value != "3" {
		t.Fatalf("partitions config: %+v", got)
	}
	// The new partitions are led and serve what they take; the answer
	// came once this broker serves the new image, so no wait is needed.
	for p := int32(1); p < 3; p++ {
		env, _ := c.call(produceMsg(fb.AcksAll, topic, p, batch(t, 0, 4, nowMs())))
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 0 {
			t.Fatalf("produce to new partition %d: %v base %d", p, r.ErrorCode, r.BaseOffset)
		}
		env, tr := c.call(fetchMsg(topic, p, 0, 0, 0))
		if fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; fr.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("fetch new partition %d: %v", p, fr.ErrorCode)
		}
		recs := records(t, tr)
		if len(recs) != 4 || string(recs[3].Value) != "value-3" {
			t.Fatalf("partition %d served %d records", p, len(recs))
		}
	}
}

// TestCompressionTypeOnProduce: compression.type=uncompressed refuses lz4
// batches; altered to lz4, it refuses uncompressed ones; producer takes
// both. The broker never recompresses.
func TestCompressionTypeOnProduce(t *testing.T) {
	b := startRetentionBroker(t, t.TempDir())
	c := newTestClient(t, b.Addr().String())
	const topic = "codecs"
	if code := c.createTopic(topic, 1, topicConfigs("compression.type=uncompressed")...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	lz4Frame := func() []byte {
		bb, err := schema.NewBatchBuilder(schema.BatchOptions{Compression: schema.CompressionLZ4})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			if err := bb.Append(&schema.Record{Value: []byte(strings.Repeat("compressible ", 20) + strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
		frame, err := bb.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		if h, err := schema.CheckFrame(frame); err != nil || h.Compression() != schema.CompressionLZ4 {
			t.Fatalf("test frame not lz4: %v", err)
		}
		return frame
	}
	produce := func(frame []byte) fb.ErrorCode {
		env, _ := c.call(produceMsg(fb.AcksAll, topic, 0, frame))
		return env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0].ErrorCode
	}
	if code := produce(lz4Frame()); code != fb.ErrorCodeUnsupportedCompressionType {
		t.Fatalf("lz4 batch on an uncompressed topic: %v", code)
	}
	if code := produce(batch(t, 0, 3, nowMs())); code != fb.ErrorCodeNone {
		t.Fatalf("uncompressed batch on an uncompressed topic: %v", code)
	}
	if r := c.alterConfigs(topic, false, []string{"compression.type=lz4"}); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("alter: %v %s", r.ErrorCode, r.ErrorMessage)
	}
	if code := produce(batch(t, 0, 3, nowMs())); code != fb.ErrorCodeUnsupportedCompressionType {
		t.Fatalf("uncompressed batch on an lz4 topic: %v", code)
	}
	if code := produce(lz4Frame()); code != fb.ErrorCodeNone {
		t.Fatalf("lz4 batch on an lz4 topic: %v", code)
	}
	if r := c.alterConfigs(topic, false, nil, "compression.type"); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("delete: %v %s", r.ErrorCode, r.ErrorMessage)
	}
	for _, frame := range [][]byte{batch(t, 0, 3, nowMs()), lz4Frame()} {
		if code := produce(frame); code != fb.ErrorCodeNone {
			t.Fatalf("batch on a producer topic: %v", code)
		}
	}
}

// TestFlushPolicyAndSegmentSizeAtRunTime switches a topic's flush policy
// and segment size while records flow: every produce is answered at the
// offset that follows the last, and a lowered segment.bytes rolls the
// log into segments of the new size.
func TestFlushPolicyAndSegmentSizeAtRunTime(t *testing.T) {
	dir := t.TempDir()
	b := startRetentionBroker(t, dir)
	c := newTestClient(t, b.Addr().String())
	const topic = "flushes"
	if code := c.createTopic(topic, 1); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	next := int64(0)
	produce := func(acks fb.Acks) {
		t.Helper()
		env, _ := c.call(produceMsg(acks, topic, 0, batch(t, int(next), 20, nowMs())))
		r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != next {
			t.Fatalf("produce at %d: %v base %d", next, r.ErrorCode, r.BaseOffset)
		}
		next += 20
	}
	for _, policy := range []string{"interval:50", "never", "sync"} {
		if r := c.alterConfigs(topic, false, []string{"flush.policy=" + policy}); r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("flush.policy=%s: %v %s", policy, r.ErrorCode, r.ErrorMessage)
		}
		produce(fb.AcksLeader)
		produce(fb.AcksAll)
	}
	logs, _ := partitionFiles(t, partitionDir(dir, topic, 0))
	if len(logs) != 1 {
		t.Fatalf("segments %v before lowering segment.bytes", logs)
	}
	if r := c.alterConfigs(topic, false, []string{"segment.bytes=4096"}); r.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("segment.bytes: %v %s", r.ErrorCode, r.ErrorMessage)
	}
	for range 20 {
		produce(fb.AcksAll)
	}
	if logs, _ = partitionFiles(t, partitionDir(dir, topic, 0)); len(logs) < 5 {
		t.Fatalf("segments %v after lowering segment.bytes to 4096", logs)
	}
	env, tr := c.call(fetchMsg(topic, 0, 0, 0, 0))
	if fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; fr.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("fetch: %v", fr.ErrorCode)
	}
	if recs := records(t, tr); int64(len(recs)) != next || recs[len(recs)-1].Offset != next-1 {
		t.Fatalf("read back %d records, want %d", len(recs), next)
	}
}
