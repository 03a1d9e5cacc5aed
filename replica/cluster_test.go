package replica

import (
	"fmt"
	"slices"
	"strings"
)

// This file is the simulated cluster that both the seeded simulation
// (sim_test.go) and the scripts (script_test.go) drive: replicas with
// their logs, a network of messages in flight, and a model of the
// controller. It is deterministic: nothing in it draws randomness or
// iterates a map, so a driver's choices alone decide a run.

// controllerID addresses the controller on the simulated network.
const controllerID int32 = -2

// simRec is one offset of a simulated log: the leader epoch its batch was
// written in and the batch it belongs to. Two replicas agree byte for byte
// at an offset when their simRecs are equal.
//
// Offsets below a replica's start are gone (goneBatch): trimmed from a
// leader as DeleteRecords or retention does (their epochs stay known, as
// the broker's epoch file keeps the entry covering the log start), or
// below a follower's reset (nothing is known of them: NoEpoch).
type simRec struct {
	Epoch int32
	Batch int64 // unique per produced batch
	Base  int64
	Count int64
}

// goneBatch marks an offset below a replica's log start.
const goneBatch = -1

type simReplica struct {
	id      int32
	up      bool
	p       *Partition
	log     []simRec
	start   int64 // the log start: offsets below it are goneBatch
	durable int64 // the log's durable prefix: what a crash keeps
	hwCkpt  int64 // the checkpointed high watermark (at each sync)
	lastHW  int64 // the machine's high watermark at the last check
	role    Role
	images  []Image // published to this replica, not yet delivered
}

// simStats counts what a run exercised, so that a test can show it did.
type simStats struct {
	truncations, elections, elrElections, isrChanges, crashes, acked, trims, resets int
	answers                                                                         [16]int
}

func (s *simStats) add(o simStats) {
	s.truncations += o.truncations
	s.elections += o.elections
	s.elrElections += o.elrElections
	s.isrChanges += o.isrChanges
	s.crashes += o.crashes
	s.acked += o.acked
	s.trims += o.trims
	s.resets += o.resets
	for i := range s.answers {
		s.answers[i] += o.answers[i]
	}
}

type envelope struct {
	from, to int32
	msg      any // a Msg, or an AlterPartition on its way to the controller
}

func (e envelope) String() string {
	switch m := e.msg.(type) {
	case FetchRequest:
		return fmt.Sprintf("fetch %d->%d e%d g%d/%d log-end=%d last-epoch=%d durable=%d window=[%d,%d)",
			e.from, e.to, m.CurrentLeaderEpoch, m.Gen, m.Seq, m.LogEnd, m.LastFetchedEpoch, m.DurableEnd, m.WindowStart, m.WindowEnd)
	case FetchResponse:
		s := fmt.Sprintf("response %d->%d e%d g%d/%d", e.from, e.to, m.LeaderEpoch, m.Gen, m.Seq)
		switch {
		case m.Err != ErrNone:
			return s + " " + m.Err.String()
		case m.Diverging != nil:
			return s + fmt.Sprintf(" diverging epoch=%d end=%d", m.Diverging.Epoch, m.Diverging.EndOffset)
		}
		return s + fmt.Sprintf(" hw=%d leader-end=%d window=[%d,%d) limit=%d batches=%d",
			m.HighWatermark, m.LogEnd, m.WindowStart, m.WindowEnd, m.Limit, len(m.Batches))
	case AlterPartition:
		return fmt.Sprintf("alter-partition %d->controller e%d pe%d isr=%v", e.from, m.LeaderEpoch, m.PartitionEpoch, m.ISR)
	case AlterPartitionResult:
		return fmt.Sprintf("alter-result controller->%d %s pe%d isr=%v", e.to, m.Err, m.PartitionEpoch, m.ISR)
	}
	return fmt.Sprintf("%d->%d %T", e.from, e.to, e.msg)
}

// simController is the controller's model: the partition's epochs,
// leader, ISR and eligible leader replicas (KIP-966), with AlterPartition
// as a compare-and-set on the partition epoch and elections that are
// never unclean.
type simController struct {
	replicas       []int32
	leader         int32
	leaderEpoch    int32
	partitionEpoch int32
	isr, elr       []int32
	minInsync      int
	fenced         map[int32]bool
}

