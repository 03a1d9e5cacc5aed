package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-db/strata/schema/fb"
	"golang.org/x/sys/unix"
)

// storageFailureWaitLimit bounds the wait for the controller to move the
// partition (a lost report fails the test, never hangs it).
const storageFailureWaitLimit = 10 * time.Second

// lockedBuffer is a log sink the shards and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// breakDescriptor makes the process's descriptor of path refuse writes,
// as a failed disk would: a read-only descriptor of the same file is
// duplicated over it, so the ring's next write to it completes with EBADF
// from the kernel itself.
func breakDescriptor(t *testing.T, path string) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	ro, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ro)
	broken := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != path {
			continue
		}
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err != nil || fd == ro {
			continue
		}
		if err := unix.Dup3(ro, fd, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		broken++
	}
	if broken == 0 {
		t.Fatalf("no descriptor of %s is open", path)
	}
}

// waitLeader polls the Metadata API until the partition 0 of topic has
// the leader want.
func waitLeader(t *testing.T, c *testClient, topic string, want int32, what string) {
	t.Helper()
	leader := func() int32 {
		env, _ := c.call(&fb.MessageT{Type: fb.MessageMetadataRequest, Value: &fb.MetadataRequestT{}})
		for _, tp := range env.Message.Value.(*fb.MetadataResponseT).Topics {
			if tp.Name == topic {
				return tp.Partitions[0].LeaderId
			}
		}
		return -2
	}
	deadline := time.Now().Add(storageFailureWaitLimit)
	for got := leader(); got != want; got = leader() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: leader %d, want %d", what, got, want)
		}
		time.Sleep(10 * time.Millisecond) // polling the metadata, not synchronising with it
	}
}

