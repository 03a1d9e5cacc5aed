package server

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/strata-db/strata/replica"
	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// ReplicaFetch, the follower's side. Each shard keeps one outbound
// connection per leader broker it fetches from, carrying the fetches of
// every partition it owns that this broker follows there, several windows
// per partition in flight. Answers come back in any order and are matched
// by correlation id. A connection that closes answers every fetch it
// carried with an error, so the partitions' pipelines start again (after
// the machine's backoff) on a new connection instead of waiting for their
// fetch timeout.

const (
	// replicaFetchPendingMax bounds the fetches in flight on one
	// connection: the partitions of a shard led by one broker times the
	// windows each keeps in flight.
	replicaFetchPendingMax = 1 << 16
	// replicaConnIdleTimeoutMs closes a connection that has fetches in
	// flight and has received nothing for this long: every fetch parks
	// for at most fetchWaitMaxMs.
	replicaConnIdleTimeoutMs = fetchWaitMaxMs + 10_000
	// replicaConnectTimeoutMs bounds a connect to a leader.
	replicaConnectTimeoutMs = 3_000
)

// replicaFetcher is one shard's follower fetches.
type replicaFetcher struct {
	bs       *brokerShard
	conns    map[int32]*fetchConn // by leader broker id
	byRef    map[OutRef]*fetchConn
	nextCorr int32
	enc      *schema.Encoder
	env      schema.Envelope
}

// fetchConn is the connection to one leader broker.
type fetchConn struct {
	leader    int32
	ref       OutRef
	connected bool
	// queued are requests encoded before the connect completed.
	queued  []byte
	pending map[int32]pendingFetch // by correlation id
}

// pendingFetch is one fetch in flight: which partition's, and what it asked.
type pendingFetch struct {
	topic   string
	index   int32
	topicID metadata.TopicID
	req     replica.FetchRequest
}

func newReplicaFetcher(bs *brokerShard) *replicaFetcher {
	return &replicaFetcher{bs: bs, conns: map[int32]*fetchConn{}, byRef: map[OutRef]*fetchConn{}, enc: schema.NewEncoder()}
}

// send puts one of p's fetches on the wire. It runs inside p's Ready, so a
// fetch that cannot go out is answered with an error at the end of the
// turn.
func (f *replicaFetcher) send(p *partition, req replica.FetchRequest) {
	c, err := f.connTo(req.To)
	if err == nil && len(c.pending) >= replicaFetchPendingMax {
		err = errors.New("too many fetches in flight")
	}
	if err != nil {
		f.failLater([]pendingFetch{{topic: p.topic, index: p.index, topicID: p.rep.topicID, req: req}})
		return
	}
	f.nextCorr++
	corr := f.nextCorr
	h := schema.EnvelopeHeader{ApiKey: fb.ApiKeyReplicaFetch, CorrelationID: corr}
	id := p.rep.topicID
	msg := f.enc.Encode(&h, &fb.MessageT{Type: fb.MessageReplicaFetchRequest, Value: &fb.ReplicaFetchRequestT{
		ReplicaId: req.ReplicaID, Topic: p.topic, TopicId: id[:], Partition: p.index,
		CurrentLeaderEpoch: req.CurrentLeaderEpoch, Gen: req.Gen, Seq: req.Seq,
		LogEnd: req.LogEnd, LastFetchedEpoch: req.LastFetchedEpoch, DurableEnd: req.DurableEnd,
		WindowStart: req.WindowStart, WindowEnd: req.WindowEnd,
		MaxWaitMs: int32(min(req.MaxWaitMs, fetchWaitMaxMs)), MaxBytes: replicaFetchBytesMax,
		LogStartOffset: p.log.LogStart(),
	}})
	c.pending[corr] = pendingFetch{topic: p.topic, index: p.index, topicID: id, req: req}
	if !c.connected {
		c.queued = append(c.queued, msg...)
		return
	}
	if err := f.bs.sh.SendOutbound(c.ref, msg); err != nil {
		f.bs.sh.CloseOutbound(c.ref) // its close answers every pending fetch
	}
}

