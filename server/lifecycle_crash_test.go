package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// The kill -9 test of the log's lifecycle work: a broker process whose
// compacted topic is cleaned, whose other topic has retention delete
// segments, and whose small segments roll all the time, killed while
// producers wait for acks=all answers, again and again.
const (
	// lifecycleCrashRoundsDefault is how many kills one run makes
	// (STRATA_LIFECYCLE_KILLS=n for more).
	lifecycleCrashRoundsDefault = 4
	// lifecycleKillAfterMin and lifecycleKillAfterMax bound the random
	// time from the producers' start to a kill at a random moment.
	lifecycleKillAfterMin = 300 * time.Millisecond
	lifecycleKillAfterMax = 1500 * time.Millisecond
	// lifecycleKeys is the compacted topic's key count.
	lifecycleKeys = 40
	// lifecyclePad makes the retention topic's records about 256 bytes.
	lifecyclePadBytes = 240
	// lifecycleCleanerBytesPerSecond throttles the cleaner (two shards:
	// 256 KiB/s each) so that a round lasts long enough to be killed in.
	lifecycleCleanerBytesPerSecond = 512 << 10
	// lifecycleRoundWait bounds the wait for a cleaner round to start.
	lifecycleRoundWait = 30 * time.Second
)

// cleanedFiles lists the cleaner's files in a partition folder.
func cleanedFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".cleaned") {
			out = append(out, e.Name())
		}
	}
	return out
}

// awaitCleanedFiles waits until a cleaner round has begun writing.
func awaitCleanedFiles(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(lifecycleRoundWait)
	for len(cleanedFiles(t, dir)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no cleaner round began within %v", lifecycleRoundWait)
		}
		time.Sleep(time.Millisecond) // polling the folder
	}
}

// lifecycleAcks is what producers were told was written, by topic and
// offset.
type lifecycleAcks struct {
	mu    sync.Mutex
	acked map[string]map[int64]string // topic -> offset -> key "=" value
}

func (a *lifecycleAcks) add(topic string, offset int64, kv string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acked[topic][offset] = kv
}

// rawProduce produces one record and reports its base offset, or an error
// (no t.Fatal: the broker is killed under it).
func rawProduce(conn net.Conn, enc *schema.Encoder, corr int32, topic string, key, value []byte) (int64, error) {
	bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
	if err != nil {
		return 0, err
	}
	if err := bb.Append(&schema.Record{Key: key, Value: value, TimestampMs: time.Now().UnixMilli()}); err != nil {
		return 0, err
	}
	frame, err := bb.AppendTo(nil)
	if err != nil {
		return 0, err
	}
	if _, err := conn.Write(enc.Encode(&schema.EnvelopeHeader{CorrelationID: corr, ClientID: "test"}, produceMsg(fb.AcksAll, topic, 0, frame))); err != nil {
		return 0, err
	}
	env, _, err := readAnswer(conn)
	if err != nil {
		return 0, err
	}
	r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
	if r.ErrorCode != fb.ErrorCodeNone {
		return 0, fmt.Errorf("produce to %s: %v", topic, r.ErrorCode)
	}
	return r.BaseOffset, nil
}

// lifecycleProducer produces to topic until the connection fails (the
// kill), recording every acknowledged record.
func lifecycleProducer(addr, topic string, seq *int, acks *lifecycleAcks, done chan<- error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		done <- err
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testDeadline))
	enc := schema.NewEncoder()
	for corr := int32(1); ; corr++ {
		*seq++
		var key, value []byte
		if topic == "compacted" {
			key = []byte(fmt.Sprintf("k%02d", *seq%lifecycleKeys))
			value = []byte(strconv.Itoa(*seq))
		} else {
			key = []byte("r")
			value = append([]byte(strconv.Itoa(*seq)+":"), bytes.Repeat([]byte{'.'}, lifecyclePadBytes)...)
		}
		off, err := rawProduce(conn, enc, corr, topic, key, value)
		if err != nil {
			done <- nil // the kill; what was acknowledged is recorded
			return
		}
		acks.add(topic, off, string(key)+"="+string(value))
	}
}

// servedRecords fetches partition 0 of topic from its log start to its
// high watermark: the log start and every record, by offset, as
// key "=" value.
func servedRecords(t *testing.T, c *testClient, topic string) (int64, map[int64]string) {
	t.Helper()
	out := map[int64]string{}
	start := int64(-1)
	for off := int64(0); ; {
		c.conn.SetDeadline(time.Now().Add(testDeadline))
		env, trailing := c.call(fetchMsg(topic, 0, off, 0, 0))
		r := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
		if r.ErrorCode == fb.ErrorCodeOffsetOutOfRange && off < r.LogStartOffset {
			off = r.LogStartOffset
			continue
		}
		if r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("fetch %s at %d: %v", topic, off, r.ErrorCode)
		}
		if start < 0 {
			start = max(off, r.LogStartOffset)
		}
		if off >= r.HighWatermark || len(trailing) == 0 {
			return start, out
		}
		var br schema.BatchReader
		for len(trailing) > 0 {
			n, err := schema.PeekFrameLength(trailing, schema.MaxFrameBytes)
			if err != nil || n > len(trailing) {
				t.Fatalf("fetch %s at %d: %v", topic, off, err)
			}
			if err := br.Reset(trailing[:n]); err != nil {
				t.Fatalf("fetch %s at %d: %v", topic, off, err)
			}
			var v schema.RecordView
			for br.Next(&v) {
				out[v.Offset] = string(v.Key) + "=" + string(v.Value)
			}
			h := br.Header()
			off = h.NextOffset()
			trailing = trailing[n:]
		}
	}
}

