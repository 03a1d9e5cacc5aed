package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// holdsSeedEnv replays TestFetchHoldsRandomOps with another seed.
const holdsSeedEnv = "STRATA_HOLDS_SEED"

const (
	holdsSeedDefault = 20260515
	holdsSteps       = 700
	holdsConnsMax    = 8
	holdsTopicPrefix = "holds-"
)

// TestFetchHoldsRandomOps mixes, at random over several connections,
// produces to a few topics, fetches read whole, fetches whose answers
// are read partly before the connection is dropped, fetches left unread
// on a connection that stays open a while, topic deletions and
// creations (same name, sometimes another partition count), and
// connections closed at any point. Every answer read whole matches a
// model of what each topic took since its creation: exactly, for a topic
// not deleted meanwhile; frame by frame, CRC-valid, with consecutive
// offsets and records some generation of the topic took, for one deleted
// while the answer was in flight. Once every client is gone, no fetch
// answer holds a partition's files, every open partition is in the topic
// table, every deleted partition's folder is gone, and the broker stops
// cleanly. A failure logs its seed; STRATA_HOLDS_SEED replays it.
func TestFetchHoldsRandomOps(t *testing.T) {
	seed := uint64(holdsSeedDefault)
	if s := os.Getenv(holdsSeedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", holdsSeedEnv, s, err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with %s=%d)", seed, holdsSeedEnv, seed)

	dir := t.TempDir()
	b := startBroker(t, dir, 2)
	stopped := false
	t.Cleanup(func() { // after the clients close (cleanups run last first)
		if !stopped {
			b.Stop()
		}
	})
	h := &holdsRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), b: b,
		addr: b.Addr().String(), dir: dir, live: map[string]*holdsTopic{}, stats: map[string]int{}}
	t.Cleanup(h.closeAll)
	for _, n := range []string{"a", "b", "c"} {
		h.names = append(h.names, holdsTopicPrefix+n)
	}
	start := time.Now()
	for _, name := range h.names {
		h.createTopic(name)
	}
	for h.step = 0; h.step < holdsSteps; h.step++ {
		h.randomStep()
	}
	// The connections left with answers unread go as any other.
	for len(h.pendingConns()) > 0 {
		h.resolve(h.pendingConns()[0])
	}
	h.closeAll()
	opsTime := time.Since(start)

	deadline := time.Now().Add(15 * time.Second)
	for {
		problems := h.settled()
		if len(problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seed %d: after every client closed:\n%s", seed, strings.Join(problems, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped = true
	if err := b.Stop(); err != nil {
		t.Fatalf("seed %d: stop: %v", seed, err)
	}
	t.Logf("%d steps in %v, settled and stopped in %v; %v", holdsSteps, opsTime.Round(time.Millisecond),
		(time.Since(start) - opsTime).Round(time.Millisecond), h.stats)
}

// holdsTopic is one generation of a topic: what it took from its
// creation on.
type holdsTopic struct {
	name  string
	gen   uint32 // 1 + its index in holdsRun.gens
	parts []*holdsPart
}

type holdsPart struct {
	keys, values [][]byte // by offset
	frames       []holdsFrame
	bytes        int64
	// served: a produce or fetch of this generation succeeded, so the
	// partition is open and must stay so until its topic is deleted.
	served bool
}

type holdsFrame struct{ base, next, bytes int64 }

// holdsFetch is a fetch request sent and not yet checked.
type holdsFetch struct {
	corr     int32
	topic    string
	gen      uint32 // the topic's generation when it was sent
	maxBytes int32
	parts    []holdsFetchPart
}

type holdsFetchPart struct {
	index    int32
	offset   int64
	maxBytes int32
	sendEnd  int64 // the partition's records when it was sent
	served   bool  // the partition's served when it was sent
}

type holdsConn struct {
	*testClient
	name    string        // its local address, for the log
	pending []*holdsFetch // answers not read yet, in order
}

type holdsRun struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	b     *Broker
	addr  string
	dir   string
	step  int
	names []string
	live  map[string]*holdsTopic
	gens  []*holdsTopic
	conns []*holdsConn
	stats map[string]int
	ops   []string // the latest operations, for a failure's report
}

// logf notes an operation; a failure reports the latest ones.
func (h *holdsRun) logf(format string, args ...any) {
	const keep = 40
	if len(h.ops) == 2*keep {
		h.ops = append(h.ops[:0], h.ops[keep:]...)
	}
	h.ops = append(h.ops, fmt.Sprintf("step %d: ", h.step)+fmt.Sprintf(format, args...))
}