// connTo returns the connection to a leader, dialling it if there is none.
func (f *replicaFetcher) connTo(leader int32) (*fetchConn, error) {
	if c := f.conns[leader]; c != nil {
		return c, nil
	}
	addr, err := f.leaderAddr(leader)
	if err != nil {
		return nil, err
	}
	ref, err := f.bs.sh.Dial(OutboundConfig{Addr: addr, Handler: f, TailBytes: replicaFetchTail,
		MaxTailBytes: replicaFetchBytesMax + schema.MaxFrameBytes, ConnectTimeoutMs: replicaConnectTimeoutMs,
		IdleTimeoutMs: replicaConnIdleTimeoutMs})
	if err != nil {
		return nil, err
	}
	c := &fetchConn{leader: leader, ref: ref, pending: map[int32]pendingFetch{}}
	f.conns[leader] = c
	f.byRef[ref] = c
	return c, nil
}

// leaderAddr is where a broker listens, from the image.
func (f *replicaFetcher) leaderAddr(id int32) (netip.AddrPort, error) {
	im := f.bs.image
	if im == nil {
		return netip.AddrPort{}, errors.New("no metadata image")
	}
	b, ok := im.Broker(id)
	if !ok || len(b.Listeners) == 0 {
		return netip.AddrPort{}, fmt.Errorf("broker %d has no listener", id)
	}
	l := b.Listeners[0]
	addr, err := netip.ParseAddr(l.Host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("broker %d listens on %q: %w", id, l.Host, err)
	}
	return netip.AddrPortFrom(addr, l.Port), nil
}

// replicaFetchTail is how many frame bytes follow an answer's envelope.
func replicaFetchTail(msg []byte) (int, error) {
	var env schema.Envelope
	if err := env.DecodeResponse(msg); err != nil {
		return 0, err
	}
	if env.MessageType() != fb.MessageReplicaFetchResponse {
		return 0, nil
	}
	m, err := env.ReplicaFetchResponse()
	if err != nil {
		return 0, err
	}
	return int(m.FramesBytes()), nil
}

// OutboundConnected sends what was queued while connecting.
func (f *replicaFetcher) OutboundConnected(ref OutRef) {
	c := f.byRef[ref]
	if c == nil {
		return
	}
	c.connected = true
	if len(c.queued) > 0 {
		msg := c.queued
		c.queued = nil
		if err := f.bs.sh.SendOutbound(ref, msg); err != nil {
			f.bs.sh.CloseOutbound(ref)
		}
	}
}

// OutboundClosed answers every fetch the connection carried with an error.
func (f *replicaFetcher) OutboundClosed(ref OutRef, err error) {
	c := f.byRef[ref]
	if c == nil {
		return
	}
	delete(f.byRef, ref)
	if f.conns[c.leader] == c {
		delete(f.conns, c.leader)
	}
	lost := make([]pendingFetch, 0, len(c.pending))
	for _, pf := range c.pending {
		lost = append(lost, pf)
	}
	if len(lost) > 0 {
		f.bs.b.log.Info("replica fetch connection closed", "leader", c.leader, "fetches", len(lost), "err", err)
	}
	f.failLater(lost)
}

// failLater answers fetches that went nowhere with an error, at the end of
// the turn (the partitions may be inside their Ready now).
func (f *replicaFetcher) failLater(lost []pendingFetch) {
	if len(lost) == 0 {
		return
	}
	bs := f.bs
	bs.sh.Defer(func(sh *Shard) {
		bs.sh = sh
		for _, pf := range lost {
			p := bs.partitionAt(pf.topic, pf.index)
			if p == nil || p.rep == nil || p.rep.topicID != pf.topicID {
				continue
			}
			r := pf.req
			p.stepReplica(replica.FetchResponse{To: r.ReplicaID, From: r.To, LeaderEpoch: r.CurrentLeaderEpoch,
				Gen: r.Gen, Seq: r.Seq, Err: replica.ErrNotLeaderOrFollower, HighWatermark: -1, LogEnd: -1,
				WindowStart: r.WindowStart, WindowEnd: r.WindowEnd, Limit: r.WindowStart})
		}
	})
}