func (c *simController) image() Image {
	var fenced []int32
	for _, id := range c.replicas {
		if c.fenced[id] {
			fenced = append(fenced, id)
		}
	}
	return Image{Leader: c.leader, LeaderEpoch: c.leaderEpoch, PartitionEpoch: c.partitionEpoch,
		Replicas: slices.Clone(c.replicas), ISR: slices.Clone(c.isr), MinInsync: c.minInsync, Ineligible: fenced}
}

// setISR moves the ISR to isr with KIP-966's rule for the ELR: members
// that leave an ISR that is then below min.insync.replicas become
// eligible (the high watermark cannot pass what they hold while the ISR
// stays that small); once the ISR is back at min.insync.replicas the ELR
// is empty; a member of the ISR is never in the ELR.
func (c *simController) setISR(isr []int32) {
	removed := slices.DeleteFunc(slices.Clone(c.isr), func(id int32) bool { return slices.Contains(isr, id) })
	if len(isr) < c.minInsync {
		for _, id := range removed {
			if !slices.Contains(c.elr, id) {
				c.elr = append(c.elr, id)
			}
		}
	} else {
		c.elr = nil
	}
	c.elr = slices.DeleteFunc(c.elr, func(id int32) bool { return slices.Contains(isr, id) })
	c.isr = inReplicaOrder(c.replicas, isr)
	c.elr = inReplicaOrder(c.replicas, c.elr)
}

func (c *simController) alter(from int32, req AlterPartition) AlterPartitionResult {
	res := AlterPartitionResult{LeaderEpoch: c.leaderEpoch, PartitionEpoch: c.partitionEpoch, ISR: slices.Clone(c.isr)}
	seen := map[int32]bool{}
	switch {
	case req.LeaderEpoch < c.leaderEpoch:
		res.Err = ErrFencedLeaderEpoch
	case req.LeaderEpoch > c.leaderEpoch:
		res.Err = ErrUnknownLeaderEpoch
	case from != c.leader:
		res.Err = ErrNotLeaderOrFollower
	case req.PartitionEpoch != c.partitionEpoch:
		res.Err = ErrInvalidUpdateVersion
	case len(req.ISR) == 0 || !slices.Contains(req.ISR, c.leader):
		res.Err = ErrIneligibleReplica
	}
	for _, id := range req.ISR {
		if seen[id] || !slices.Contains(c.replicas, id) || (c.fenced[id] && !slices.Contains(c.isr, id)) {
			res.Err = max(res.Err, ErrIneligibleReplica)
		}
		seen[id] = true
	}
	if res.Err != ErrNone {
		return res
	}
	// Accepted, the partition epoch moves even when the ISR does not:
	// that is what settles every other copy of a request sent on the
	// old epoch.
	c.setISR(req.ISR)
	c.partitionEpoch++
	return AlterPartitionResult{LeaderEpoch: c.leaderEpoch, PartitionEpoch: c.partitionEpoch, ISR: slices.Clone(c.isr)}
}

// elect picks a leader: the first live ISR member in replica order, else
// the first live eligible leader replica, whose ISR is then itself alone
// (the others join the ELR: they held the high watermark when they left).
// With neither, the partition has no leader. Never unclean.
func (c *simController) elect() {
	c.leaderEpoch++
	c.partitionEpoch++
	for _, id := range c.replicas {
		if slices.Contains(c.isr, id) && !c.fenced[id] {
			c.leader = id
			return
		}
	}
	for _, id := range c.replicas {
		if slices.Contains(c.elr, id) && !c.fenced[id] {
			c.leader = id
			elr := append(slices.Clone(c.elr), c.isr...)
			c.isr = []int32{id}
			c.elr = inReplicaOrder(c.replicas, slices.DeleteFunc(elr, func(x int32) bool { return x == id }))
			return
		}
	}
	c.leader = NoLeader
}

// fence takes a broker out of service, as metadata's fencing does: it
// leaves the ISR unless it is the last member, and a partition it led
// elects another leader.
func (c *simController) fence(id int32) {
	if c.fenced[id] {
		return
	}
	c.fenced[id] = true
	changed := false
	if slices.Contains(c.isr, id) && len(c.isr) > 1 {
		c.setISR(slices.DeleteFunc(slices.Clone(c.isr), func(x int32) bool { return x == id }))
		changed = true
	}
	if c.leader == id {
		c.elect()
		return
	}
	if changed {
		c.partitionEpoch++
	}
}