// checkStorageFailures checks strata_partition_storage_failures_total.
func checkStorageFailures(t *testing.T, b *Broker, want float64) {
	t.Helper()
	mfs, err := b.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "strata_partition_storage_failures_total" {
			got = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if got != want {
		t.Fatalf("strata_partition_storage_failures_total = %v, want %v", got, want)
	}
}

func startLoggingBroker(t *testing.T, dir string, logs *lockedBuffer) *Broker {
	t.Helper()
	b, err := StartBroker(BrokerConfig{DataDir: dir, Listen: "127.0.0.1:0", Cores: 1, NodeID: 1,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPartitionStorageFailureIsFailStop: once a partition's log write
// fails, the partition answers STORAGE_ERROR to produce, fetch (a long poll
// included, at once) and offset lookups, and keeps doing so; the failure is
// logged once and counted once; the controller moves the partition off the
// broker (with one replica it has no leader); after a restart the
// acknowledged records are all there and the partition serves again.
func TestPartitionStorageFailureIsFailStop(t *testing.T) {
	dir := t.TempDir()
	logs := &lockedBuffer{}
	b := startLoggingBroker(t, dir, logs)
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("disk", 1); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	produce := func(from int) *fb.ProducePartitionResponseT {
		env, _ := c.call(produceMsg(fb.AcksAll, "disk", 0, batch(t, from, 5, 1)))
		return env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
	}
	if r := produce(0); r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 0 {
		t.Fatalf("produce before the failure: %v base %d", r.ErrorCode, r.BaseOffset)
	}
	breakDescriptor(t, filepath.Join(partitionDir(dir, "disk", 0), "00000000000000000000.log"))
	for i := 0; i < 3; i++ {
		if r := produce(5 + 5*i); r.ErrorCode != fb.ErrorCodeStorageError {
			t.Fatalf("produce %d after the failure: %v", i, r.ErrorCode)
		}
	}
	fetch := func(offset int64, maxWaitMs int32) *fb.FetchPartitionResponseT {
		env, _ := c.call(fetchMsg("disk", 0, offset, maxWaitMs, 1))
		return env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
	}
	if r := fetch(0, 0); r.ErrorCode != fb.ErrorCodeStorageError {
		t.Fatalf("fetch after the failure: %v", r.ErrorCode)
	}
	// A long poll at the end would wait the full minute for data: it is
	// answered at once, with the error.
	if r := fetch(5, 60_000); r.ErrorCode != fb.ErrorCodeStorageError {
		t.Fatalf("long-poll fetch after the failure: %v", r.ErrorCode)
	}
	env, _ := c.call(&fb.MessageT{Type: fb.MessageListOffsetsRequest, Value: &fb.ListOffsetsRequestT{ReplicaId: -1,
		Topics: []*fb.ListOffsetsTopicT{{Name: "disk", Partitions: []*fb.ListOffsetsPartitionT{{Partition: 0, Timestamp: -1, CurrentLeaderEpoch: -1}}}}}})
	if r := env.Message.Value.(*fb.ListOffsetsResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeStorageError {
		t.Fatalf("list offsets after the failure: %v", r.ErrorCode)
	}
	if n := strings.Count(logs.String(), "partition storage failed"); n != 1 {
		t.Fatalf("the failure was logged %d times", n)
	}
	checkStorageFailures(t, b, 1)
	waitLeader(t, c, "disk", -1, "the controller moves the partition off the broker")
	if r := produce(20); r.ErrorCode != fb.ErrorCodeStorageError {
		t.Fatalf("produce once the partition has no leader: %v", r.ErrorCode)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}

	b = startLoggingBroker(t, dir, logs)
	defer b.Stop()
	c = newTestClient(t, b.Addr().String())
	waitLeader(t, c, "disk", 1, "the broker leads the partition again after the restart")
	env, trailing := c.call(fetchMsg("disk", 0, 0, 0, 0))
	fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
	if fr.ErrorCode != fb.ErrorCodeNone || fr.HighWatermark != 5 {
		t.Fatalf("fetch after the restart: %v hw %d", fr.ErrorCode, fr.HighWatermark)
	}
	for i, r := range records(t, trailing) {
		if r.Offset != int64(i) || string(r.Value) != fmt.Sprintf("value-%d", i) {
			t.Fatalf("record %d after the restart: offset %d value %q", i, r.Offset, r.Value)
		}
	}
	if r := produce(5); r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != 5 {
		t.Fatalf("produce after the restart: %v base %d", r.ErrorCode, r.BaseOffset)
	}
}

// TestPartitionOpenFailureIsOffline: a partition whose log cannot be opened
// at start (its folder is a file) is offline the same way: STORAGE_ERROR,
// logged and counted once, leadership moved off the broker; once the
// folder is back and the broker restarts, it serves the partition again.
func TestPartitionOpenFailureIsOffline(t *testing.T) {
	dir := t.TempDir()
	logs := &lockedBuffer{}
	b := startLoggingBroker(t, dir, logs)
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("broken", 1); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	env, _ := c.call(produceMsg(fb.AcksAll, "broken", 0, batch(t, 0, 5, 1)))
	if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
		t.Fatal(r.ErrorCode)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	pdir := partitionDir(dir, "broken", 0)
	if err := os.Rename(pdir, pdir+".saved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pdir, []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	b = startLoggingBroker(t, dir, logs)
	c = newTestClient(t, b.Addr().String())
	waitLeader(t, c, "broken", -1, "the controller moves the partition off the broker")
	for i := 0; i < 2; i++ {
		env, _ := c.call(produceMsg(fb.AcksAll, "broken", 0, batch(t, 5, 5, 1)))
		if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeStorageError {
			t.Fatalf("produce to the partition that failed to open: %v", r.ErrorCode)
		}
		env, _ = c.call(fetchMsg("broken", 0, 0, 0, 0))
		if r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeStorageError {
			t.Fatalf("fetch from the partition that failed to open: %v", r.ErrorCode)
		}
	}
	if n := strings.Count(logs.String(), "could not be opened"); n != 1 {
		t.Fatalf("the failure was logged %d times", n)
	}
	checkStorageFailures(t, b, 1)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pdir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(pdir+".saved", pdir); err != nil {
		t.Fatal(err)
	}
	b = startLoggingBroker(t, dir, logs)
	defer b.Stop()
	c = newTestClient(t, b.Addr().String())
	waitLeader(t, c, "broken", 1, "the broker leads the partition again after the restart")
	env, trailing := c.call(fetchMsg("broken", 0, 0, 0, 0))
	if r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone || r.HighWatermark != 5 || len(records(t, trailing)) != 5 {
		t.Fatalf("fetch after the restart: %v hw %d", r.ErrorCode, r.HighWatermark)
	}
}
