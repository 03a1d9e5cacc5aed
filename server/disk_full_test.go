package server

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"golang.org/x/sys/unix"
)

const (
	// diskFullFSBytes is the small file system the tests fill.
	diskFullFSBytes = 64 << 20
	// diskFullMinFreeBytes is the room the threshold test keeps free.
	diskFullMinFreeBytes = 8 << 20
	// diskFullBallastBytes is what the topic deleted to free room holds.
	diskFullBallastBytes = 8 << 20
	// diskFullFramesMax bounds the produce loop (more than the disk holds).
	diskFullFramesMax = 1000
	// diskFullRefusals is how many refused produces each test checks.
	diskFullRefusals = 5
)

// mountTestExt4 mounts a small ext4 file system of size bytes (a loop
// device over a file, no blocks reserved for root) on dir, as root; the
// test skips without. It is unmounted at the end. Not tmpfs: a tmpfs
// allocates a page for every read of a hole through a shared mapping, so
// scanning a sparse index there costs its whole size (docs/storage.md,
// "A full disk in the broker").
func mountTestExt4(t *testing.T, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small ext4 file system needs root")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount an ext4 image: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmount %s: %v: %s", dir, err, out)
		}
	})
}

func startDiskBroker(t *testing.T, dir string, logs *lockedBuffer, minFreeBytes int64) *Broker {
	t.Helper()
	b, err := StartBroker(BrokerConfig{DataDir: dir, Listen: "127.0.0.1:0", Cores: 2, NodeID: 1,
		Logger:                    slog.New(slog.NewTextHandler(logs, nil)),
		LogRetentionCheckInterval: retentionCheckIntervalTest,
		LogDirMinFreeBytes:        minFreeBytes, LogDirMinFreeRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// valueFrame is a frame of retentionRecordsPerFrame records whose values
// are retentionValue of their offsets, from next.
func valueFrame(t *testing.T, next int64) []byte {
	t.Helper()
	bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < retentionRecordsPerFrame; i++ {
		if err := bb.Append(&schema.Record{Key: []byte("k"), Value: retentionValue(next + i), TimestampMs: time.Now().UnixMilli()}); err != nil {
			t.Fatal(err)
		}
	}
	frame, err := bb.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// produceAt produces one valueFrame at next and returns the answer.
func produceAt(t *testing.T, c *testClient, topic string, next int64) *fb.ProducePartitionResponseT {
	t.Helper()
	env, _ := c.call(produceMsg(fb.AcksAll, topic, 0, valueFrame(t, next)))
	return env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
}

// checkDiskFullRefusal checks a refused produce says the disk is full.
func checkDiskFullRefusal(t *testing.T, r *fb.ProducePartitionResponseT, what string) {
	t.Helper()
	if r.ErrorCode != fb.ErrorCodeStorageError || !strings.Contains(r.ErrorMessage, "disk full") || r.BaseOffset != -1 {
		t.Fatalf("%s: %v %q base %d, want STORAGE_ERROR saying the disk is full", what, r.ErrorCode, r.ErrorMessage, r.BaseOffset)
	}
}

// readBackAll fetches topic's partition 0 from 0 to end and checks every
// record is the one produced at its offset.
func readBackAll(t *testing.T, c *testClient, topic string, end int64) {
	t.Helper()
	for off := int64(0); off < end; {
		env, trailing := c.call(fetchMsg(topic, 0, off, 0, 0))
		r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
		if r.ErrorCode != fb.ErrorCodeNone || len(trailing) == 0 {
			t.Fatalf("fetch %s at %d of %d: %v, %d bytes", topic, off, end, r.ErrorCode, len(trailing))
		}
		next, err := checkAnswer(off, trailing)
		if err != nil {
			t.Fatalf("fetch %s at %d: %v", topic, off, err)
		}
		off = next
	}
}

// diskGauge reads one of the broker's disk gauges.
func diskGauge(t *testing.T, b *Broker, name string) float64 {
	t.Helper()
	mfs, err := b.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// awaitDisk polls until cond holds, failing after retentionWait.
func awaitDisk(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(retentionWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, retentionWait)
		}
		time.Sleep(retentionPoll) // polling a condition of the broker's
	}
}

// TestDiskFullBelowMinFree fills a real 64 MiB ext4 file system through a broker that
// keeps 8 MiB free: once the room falls below it, produces answer
// STORAGE_ERROR saying the disk is full and append nothing, topic creation
// is refused the same way, fetches serve every acknowledged record, the
// disk gauges say so and the condition is logged once. Deleting a topic
// frees room: produces are accepted again without a restart (the clearing
// logged once), and every acknowledged record reads back, before and after
// a restart.
func TestDiskFullBelowMinFree(t *testing.T) {
	mnt := t.TempDir()
	mountTestExt4(t, mnt, diskFullFSBytes)
	dir := filepath.Join(mnt, "data")
	logs := &lockedBuffer{}
	b := startDiskBroker(t, dir, logs, diskFullMinFreeBytes)
	defer func() { b.Stop() }()
	c := newTestClient(t, b.Addr().String())
	t.Logf("%v bytes free at start", diskGauge(t, b, "strata_log_dir_free_bytes"))
	seg := topicConfigs("segment.bytes=" + strconv.Itoa(retentionSegmentBytes))
	for _, name := range []string{"ballast", "fill"} {
		if code := c.createTopic(name, 1, seg...); code != fb.ErrorCodeNone {
			t.Fatalf("create %s: %v", name, code)
		}
	}
	var ballast int64
	for sent := 0; sent < diskFullBallastBytes; sent += len(valueFrame(t, 0)) {
		if r := produceAt(t, c, "ballast", ballast); r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("ballast at %d: %v %q", ballast, r.ErrorCode, r.ErrorMessage)
		}
		ballast += retentionRecordsPerFrame
	}
	var next int64
	var refused *fb.ProducePartitionResponseT
	for range diskFullFramesMax {
		r := produceAt(t, c, "fill", next)
		if r.ErrorCode != fb.ErrorCodeNone {
			refused = r
			break
		}
		if r.BaseOffset != next {
			t.Fatalf("produce at %d: base %d", next, r.BaseOffset)
		}
		next += retentionRecordsPerFrame
	}
	if refused == nil {
		t.Fatalf("%d frames were all accepted: the disk never filled", diskFullFramesMax)
	}
	checkDiskFullRefusal(t, refused, "produce once the room is below the bound")
	t.Logf("%d records acknowledged before the refusal: %s", next, refused.ErrorMessage)
	for i := range diskFullRefusals {
		checkDiskFullRefusal(t, produceAt(t, c, "fill", next), "produce "+strconv.Itoa(i)+" while full")
	}
	env, _ := c.call(&fb.MessageT{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{
		Topics: []*fb.CreatableTopicT{{Name: "late", NumPartitions: 1, ReplicationFactor: -1}}}})
	if cr := env.Message.Value.(*fb.CreateTopicsResponseT).Topics[0]; cr.ErrorCode != fb.ErrorCodeStorageError || !strings.Contains(cr.ErrorMessage, "disk full") {
		t.Fatalf("create topic while full: %v %q", cr.ErrorCode, cr.ErrorMessage)
	}
	readBackAll(t, c, "fill", next)
	if g := diskGauge(t, b, "strata_log_dir_disk_alarm"); g != 1 {
		t.Fatalf("disk alarm gauge %v while full", g)
	}
	if free := diskGauge(t, b, "strata_log_dir_free_bytes"); free >= diskFullMinFreeBytes || free <= 0 {
		t.Fatalf("free bytes gauge %v while full", free)
	}

	denv, _ := c.call(&fb.MessageT{Type: fb.MessageDeleteTopicsRequest, Value: &fb.DeleteTopicsRequestT{TopicNames: []string{"ballast"}}})
	if dr := denv.Message.Value.(*fb.DeleteTopicsResponseT).Topics[0]; dr.ErrorCode != fb.ErrorCodeNone {
		t.Fatalf("delete the ballast topic: %v", dr.ErrorCode)
	}
	awaitDisk(t, "a produce is accepted once the ballast topic is deleted", func() bool {
		r := produceAt(t, c, "fill", next)
		switch r.ErrorCode {
		case fb.ErrorCodeNone:
			if r.BaseOffset != next {
				t.Fatalf("produce at %d after room returned: base %d", next, r.BaseOffset)
			}
			next += retentionRecordsPerFrame
			return true
		case fb.ErrorCodeStorageError:
			checkDiskFullRefusal(t, r, "produce while room returns")
			return false
		}
		t.Fatalf("produce while room returns: %v", r.ErrorCode)
		return false
	})
	for range diskFullRefusals {
		if r := produceAt(t, c, "fill", next); r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != next {
			t.Fatalf("produce at %d after room returned: %v base %d", next, r.ErrorCode, r.BaseOffset)
		}
		next += retentionRecordsPerFrame
	}
	if code := c.createTopic("late", 1); code != fb.ErrorCodeNone {
		t.Fatalf("create topic once room returned: %v", code)
	}
	readBackAll(t, c, "fill", next)
	awaitDisk(t, "the alarm gauge clears", func() bool { return diskGauge(t, b, "strata_log_dir_disk_alarm") == 0 })
	checkLoggedOnce(t, logs)

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b = startDiskBroker(t, dir, logs, diskFullMinFreeBytes)
	c = newTestClient(t, b.Addr().String())
	waitLeader(t, c, "fill", 1, "the broker leads the partition after the restart")
	readBackAll(t, c, "fill", next)
}

// checkLoggedOnce checks the alarm was logged once raised and once cleared.
func checkLoggedOnce(t *testing.T, logs *lockedBuffer) {
	t.Helper()
	out := logs.String()
	if n := strings.Count(out, "msg=\"disk full:"); n != 1 {
		t.Fatalf("the full disk was logged %d times", n)
	}
	if n := strings.Count(out, "msg=\"disk space returned"); n != 1 {
		t.Fatalf("the room returning was logged %d times", n)
	}
	if strings.Contains(out, "partition storage failed") {
		t.Fatal("a full disk took a partition offline")
	}
}

// TestDiskFullNoSpaceLeft fills a real 64 MiB ext4 file system with no room kept
// free, so that a partition log's FALLOCATE fails with ENOSPC from the
// kernel. The partition is not taken offline: the produce that needed the
// room waits, the disk alarm goes up, other produces answer STORAGE_ERROR
// saying the disk is full, fetches serve every acknowledged record, and
// the condition is logged once. When the operator frees room (a file on
// the same file system is removed), the waiting produce is acknowledged,
// produces are accepted again without a restart, and every acknowledged
// record reads back, before and after a restart.
func TestDiskFullNoSpaceLeft(t *testing.T) {
	t.Run("room returns", func(t *testing.T) { diskFullNoSpaceLeft(t, false) })
	t.Run("stop while full", func(t *testing.T) { diskFullNoSpaceLeft(t, true) })
}

// diskFullNoSpaceLeft is TestDiskFullNoSpaceLeft; with stopWhileFull the
// broker is stopped while the produce waits for room instead: the stop
// does not wait for room, the waiting produce is not acknowledged, and
// after room returns a restart serves every acknowledged record and takes
// produces at the end of them.
func diskFullNoSpaceLeft(t *testing.T, stopWhileFull bool) {
	mnt := t.TempDir()
	mountTestExt4(t, mnt, diskFullFSBytes)
	dir := filepath.Join(mnt, "data")
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, diskFullBallastBytes), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	b := startDiskBroker(t, dir, logs, -1)
	defer func() { b.Stop() }()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("fill", 1, topicConfigs("segment.bytes="+strconv.Itoa(retentionSegmentBytes))...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	// The producer runs on its own connection: the produce that finds no
	// room waits for it.
	type answer struct {
		r    *fb.ProducePartitionResponseT
		next int64
	}
	answers := make(chan answer, 1)
	next := int64(0)
	pc := newTestClient(t, b.Addr().String())
	var held int64 = -1
	for range diskFullFramesMax {
		at := next
		frame := valueFrame(t, at)
		pc.send(produceMsg(fb.AcksAll, "fill", 0, frame))
		go func() {
			// No t.Fatal here: a stop closes the connection under it.
			env, _, err := pc.tryRecv()
			if err != nil {
				answers <- answer{&fb.ProducePartitionResponseT{ErrorCode: fb.ErrorCodeUnknown, ErrorMessage: err.Error(), BaseOffset: -1}, at}
				return
			}
			answers <- answer{env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0], at}
		}()
		var a answer
		for got := false; !got && held < 0; {
			select {
			case a = <-answers:
				got = true
			default:
				if b.disk.full() {
					held = at
				} else {
					time.Sleep(retentionPoll) // polling the answer and the alarm
				}
			}
		}
		if held >= 0 {
			break
		}
		if a.r.ErrorCode != fb.ErrorCodeNone || a.r.BaseOffset != at {
			l := logs.String()
			t.Fatalf("produce at %d: %v %q base %d\nbroker log tail:\n%s", at, a.r.ErrorCode, a.r.ErrorMessage, a.r.BaseOffset, l[max(0, len(l)-4000):])
		}
		next += retentionRecordsPerFrame
	}
	if held < 0 {
		t.Fatalf("%d frames were all accepted: the disk never filled", diskFullFramesMax)
	}
	t.Logf("%d records acknowledged before the produce at %d waited for room", next, held)
	for i := range diskFullRefusals {
		checkDiskFullRefusal(t, produceAt(t, c, "fill", held+retentionRecordsPerFrame), "produce "+strconv.Itoa(i)+" while full")
	}
	readBackAll(t, c, "fill", next)
	awaitDisk(t, "the full disk is logged", func() bool { return strings.Contains(logs.String(), "msg=\"disk full:") })
	select {
	case a := <-answers:
		t.Fatalf("the produce at %d answered %v %q while the disk was full", a.next, a.r.ErrorCode, a.r.ErrorMessage)
	default:
	}

	if stopWhileFull {
		if err := b.Stop(); err != nil {
			t.Fatalf("stop while a log holds for room: %v", err)
		}
		select {
		case a := <-answers:
			if a.r.ErrorCode == fb.ErrorCodeNone {
				t.Fatalf("the produce at %d waiting for room was acknowledged by a stop", a.next)
			}
		case <-time.After(retentionWait):
			t.Fatal("the produce waiting for room got no answer and no close from the stop")
		}
		if err := os.Remove(ballast); err != nil {
			t.Fatal(err)
		}
		b = startDiskBroker(t, dir, logs, -1)
		c = newTestClient(t, b.Addr().String())
		waitLeader(t, c, "fill", 1, "the broker leads the partition after the restart")
		readBackAll(t, c, "fill", next)
		if r := produceAt(t, c, "fill", next); r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != next {
			t.Fatalf("produce after the restart: %v %q base %d (the log should end at the last acknowledged record)", r.ErrorCode, r.ErrorMessage, r.BaseOffset)
		}
		if strings.Contains(logs.String(), "partition storage failed") {
			t.Fatal("a full disk was logged as a storage failure")
		}
		return
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	var a answer
	select {
	case a = <-answers:
	case <-time.After(retentionWait):
		t.Fatalf("the produce at %d waiting for room was not answered within %v of room returning", held, retentionWait)
	}
	if a.r.ErrorCode != fb.ErrorCodeNone || a.r.BaseOffset != held {
		t.Fatalf("the produce that waited for room: %v %q base %d", a.r.ErrorCode, a.r.ErrorMessage, a.r.BaseOffset)
	}
	next = held + retentionRecordsPerFrame
	awaitDisk(t, "a produce is accepted once room returned", func() bool {
		r := produceAt(t, c, "fill", next)
		if r.ErrorCode == fb.ErrorCodeStorageError {
			checkDiskFullRefusal(t, r, "produce while room returns")
			return false
		}
		if r.ErrorCode != fb.ErrorCodeNone || r.BaseOffset != next {
			t.Fatalf("produce at %d after room returned: %v base %d", next, r.ErrorCode, r.BaseOffset)
		}
		next += retentionRecordsPerFrame
		return true
	})
	readBackAll(t, c, "fill", next)
	awaitDisk(t, "the alarm clears", func() bool { return strings.Contains(logs.String(), "msg=\"disk space returned") })
	checkLoggedOnce(t, logs)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b = startDiskBroker(t, dir, logs, -1)
	c = newTestClient(t, b.Addr().String())
	waitLeader(t, c, "fill", 1, "the broker leads the partition after the restart")
	readBackAll(t, c, "fill", next)
}

// TestDiskAlarmCountsAllocationsBetweenReadings: the shards' logs count
// what they allocate between two statfs readings, and once the last
// reading less that count is below the bound, the alarm reads the folder
// again at once instead of waiting for the next interval: a producer
// faster than the interval is refused before it writes into the kernel's
// ENOSPC, and the alarm still rests on a reading, never on the count.
func TestDiskAlarmCountsAllocationsBetweenReadings(t *testing.T) {
	mnt := t.TempDir()
	mountTestExt4(t, mnt, diskFullFSBytes)
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	const headroomBytes = 4 << 20
	minFree := int64(st.Bavail)*st.Bsize - headroomBytes
	// No watch goroutine: readings are the test's d.check and those the
	// alarm takes itself.
	d := &diskSpace{dir: mnt, minFreeBytes: minFree, minFreeRatio: -1, allocated: make([]paddedCounter, 2),
		log: slog.New(slog.NewTextHandler(&lockedBuffer{}, nil))}
	d.check()
	if d.full() {
		t.Fatalf("full at the first reading: %d free, %d kept", d.free.Load(), d.minFree.Load())
	}
	// Counted allocations that the file system does not show (a step
	// counted twice) ask for a reading, which finds the room.
	d.noteAllocated(0, headroomBytes/2)
	d.noteAllocated(1, headroomBytes/2+1)
	if d.full() {
		t.Fatalf("full on a count the reading does not bear out: %s", d.reason())
	}
	if got := d.allocatedSince(); got != 0 {
		t.Fatalf("%d bytes still counted after the early reading", got)
	}

	// Room really taken, and not yet counted: the last reading stands.
	ballast := filepath.Join(mnt, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, headroomBytes+1<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if d.full() {
		t.Fatal("full before anything counted the allocation or a reading saw it")
	}
	// Counted: the alarm reads the folder at once and rises.
	d.noteAllocated(1, headroomBytes+1<<20)
	if !d.full() || !d.low.Load() {
		t.Fatalf("not full once the counted allocation passes the bound: %d free, %d kept", d.free.Load(), d.minFree.Load())
	}
	if msg := d.reason(); !strings.Contains(msg, "disk full") || !strings.Contains(msg, strconv.FormatInt(minFree, 10)) {
		t.Fatalf("refusal %q does not say the disk is full and the bound", msg)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	d.check()
	if d.full() {
		t.Fatalf("still full once the room returned: %s", d.reason())
	}
}