// OutboundMessage applies one answer: its frames are checked (length,
// version, CRC) and copied out of the receive buffer, and the machine gets
// them as batches.
func (f *replicaFetcher) OutboundMessage(ref OutRef, msg, tail []byte) {
	c := f.byRef[ref]
	if c == nil {
		return
	}
	if err := f.env.DecodeResponse(msg); err != nil {
		f.bs.b.log.Warn("replica fetch answer refused", "leader", c.leader, "err", err)
		f.bs.sh.CloseOutbound(ref)
		return
	}
	pf, ok := c.pending[f.env.CorrelationId()]
	if !ok {
		return // answered already (the connection was given up on meanwhile)
	}
	delete(c.pending, f.env.CorrelationId())
	p := f.bs.partitionAt(pf.topic, pf.index)
	if p == nil || p.rep == nil || p.rep.topicID != pf.topicID {
		return
	}
	r := pf.req
	resp := replica.FetchResponse{To: r.ReplicaID, From: r.To, LeaderEpoch: r.CurrentLeaderEpoch, Gen: r.Gen, Seq: r.Seq,
		Err: replica.ErrNotLeaderOrFollower, HighWatermark: -1, LogEnd: -1,
		WindowStart: r.WindowStart, WindowEnd: r.WindowEnd, Limit: r.WindowStart}
	leaderStart := int64(-1)
	if m, err := f.env.ReplicaFetchResponse(); err == nil {
		resp = f.decodeAnswer(&m, r, tail)
		leaderStart = m.LogStartOffset()
	} else if f.env.Err() == nil {
		f.bs.b.log.Warn("replica fetch answer of another kind", "leader", c.leader, "message", f.env.MessageType())
	}
	p.stepReplica(resp)
	if resp.Err == replica.ErrNone && resp.Diverging == nil && resp.LeaderEpoch == r.CurrentLeaderEpoch {
		// The leader's log start moved (DeleteRecords, retention): so
		// does this replica's, so that every replica trims.
		f.bs.followLeaderLogStart(p, leaderStart)
	}
}

// decodeAnswer turns a wire answer into the machine's. An answer that does
// not hold together (frames that fail their check, a window other than the
// one asked) becomes an error answer: the machine starts its pipeline
// again after a backoff.
func (f *replicaFetcher) decodeAnswer(m *fb.ReplicaFetchResponse, r replica.FetchRequest, tail []byte) replica.FetchResponse {
	resp := replica.FetchResponse{To: r.ReplicaID, From: r.To, LeaderEpoch: m.LeaderEpoch(), Gen: m.Gen(), Seq: m.Seq(),
		Err: wireReplicaCode(m.ErrorCode()), HighWatermark: m.HighWatermark(), LogEnd: m.LogEnd(), LogStart: m.LogStartOffset(),
		WindowStart: m.WindowStart(), WindowEnd: m.WindowEnd(), Limit: m.Limit()}
	bad := func(why string, err error) replica.FetchResponse {
		f.bs.b.log.Warn("replica fetch answer refused", "leader", r.To, "why", why, "err", err)
		return replica.FetchResponse{To: r.ReplicaID, From: r.To, LeaderEpoch: r.CurrentLeaderEpoch, Gen: r.Gen, Seq: r.Seq,
			Err: replica.ErrInvalidRequest, HighWatermark: -1, LogEnd: -1,
			WindowStart: r.WindowStart, WindowEnd: r.WindowEnd, Limit: r.WindowStart}
	}
	if m.Gen() != r.Gen || m.Seq() != r.Seq || (resp.Err == replica.ErrNone && (m.WindowStart() != r.WindowStart || m.WindowEnd() != r.WindowEnd)) {
		return bad("not the window asked", nil)
	}
	if resp.Err != replica.ErrNone {
		resp.Limit = resp.WindowStart
		return resp
	}
	if m.HasDiverging() {
		resp.Diverging = &replica.DivergingEpoch{Epoch: m.DivergingEpoch(), EndOffset: m.DivergingEndOffset()}
		return resp
	}
	if len(tail) == 0 {
		return resp
	}
	// One copy of the whole region; each batch's payload is its frame in it,
	// which the log holds until its write completes.
	region := append([]byte(nil), tail...)
	for rest := region; len(rest) > 0; {
		n, err := schema.PeekFrameLength(rest, schema.MaxFrameBytes)
		if err != nil || n > len(rest) {
			return bad("frame length", err)
		}
		h, err := schema.CheckFrame(rest[:n])
		if err != nil {
			return bad("frame check", err)
		}
		resp.Batches = append(resp.Batches, replica.Batch{Base: h.BaseOffset, Count: int64(h.RecordCount),
			Epoch: h.LeaderEpoch, Payload: rest[:n:n]})
		rest = rest[n:]
	}
	return resp
}