func (h *holdsRun) fatalf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("seed %d step %d: %s\nlatest operations:\n  %s", h.seed, h.step, fmt.Sprintf(format, args...),
		strings.Join(h.ops[max(0, len(h.ops)-40):], "\n  "))
}

func (h *holdsRun) randomStep() {
	x := h.rng.IntN(100)
	switch {
	case x < 28:
		h.produce()
	case x < 46:
		h.fetchWhole()
	case x < 56:
		if len(h.pendingConns()) >= 4 {
			h.resolve(h.pick(h.pendingConns()))
			return
		}
		h.fetchLeftUnread()
	case x < 68:
		if p := h.pendingConns(); len(p) > 0 {
			h.resolve(h.pick(p))
			return
		}
		h.fetchWhole()
	case x < 74:
		h.deleteTopic()
	case x < 82:
		for _, name := range h.names {
			if h.live[name] == nil {
				h.createTopic(name)
				return
			}
		}
		h.produce()
	case x < 88:
		if idle := h.idleConns(); len(idle) > 0 {
			h.stats["close idle"]++
			h.drop(h.pick(idle))
		}
	case x < 94:
		h.halfRequest()
	default:
		h.fetchThenClose()
	}
}

func (h *holdsRun) pick(cs []*holdsConn) *holdsConn { return cs[h.rng.IntN(len(cs))] }

func (h *holdsRun) pendingConns() []*holdsConn {
	var out []*holdsConn
	for _, c := range h.conns {
		if len(c.pending) > 0 {
			out = append(out, c)
		}
	}
	return out
}

func (h *holdsRun) idleConns() []*holdsConn {
	var out []*holdsConn
	for _, c := range h.conns {
		if len(c.pending) == 0 {
			out = append(out, c)
		}
	}
	return out
}

// conn is a connection with no answer pending: one already open, or a
// new one.
func (h *holdsRun) conn() *holdsConn {
	idle := h.idleConns()
	if len(idle) > 0 && (len(h.conns) >= holdsConnsMax || h.rng.IntN(6) != 0) {
		return h.pick(idle)
	}
	for len(h.conns) >= holdsConnsMax {
		h.resolve(h.pick(h.pendingConns()))
		if idle := h.idleConns(); len(idle) > 0 {
			return h.pick(idle)
		}
	}
	c := &holdsConn{testClient: newTestClient(h.t, h.addr)}
	c.name = c.conn.LocalAddr().String()
	h.logf("connect %s", c.name)
	h.conns = append(h.conns, c)
	return c
}

// drop closes a connection, at random abruptly (a reset, whatever is
// unread) or not.
func (h *holdsRun) drop(c *holdsConn) {
	reset := h.rng.IntN(2) == 0
	if reset {
		c.conn.(*net.TCPConn).SetLinger(0)
	}
	c.conn.Close()
	h.logf("close %s (reset %v) with %d answers unread", c.name, reset, len(c.pending))
	c.pending = nil
	h.conns = slices.DeleteFunc(h.conns, func(o *holdsConn) bool { return o == c })
}

func (h *holdsRun) closeAll() {
	for len(h.conns) > 0 {
		h.drop(h.conns[0])
	}
}