func (c *simController) unfence(id int32) {
	if !c.fenced[id] {
		return
	}
	c.fenced[id] = false
	if c.leader == NoLeader {
		c.elect()
	}
}

// cluster is the whole simulated partition.
type cluster struct {
	cfg       Config // per replica, ID set on each
	replicas  []*simReplica
	ctrl      *simController
	net       []envelope
	nowMs     int64
	batches   int64 // the last batch id handed out
	answers   []string
	acked     []ackedBatch    // acknowledged acks=all produces
	sizes     map[int64]int64 // batch id -> count, for the acked check
	lastCtrl  string          // the last image published, printed, with the ELR
	lastImage Image
	lastELR   []int32
	// maxBatches, when positive, makes a leader's driver stop a fetch
	// answer after that many batches (a byte limit).
	maxBatches   int
	rareWeights  [5]int   // see randomStep in sim_test.go
	committedLog []simRec // see commit in sim_test.go
	stats        simStats
	trace        func(format string, args ...any)
}

func newCluster(n, minInsync int, cfg Config) *cluster {
	c := &cluster{cfg: cfg, sizes: map[int64]int64{}, trace: func(string, ...any) {}}
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i + 1)
	}
	c.ctrl = &simController{replicas: ids, leader: ids[0], isr: slices.Clone(ids), minInsync: minInsync, fenced: map[int32]bool{}}
	for _, id := range ids {
		r := &simReplica{id: id}
		c.replicas = append(c.replicas, r)
		c.start(r)
	}
	c.publish()
	return c
}

func (c *cluster) replica(id int32) *simReplica { return c.replicas[id-1] }

// start opens a replica's machine on its log, as a broker does on
// restart: the epoch cache rebuilt from the records' epochs, the high
// watermark from its checkpoint.
func (c *cluster) start(r *simReplica) {
	var epochs []EpochStart
	for off, rec := range r.log {
		if rec.Epoch == NoEpoch {
			continue // below a reset: nothing is known of it
		}
		if len(epochs) == 0 || epochs[len(epochs)-1].Epoch != rec.Epoch {
			epochs = append(epochs, EpochStart{Epoch: rec.Epoch, Start: int64(off)})
		}
	}
	cfg := c.cfg
	cfg.ID = r.id
	// As the broker's epoch file: entries wholly below the log start go,
	// the one covering it stays.
	first := 0
	for first+1 < len(epochs) && epochs[first+1].Start <= r.start {
		first++
	}
	epochs = epochs[first:]
	hw := min(r.hwCkpt, int64(len(r.log)))
	p, err := NewPartition(cfg, LogState{LogStart: r.start, LogEnd: int64(len(r.log)), DurableEnd: r.durable, HighWatermark: hw, Epochs: epochs})
	if err != nil {
		panic(err)
	}
	p.Tick(c.nowMs)
	r.p, r.up, r.lastHW, r.role = p, true, hw, RoleNone
	c.drain(r)
}

// publish queues the controller's image for every replica (the metadata
// log reaches each broker in order, at its own pace).
func (c *cluster) publish() {
	im := c.ctrl.image()
	s := fmt.Sprintf("%+v elr=%v", im, c.ctrl.elr)
	if s == c.lastCtrl {
		return
	}
	if c.lastCtrl != "" {
		switch {
		case im.LeaderEpoch != c.lastImage.LeaderEpoch:
			c.stats.elections++
			if im.Leader != c.lastImage.Leader && slices.Contains(c.lastELR, im.Leader) {
				c.stats.elrElections++
			}
		case !slices.Equal(im.ISR, c.lastImage.ISR):
			c.stats.isrChanges++
		}
	}
	c.lastImage, c.lastELR = im, slices.Clone(c.ctrl.elr)
	c.lastCtrl = s
	c.trace("controller: leader=%d epoch=%d pe=%d isr=%v elr=%v fenced=%v", im.Leader, im.LeaderEpoch, im.PartitionEpoch, im.ISR, c.ctrl.elr, im.Ineligible)
	for _, r := range c.replicas {
		if r.up {
			r.images = append(r.images, im)
		}
	}
}