// TestKill9DuringLifecycleWork kills a broker process (kill -9) while a
// compacted topic (16 KiB segments, cleaned at every chance, the cleaner
// throttled so that a round lasts seconds) and a topic under
// retention.bytes (8 KiB segments, checked every 100 ms, rolling every
// few dozen records) take acks=all produces. Each kill is aimed
// (lifecycle_aim_test.go): two of the four wait for a cleaner round to be
// writing its .cleaned files, one for a retention pass of the retained
// topic that has unlinked segments and not yet written its checkpoint, one
// for a roll whose checkpoint is not yet written (the old segment's syncs
// in flight); longer runs add kills at random moments. The folder as the
// kill left it tells where each kill landed, and the test fails unless at
// least one landed in a roll and one in a retention pass (kills are added,
// aimed at what is missing, up to lifecycleAimRetries). After each
// restart:
//
//   - compacted: every record served at an acknowledged offset is the one
//     acknowledged there, and every key is served at its latest
//     acknowledged offset or later (a cleaner may drop only what a later
//     record of the key superseded);
//   - retention: the offsets served are contiguous from the log start,
//     every acknowledged record at or past it is served as acknowledged,
//     and the latest acknowledged one always is (retention drops only
//     whole closed segments from the front); after a kill in a retention
//     pass, the log start is at or past the first segment the pass left
//     (the unlinked segments do not come back, and no log start points
//     below the first segment).
func TestKill9DuringLifecycleWork(t *testing.T) {
	rounds := lifecycleCrashRoundsDefault
	if v := os.Getenv("STRATA_LIFECYCLE_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("STRATA_LIFECYCLE_KILLS=%q", v)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := filepath.Join(t.TempDir(), "data")
	c := &testCluster{t: t, nodes: map[int32]*clusterNode{}}
	n := &clusterNode{id: 1, args: []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin", "",
		"--cores", "2", "--pin=false", "--log-level", "debug", "--log-retention-check-interval", "100ms",
		"--log-cleaner-io-max-bytes-per-second", strconv.Itoa(lifecycleCleanerBytesPerSecond)}}
	c.nodes[1] = n
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			n.mu.Lock()
			lines := n.lines
			if len(lines) > 200 {
				lines = lines[len(lines)-200:]
			}
			t.Logf("broker stderr (last lines):\n%s", strings.Join(lines, "\n"))
			n.mu.Unlock()
		}
	})
	c.start(n)
	c.waitReady(n)
	admin := newTestClient(t, n.clientAddr())
	if code := admin.createTopic("compacted", 1, topicConfigs("cleanup.policy=compact", "segment.bytes=16384",
		"min.cleanable.dirty.ratio=0.01", "flush.policy=sync")...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	if code := admin.createTopic("retained", 1, topicConfigs("retention.bytes=65536", "segment.bytes=8192",
		"flush.policy=sync")...); code != fb.ErrorCodeNone {
		t.Fatal(code)
	}
	acks := &lifecycleAcks{acked: map[string]map[int64]string{"compacted": {}, "retained": {}}}
	seqs := map[string]*int{"compacted": new(int), "retained": new(int)}
	retainedDir := partitionDir(dir, "retained", 0)
	var landedRoll, landedRetention bool
	for round := 0; ; round++ {
		aim := lifecycleAimOf(round, rounds, landedRoll, landedRetention)
		if aim < 0 {
			break
		}
		// The retained folder as the round begins: the kill's landing is
		// told by what changed since.
		before := mustReadLifecycleFolder(t, retainedDir)
		done := make(chan error, 2)
		for topic, seq := range seqs {
			go lifecycleProducer(n.clientAddr(), topic, seq, acks, done)
		}
		var aimed lifecycleFolder
		switch aim {
		case aimCleaner:
			// The cleaner's I/O is throttled, so a round takes seconds:
			// kill while it writes its .cleaned files.
			awaitCleanedFiles(t, partitionDir(dir, "compacted", 0))
		case aimRetention:
			// Kill on sight of a retention pass that has unlinked
			// segments and not yet written its checkpoint.
			aimed = awaitFolder(t, retainedDir, "retention pass in flight", func(f lifecycleFolder) bool { return f.retentionInFlight(before) })
		case aimRoll:
			// Kill on sight of a roll whose checkpoint is not yet
			// written (the old segment's syncs are in flight).
			aimed = awaitFolder(t, retainedDir, "roll in flight", func(f lifecycleFolder) bool { return f.rollInFlight(before) })
		default:
			time.Sleep(lifecycleKillAfterMin + time.Duration(rng.Int64N(int64(lifecycleKillAfterMax-lifecycleKillAfterMin)))) // the kill's random moment
		}
		n.mu.Lock()
		cleaned, passes := 0, 0
		for _, l := range n.lines {
			switch {
			case strings.Contains(l, "msg=compacted"):
				cleaned++
			case strings.Contains(l, "retention moved the log start"):
				passes++
			}
		}
		n.mu.Unlock()
		n.kill()
		// The folder as the kill left it: no process changes it now.
		after := mustReadLifecycleFolder(t, retainedDir)
		inRound := len(cleanedFiles(t, partitionDir(dir, "compacted", 0))) > 0
		inRoll, inRetention := after.rollInFlight(before), after.retentionInFlight(before)
		landedRoll = landedRoll || inRoll
		landedRetention = landedRetention || inRetention
		if aim == aimCleaner && !inRound {
			t.Fatal("the kill meant to land in a cleaner round found no .cleaned file after it")
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		c.start(n)
		c.waitReady(n)
		cl := newTestClient(t, n.clientAddr())
		waitLeader(t, cl, "compacted", 1, "compacted leads after the restart")
		waitLeader(t, cl, "retained", 1, "retained leads after the restart")
		acks.mu.Lock()
		kept := checkCompactedAfterKill(t, cl, acks.acked["compacted"])
		start := checkRetainedAfterKill(t, cl, acks.acked["retained"])
		if inRetention && start < after.bases[0] {
			// The pass had unlinked the segments below after.bases[0]:
			// their records are gone, and the log start must say so.
			t.Fatalf("retained: the kill cut a retention pass that had deleted the segments below %d; the log start after the restart is %d",
				after.bases[0], start)
		}
		t.Logf("kill %d (%s; in a cleaner round: %v, in a roll: %v, in a retention pass: %v): %d (%d kept by the cleaner) and %d acknowledged so far; %d cleaner rounds and %d retention passes logged so far",
			round, aim, inRound, inRoll, inRetention, len(acks.acked["compacted"]), kept, len(acks.acked["retained"]), cleaned, passes)
		t.Logf("retained folder: at the round's start %v; aimed at %v; after the kill %v", before, aimed, after)
		if left := cleanedFiles(t, partitionDir(dir, "compacted", 0)); len(left) > 0 && inRound {
			// Open resolved the round the kill cut: nothing of it is
			// left unless a new round began since the restart.
			t.Logf("after the restart: %v", left)
		}
		acks.mu.Unlock()
	}
	if !landedRoll || !landedRetention {
		t.Fatalf("after %d aimed retries no kill landed in a roll (%v) or none in a retention pass (%v)",
			lifecycleAimRetries, landedRoll, landedRetention)
	}
}

func checkCompactedAfterKill(t *testing.T, c *testClient, acked map[int64]string) int {
	t.Helper()
	_, served := servedRecords(t, c, "compacted")
	latestAcked, latestServed := map[string]int64{}, map[string]int64{}
	for off, kv := range acked {
		k, _, _ := strings.Cut(kv, "=")
		if off >= latestAcked[k] {
			latestAcked[k] = off
		}
	}
	for off, kv := range served {
		if want, ok := acked[off]; ok && want != kv {
			t.Fatalf("compacted: offset %d holds %q, %q was acknowledged there", off, kv, want)
		}
		k, _, _ := strings.Cut(kv, "=")
		if off >= latestServed[k] {
			latestServed[k] = off
		}
	}
	for k, off := range latestAcked {
		got, ok := latestServed[k]
		if !ok || got < off {
			t.Fatalf("compacted: key %s acknowledged at %d, served last at %d (%v): an acknowledged record was lost", k, off, got, ok)
		}
	}
	return len(served)
}

func checkRetainedAfterKill(t *testing.T, c *testClient, acked map[int64]string) int64 {
	t.Helper()
	start, served := servedRecords(t, c, "retained")
	end := start
	for ; ; end++ {
		if _, ok := served[end]; !ok {
			break
		}
	}
	if len(served) != int(end-start) {
		t.Fatalf("retained: %d records served from %d, not contiguous (they stop at %d)", len(served), start, end)
	}
	latest := int64(-1)
	for off, kv := range acked {
		latest = max(latest, off)
		if off < start {
			continue // retention removed it
		}
		if got, ok := served[off]; !ok || got != kv {
			t.Fatalf("retained: offset %d acknowledged as %.20q, served %v %.20q (log start %d)", off, kv, ok, got, start)
		}
	}
	if latest >= 0 && latest < start {
		t.Fatalf("retained: the latest acknowledged record (%d) is below the log start %d", latest, start)
	}
	return start
}