func (h *holdsRun) liveTopic() *holdsTopic {
	var live []*holdsTopic
	for _, name := range h.names {
		if tp := h.live[name]; tp != nil {
			live = append(live, tp)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[h.rng.IntN(len(live))]
}

func (h *holdsRun) biggestTopic() *holdsTopic {
	var best *holdsTopic
	var most int64 = -1
	for _, name := range h.names {
		tp := h.live[name]
		if tp == nil {
			continue
		}
		var n int64
		for _, pm := range tp.parts {
			n += pm.bytes
		}
		if n > most {
			best, most = tp, n
		}
	}
	return best
}

func (h *holdsRun) createTopic(name string) {
	h.stats["create"]++
	n := 1 + h.rng.IntN(3)
	c := h.conn()
	deadline := time.Now().Add(5 * time.Second)
	for {
		env, _ := h.call(c, &fb.MessageT{Type: fb.MessageCreateTopicsRequest, Value: &fb.CreateTopicsRequestT{
			Topics: []*fb.CreatableTopicT{{Name: name, NumPartitions: int32(n), ReplicationFactor: -1}}}},
			"create %s with %d partitions (gen %d)", name, n, len(h.gens)+1)
		code := env.Message.Value.(*fb.CreateTopicsResponseT).Topics[0].ErrorCode
		if code == fb.ErrorCodeNone {
			break
		}
		if code != fb.ErrorCodeTopicAlreadyExists || time.Now().After(deadline) {
			h.fatalf("create %s: %v", name, code)
		}
		time.Sleep(2 * time.Millisecond) // the deletion before it is still being applied
	}
	tp := &holdsTopic{name: name, gen: uint32(len(h.gens) + 1)}
	for range n {
		tp.parts = append(tp.parts, &holdsPart{})
	}
	h.gens = append(h.gens, tp)
	h.live[name] = tp
}

func (h *holdsRun) deleteTopic() {
	tp := h.liveTopic()
	if p := h.pendingConns(); len(p) > 0 && h.rng.IntN(3) != 0 {
		// Most often a topic whose answers wait unread: what it is
		// about is a partition closing under answers in flight.
		f := h.pick(p).pending[0]
		if cur := h.live[f.topic]; cur != nil && cur.gen == f.gen {
			tp = cur
		}
	}
	if tp == nil {
		return
	}
	h.stats["delete"]++
	env, _ := h.call(h.conn(), &fb.MessageT{Type: fb.MessageDeleteTopicsRequest, Value: &fb.DeleteTopicsRequestT{TopicNames: []string{tp.name}}},
		"delete %s (gen %d)", tp.name, tp.gen)
	if code := env.Message.Value.(*fb.DeleteTopicsResponseT).Topics[0].ErrorCode; code != fb.ErrorCodeNone {
		h.fatalf("delete %s: %v", tp.name, code)
	}
	delete(h.live, tp.name)
	if n := h.heldClosing(); n > 0 {
		h.stats["deleted while held"]++
	}
}

// heldClosing counts the closing partitions whose files fetch answers
// hold: how often the run deletes a topic under an answer in flight.
func (h *holdsRun) heldClosing() int {
	n := 0
	for i, sh := range h.b.srv.Shards() {
		bs := h.b.shards[i]
		counted := make(chan int, 1)
		if err := sh.Post(func(*Shard) {
			k := 0
			for _, p := range bs.slots {
				if p != nil && p.closing && p.fileHolds() > 0 {
					k++
				}
			}
			counted <- k
		}); err != nil {
			h.fatalf("post to shard %d: %v", i, err)
		}
		select {
		case k := <-counted:
			n += k
		case <-time.After(10 * time.Second):
			h.fatalf("shard %d does not answer", i)
		}
	}
	return n
}

// holdsValue is a record's value: its generation, partition and offset,
// then bytes from the run's generator.
func holdsValue(gen uint32, part int32, offset int64, size int, fill *rand.ChaCha8) []byte {
	v := make([]byte, 16+size)
	binary.LittleEndian.PutUint32(v, gen)
	binary.LittleEndian.PutUint32(v[4:], uint32(part))
	binary.LittleEndian.PutUint64(v[8:], uint64(offset))
	fill.Read(v[16:])
	return v
}

func (h *holdsRun) produce() {
	tp := h.liveTopic()
	if tp == nil {
		return
	}
	index := int32(h.rng.IntN(len(tp.parts)))
	pm := tp.parts[index]
	big := h.rng.IntN(12)
	h.produceTo(tp, index, pm.bytes < 6<<20 && (big < 2 || big < 4 && pm.bytes < 1<<20))
}

// produceTo produces a frame of records to a partition and, once it is
// acknowledged, adds them to the model. A big frame is near 1 MiB: a few
// make answers the socket buffers do not hold, whose files stay held
// while they are unread.
func (h *holdsRun) produceTo(tp *holdsTopic, index int32, big bool) {
	pm := tp.parts[index]
	n, size := 1+h.rng.IntN(20), 1+h.rng.IntN(600)
	if big {
		n, size = 12+h.rng.IntN(5), 40<<10+h.rng.IntN(16<<10)
		h.stats["produce big"]++
	}
	h.stats["produce"]++
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], h.rng.Uint64())
	fill := rand.NewChaCha8(seed)
	bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	base := int64(len(pm.values))
	var keys, values [][]byte
	for i := range n {
		k := []byte(fmt.Sprintf("k%d-%d", tp.gen, base+int64(i)))
		v := holdsValue(tp.gen, index, base+int64(i), h.rng.IntN(size+1), fill)
		if err := bb.Append(&schema.Record{Key: k, Value: v, TimestampMs: int64(h.step)}); err != nil {
			h.t.Fatal(err)
		}
		keys, values = append(keys, k), append(values, v)
	}
	frame, err := bb.AppendTo(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	c := h.conn()
	env, _ := h.call(c, produceMsg(fb.AcksAll, tp.name, index, frame), "produce %d records (%d bytes) to %s-%d (gen %d) at %d",
		n, len(frame), tp.name, index, tp.gen, base)
	r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]
	switch r.ErrorCode {
	case fb.ErrorCodeNone:
		if r.BaseOffset != base {
			h.fatalf("produce %s-%d (gen %d): base %d, want %d", tp.name, index, tp.gen, r.BaseOffset, base)
		}
		pm.keys = append(pm.keys, keys...)
		pm.values = append(pm.values, values...)
		pm.frames = append(pm.frames, holdsFrame{base: base, next: base + int64(n), bytes: int64(len(frame))})
		pm.bytes += int64(len(frame))
		pm.served = true
	case fb.ErrorCodeNotLeader:
		// The partition of the topic's last generation is still closing
		// (a fetch answer holds its files): this one opens after.
		if pm.served {
			h.fatalf("produce %s-%d (gen %d): NOT_LEADER on a partition served before", tp.name, index, tp.gen)
		}
		h.stats["produce not leader"]++
	default:
		h.fatalf("produce %s-%d (gen %d): %v", tp.name, index, tp.gen, r.ErrorCode)
	}
}