// drain carries out a replica's Ready, as its shard would.
func (c *cluster) drain(r *simReplica) {
	rd := r.p.Ready()
	if rd.HasTruncate {
		c.trace("replica %d truncates to %d", r.id, rd.Truncate)
		c.stats.truncations++
		r.log = r.log[:rd.Truncate]
		r.durable = min(r.durable, rd.Truncate)
		r.start = min(r.start, rd.Truncate)
	}
	if rd.HasReset {
		c.trace("replica %d resets its log to start at %d", r.id, rd.Reset)
		c.stats.resets++
		r.log = slices.Repeat([]simRec{{Epoch: NoEpoch, Batch: goneBatch}}, int(rd.Reset))
		r.start, r.durable = rd.Reset, rd.Reset
	}
	for _, b := range rd.Appends {
		id := b.Payload.(int64)
		for i := int64(0); i < b.Count; i++ {
			r.log = append(r.log, simRec{Epoch: b.Epoch, Batch: id, Base: b.Base, Count: b.Count})
		}
	}
	for _, f := range rd.Fetches {
		c.send(envelope{from: r.id, to: f.To, msg: f})
	}
	for _, resp := range rd.Responses {
		if resp.Err == ErrNone && resp.Diverging == nil {
			resp.Batches, resp.Limit = c.read(r, resp.WindowStart, resp.Limit)
		}
		c.send(envelope{from: r.id, to: resp.To, msg: resp})
	}
	if rd.AlterPartition != nil {
		c.send(envelope{from: r.id, to: controllerID, msg: *rd.AlterPartition})
	}
	for _, a := range rd.Answers {
		c.answers = append(c.answers, fmt.Sprintf("replica %d answers produce %d: %s base=%d", r.id, a.ID, a.Err, a.Base))
	}
	r.p.Advance()
	c.recordAcks(rd.Answers, r.p.Status().LeaderEpoch)
}

func (c *cluster) send(e envelope) {
	c.trace("  send %s", e)
	c.net = append(c.net, e)
}

// read is the leader's driver filling a fetch answer: the batches whose
// base offset is in [from, limit), stopping after maxBatches.
func (c *cluster) read(r *simReplica, from, limit int64) ([]Batch, int64) {
	var out []Batch
	if from < r.start {
		c.fail("replica %d serves a fetch from %d, below its log start %d", r.id, from, r.start)
	}
	for off := from; off < limit && off < int64(len(r.log)); {
		rec := r.log[off]
		if rec.Base != off {
			off = rec.Base + rec.Count
			continue
		}
		if c.maxBatches > 0 && len(out) == c.maxBatches {
			return out, off
		}
		out = append(out, Batch{Base: rec.Base, Count: rec.Count, Epoch: rec.Epoch, Payload: rec.Batch})
		off += rec.Count
	}
	return out, limit
}

// ackedBatch is an acknowledged acks=all produce: its answer (the batch
// id in ID) and the leader epoch of the replica that answered.
type ackedBatch struct {
	ProduceAnswer
	epoch int32
}

func (c *cluster) recordAcks(answers []ProduceAnswer, epoch int32) {
	for _, a := range answers {
		if a.Err == ErrNone && c.sizes[int64(a.ID)] < 0 {
			// acks=all batches are stored with a negated size.
			c.acked = append(c.acked, ackedBatch{a, epoch})
		}
		c.stats.answers[a.Err]++
	}
}

// produce sends a batch of count offsets to replica to.
func (c *cluster) produce(to int32, acks int8, count int64) int64 {
	return c.produceWithTimeout(to, acks, count, 0)
}

func (c *cluster) produceWithTimeout(to int32, acks int8, count, timeoutMs int64) int64 {
	c.batches++
	id := c.batches
	c.sizes[id] = count
	if acks == AcksAll {
		c.sizes[id] = -count
	}
	r := c.replica(to)
	if !r.up {
		return id
	}
	c.trace("produce #%d acks=%d count=%d to %d", id, acks, count, to)
	r.p.Step(Produce{ID: uint64(id), Acks: acks, Count: count, Payload: id, TimeoutMs: timeoutMs})
	c.drain(r)
	return id
}