// newFetch makes a fetch of one or every partition of a topic, at
// offsets and with limits drawn at random; big asks for large answers.
func (h *holdsRun) newFetch(tp *holdsTopic, big bool) (*holdsFetch, *fb.MessageT) {
	f := &holdsFetch{topic: tp.name, gen: tp.gen}
	indexes := []int32{int32(h.rng.IntN(len(tp.parts)))}
	if big && h.rng.IntN(2) == 0 {
		for i, pm := range tp.parts { // the partition with the most bytes
			if pm.bytes > tp.parts[indexes[0]].bytes {
				indexes[0] = int32(i)
			}
		}
	}
	if len(tp.parts) > 1 && h.rng.IntN(3) == 0 {
		indexes = indexes[:0]
		for _, i := range h.rng.Perm(len(tp.parts)) {
			indexes = append(indexes, int32(i))
		}
	}
	partMax := []int32{0, 1, 200, 4 << 10, 64 << 10, 1 << 20, 16 << 20}
	totalMax := []int32{0, 1, 64 << 10, 1 << 20, 64 << 20}
	if big {
		partMax = []int32{1 << 20, 4 << 20, 16 << 20}
		totalMax = []int32{16 << 20, 64 << 20}
	}
	f.maxBytes = totalMax[h.rng.IntN(len(totalMax))]
	req := &fb.FetchRequestT{ReplicaId: -1, MaxBytes: f.maxBytes, Topics: []*fb.FetchTopicT{{Name: tp.name}}}
	for _, i := range indexes {
		pm := tp.parts[i]
		end := int64(len(pm.values))
		fp := holdsFetchPart{index: i, maxBytes: partMax[h.rng.IntN(len(partMax))], sendEnd: end, served: pm.served}
		switch x := h.rng.IntN(10); {
		case x < 3 || big && x < 6:
			fp.offset = 0
		case x == 3:
			fp.offset = end
		case x == 4 && !big:
			fp.offset = end + 1 + h.rng.Int64N(3) // out of range, unless records came meanwhile
		default:
			fp.offset = h.rng.Int64N(end + 1)
		}
		f.parts = append(f.parts, fp)
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, &fb.FetchPartitionT{Partition: i, FetchOffset: fp.offset,
			PartitionMaxBytes: fp.maxBytes, CurrentLeaderEpoch: -1, LogStartOffset: -1})
	}
	return f, &fb.MessageT{Type: fb.MessageFetchRequest, Value: req}
}

func (h *holdsRun) fetchWhole() {
	tp := h.liveTopic()
	if tp == nil {
		return
	}
	h.stats["fetch whole"]++
	f, m := h.newFetch(tp, false)
	c := h.conn()
	env, trailing := h.call(c, m, "fetch %s", f)
	f.corr = env.CorrelationId
	h.check(f, env, trailing)
}

// fetchLeftUnread sends a few fetches on a connection and reads nothing:
// their answers wait in the socket, and those the socket buffers do not
// take wait in the broker, holding their files.
func (h *holdsRun) fetchLeftUnread() {
	tp := h.liveTopic()
	if tp == nil {
		return
	}
	if h.rng.IntN(2) == 0 {
		tp = h.biggestTopic() // the likeliest to stall in the broker
	}
	h.stats["fetch left unread"]++
	c := h.conn()
	if h.rng.IntN(2) == 0 {
		h.fetchToStall(tp, c)
		return
	}
	for range 1 + h.rng.IntN(10) {
		f, m := h.newFetch(tp, true)
		f.corr = c.send(m)
		c.pending = append(c.pending, f)
		h.logf("on %s, left unread: fetch %s", c.name, f)
	}
}

// fetchToStall asks, on c, for the whole of a partition holding at least
// a big frame, again and again, more than the socket buffers take (some
// 4 MiB on loopback): the answers that do not fit wait in the broker,
// holding the partition's files, until c reads them or closes.
func (h *holdsRun) fetchToStall(tp *holdsTopic, c *holdsConn) {
	h.stats["fetch to stall"]++
	index := int32(h.rng.IntN(len(tp.parts)))
	pm := tp.parts[index]
	if pm.bytes < 256<<10 {
		h.produceTo(tp, index, true)
		if pm.bytes == 0 {
			return // not served yet: an earlier generation's partition is closing
		}
	}
	const want = 8 << 20
	for range min(want/pm.bytes+1, 24) {
		f := &holdsFetch{topic: tp.name, gen: tp.gen, maxBytes: 64 << 20,
			parts: []holdsFetchPart{{index: index, maxBytes: 16 << 20, sendEnd: int64(len(pm.values)), served: pm.served}}}
		f.corr = c.send(&fb.MessageT{Type: fb.MessageFetchRequest, Value: &fb.FetchRequestT{ReplicaId: -1, MaxBytes: f.maxBytes,
			Topics: []*fb.FetchTopicT{{Name: tp.name, Partitions: []*fb.FetchPartitionT{{Partition: index,
				PartitionMaxBytes: f.parts[0].maxBytes, CurrentLeaderEpoch: -1, LogStartOffset: -1}}}}}})
		c.pending = append(c.pending, f)
		h.logf("on %s, left unread: fetch %s", c.name, f)
	}
}

// resolve ends a connection's unread answers: reads them all, or reads
// some and part of the next then drops the connection, or drops it.
func (h *holdsRun) resolve(c *holdsConn) {
	x := h.rng.IntN(10)
	switch {
	case x < 4:
		h.stats["unread read whole"]++
		h.logf("on %s, read the %d answers unread", c.name, len(c.pending))
		for _, f := range c.pending {
			env, trailing := h.recv(c, f.corr)
			h.check(f, env, trailing)
		}
		c.pending = nil
		return
	case x < 7:
		h.stats["unread read partly"]++
		cut := h.rng.IntN(len(c.pending))
		h.logf("on %s, read %d of the %d answers unread and part of the next", c.name, cut, len(c.pending))
		for _, f := range c.pending[:cut] {
			env, trailing := h.recv(c, f.corr)
			h.check(f, env, trailing)
		}
		var prefix [4]byte
		if h.rng.IntN(4) == 0 {
			if _, err := io.ReadFull(c.conn, prefix[:h.rng.IntN(5)]); err != nil {
				h.fatalf("read part of an answer: %v", err)
			}
			break
		}
		env := h.readEnvelope(c, c.pending[cut].corr)
		fr, err := env.FetchResponse()
		if err != nil {
			h.fatalf("on %s, fetch answer %d: %v", c.name, c.pending[cut].corr, err)
		}
		tb, err := schema.FetchTrailingBytes(&fr, 0)
		if err != nil {
			h.fatalf("on %s, fetch answer %d: %v", c.name, c.pending[cut].corr, err)
		}
		if _, err := io.CopyN(io.Discard, c.conn, h.rng.Int64N(tb+1)); err != nil {
			h.fatalf("read part of an answer: %v", err)
		}
	default:
		h.stats["unread dropped"]++
	}
	h.drop(c)
}

// halfRequest writes part of a request and closes the connection.
func (h *holdsRun) halfRequest() {
	tp := h.liveTopic()
	if tp == nil {
		return
	}
	h.stats["half request"]++
	c := h.conn()
	m := produceMsg(fb.AcksAll, tp.name, 0, batch(h.t, 0, 3, 1))
	if h.rng.IntN(2) == 0 {
		_, m = h.newFetch(tp, false)
	}
	c.corr++
	wire := c.enc.Encode(&schema.EnvelopeHeader{CorrelationID: c.corr, ClientID: "test"}, m)
	part := h.rng.IntN(len(wire))
	if _, err := c.conn.Write(wire[:part]); err != nil {
		h.fatalf("write: %v", err)
	}
	h.logf("on %s, %d bytes of a %d-byte %v request", c.name, part, len(wire), m.Type)
	h.drop(c)
}