// deliver hands the message at index i of the network to its receiver.
func (c *cluster) deliver(i int, keep bool) {
	e := c.net[i]
	if !keep {
		c.net = slices.Delete(c.net, i, i+1)
	}
	c.trace("deliver %s", e)
	if e.to == controllerID {
		res := c.ctrl.alter(e.from, e.msg.(AlterPartition))
		c.send(envelope{from: controllerID, to: e.from, msg: res})
		c.publish()
		return
	}
	r := c.replica(e.to)
	if !r.up {
		return
	}
	r.p.Step(e.msg.(Msg))
	c.drain(r)
}

// deliverImage hands a replica the oldest image published to it.
func (c *cluster) deliverImage(r *simReplica) {
	if !r.up || len(r.images) == 0 {
		return
	}
	im := r.images[0]
	r.images = r.images[1:]
	c.trace("image to %d: leader=%d epoch=%d pe=%d isr=%v", r.id, im.Leader, im.LeaderEpoch, im.PartitionEpoch, im.ISR)
	r.p.Step(im)
	c.drain(r)
}

// sync makes a replica's log durable and tells its machine.
func (c *cluster) sync(r *simReplica) {
	if !r.up {
		return
	}
	r.durable = int64(len(r.log))
	r.p.Step(LogDurable{End: r.durable})
	c.drain(r)
	r.hwCkpt = min(r.p.Status().HighWatermark, r.durable)
}

func (c *cluster) tick(ms int64) {
	c.nowMs += ms
	for _, r := range c.replicas {
		if r.up {
			r.p.Tick(c.nowMs)
			c.drain(r)
		}
	}
}

// crash stops a replica: its log keeps only its durable prefix, its
// undelivered images are gone. The controller notices later (fence).
func (c *cluster) crash(r *simReplica) {
	if !r.up {
		return
	}
	c.trace("crash %d (log %d, durable %d)", r.id, len(r.log), r.durable)
	c.stats.crashes++
	r.up, r.p, r.images = false, nil, nil
	// The log start is kept (a checkpoint records it).
	r.log = r.log[:max(r.durable, r.start)]
}

// trim moves a leader's log start to to, as DeleteRecords or retention
// does; never past its high watermark, and only forward.
func (c *cluster) trim(r *simReplica, to int64) {
	if !r.up || r.p.Status().Role != RoleLeader || to <= r.start || to > r.p.Status().HighWatermark {
		return
	}
	c.trace("replica %d trims its log to start at %d", r.id, to)
	c.stats.trims++
	for off := r.start; off < to; off++ {
		r.log[off] = simRec{Epoch: r.log[off].Epoch, Batch: goneBatch} // its epoch stays in the epoch file
	}
	r.start = to
	r.p.Step(LogStartMoved{Start: to})
	c.drain(r)
}

func (c *cluster) fence(id int32) {
	c.trace("fence %d", id)
	c.ctrl.fence(id)
	c.publish()
}

// unfence returns a running replica to service (its session was renewed
// after a lapse: a network partition from the controller healed).
func (c *cluster) unfence(id int32) {
	if !c.replica(id).up || !c.ctrl.fenced[id] {
		return
	}
	c.trace("unfence %d", id)
	c.ctrl.unfence(id)
	c.publish()
}

// restart starts a replica again as a new incarnation: the controller
// fences the old one if it had not, and unfences the new one.
func (c *cluster) restart(r *simReplica) {
	if r.up {
		return
	}
	c.trace("restart %d (log %d)", r.id, len(r.log))
	c.ctrl.fence(r.id)
	c.publish()
	c.start(r)
	c.ctrl.unfence(r.id)
	c.publish()
	if len(r.images) == 0 {
		// A new incarnation reads the metadata from the latest image.
		r.images = []Image{c.ctrl.image()}
	}
}

func formatLog(log []simRec) string {
	var b strings.Builder
	for off := 0; off < len(log); {
		rec := log[off]
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:e%d#%d", rec.Base, rec.Epoch, rec.Batch)
		if rec.Count > 1 {
			fmt.Fprintf(&b, "x%d", rec.Count)
		}
		off = int(rec.Base + rec.Count)
		if off > len(log) { // a batch cut by a crash cannot happen: batches are written whole
			panic("replica: invariant: a simulated batch split")
		}
	}
	return "[" + b.String() + "]"
}