// fetchThenClose sends fetches and closes the connection at once, before
// or while the broker answers.
func (h *holdsRun) fetchThenClose() {
	tp := h.liveTopic()
	if tp == nil {
		return
	}
	h.stats["fetch then close"]++
	c := h.conn()
	for range 1 + h.rng.IntN(3) {
		f, m := h.newFetch(tp, h.rng.IntN(2) == 0)
		c.send(m)
		h.logf("on %s, fetch %s, then close", c.name, f)
	}
	h.drop(c)
}

func (f *holdsFetch) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (gen %d) max %d:", f.topic, f.gen, f.maxBytes)
	for _, p := range f.parts {
		fmt.Fprintf(&b, " [%d at %d max %d, %d records]", p.index, p.offset, p.maxBytes, p.sendEnd)
	}
	return b.String()
}

// call sends a request on c and reads its answer.
func (h *holdsRun) call(c *holdsConn, m *fb.MessageT, format string, args ...any) (*fb.EnvelopeT, []byte) {
	h.t.Helper()
	h.logf("on %s, %s", c.name, fmt.Sprintf(format, args...))
	env, trailing := h.recv(c, c.send(m))
	if env.Message == nil || env.Message.Type != m.Type+1 {
		h.fatalf("on %s: answer %v (error %v) to a %v", c.name, env.Message, env.ErrorCode, m.Type)
	}
	return env, trailing
}

// recv reads the answer to request corr on c: its envelope and, for a
// fetch, its trailing bytes.
func (h *holdsRun) recv(c *holdsConn, corr int32) (*fb.EnvelopeT, []byte) {
	h.t.Helper()
	env := h.readEnvelope(c, corr)
	var trailing []byte
	if env.MessageType() == fb.MessageFetchResponse {
		fr, err := env.FetchResponse()
		if err != nil {
			h.fatalf("on %s, fetch answer %d: %v", c.name, corr, err)
		}
		tb, err := schema.FetchTrailingBytes(&fr, 0)
		if err != nil {
			h.fatalf("on %s, fetch answer %d: %v", c.name, corr, err)
		}
		trailing = make([]byte, tb)
		if _, err := io.ReadFull(c.conn, trailing); err != nil {
			h.fatalf("on %s, fetch answer %d, %d trailing bytes: %v", c.name, corr, tb, err)
		}
	}
	return env.UnPack(), trailing
}

// readEnvelope reads the envelope of the answer to request corr on c. An
// answer that does not decode, or answers another request, fails the
// test with the bytes it begins with.
func (h *holdsRun) readEnvelope(c *holdsConn, corr int32) *schema.Envelope {
	h.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var prefix [4]byte
	if _, err := io.ReadFull(c.conn, prefix[:]); err != nil {
		h.fatalf("on %s, the answer to request %d: %v", c.name, corr, err)
	}
	n := binary.LittleEndian.Uint32(prefix[:])
	msg := make([]byte, 4+min(n, 64))
	copy(msg, prefix[:])
	if n <= 1<<20 {
		msg = append(msg[:4], make([]byte, n)...)
	}
	if _, err := io.ReadFull(c.conn, msg[4:]); err != nil {
		h.fatalf("on %s, the answer to request %d: %v", c.name, corr, err)
	}
	var env schema.Envelope
	err := errors.New("longer than any envelope")
	if n <= 1<<20 {
		err = env.DecodeResponse(msg)
	}
	if err != nil {
		stray := ""
		if len(msg) >= schema.FrameHeaderSize && binary.LittleEndian.Uint16(msg[4:]) == schema.FrameMagic {
			stray = "; that is a record frame, bytes of a fetch answer, where this answer should begin"
		}
		h.fatalf("on %s, the answer to request %d is no envelope (%v): it begins with %x%s",
			c.name, corr, err, msg[:min(len(msg), 64)], stray)
	}
	if env.CorrelationId() != corr {
		h.fatalf("on %s, answer to request %d, want %d (error %v)", c.name, env.CorrelationId(), corr, env.ErrorCode())
	}
	return &env
}
