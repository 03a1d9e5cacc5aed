package server

import (
	"slices"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/metadata"
)

// Limits of a fetch.
const (
	// fetchWaitMaxMs bounds how long a fetch may long-poll.
	fetchWaitMaxMs = 30_000
	// fetchBytesDefault applies when a request asks for 0 bytes.
	fetchBytesDefault = 1 << 20
	// fetchBytesMax bounds the bytes of one fetch answer, whatever is asked.
	fetchBytesMax = schema.FetchTrailingBytesMax
)

// fetchJob is one fetch request in progress on the shard that received it.
// Each round asks every partition's owning shard for the spans of whole
// frames from the fetch offset; when they hold min_bytes (or the wait runs
// out, or a partition answers with an error) the envelope goes out followed
// by the spans, spliced from the segment files. Otherwise the job waits on
// its partitions until an append wakes it. Only the receiving shard touches
// the job; owners touch only the partition results they are handed.
type fetchJob struct {
	bs         *brokerShard
	ref        ConnRef
	seq        uint64
	h          schema.EnvelopeHeader
	minBytes   int64
	maxBytes   int64
	deadlineMs int64
	parts      []*fetchPart // in the request's order, which the answer keeps
	byOwner    []*fetchPart // the known partitions, grouped by owner shard
	left       int
	round      int
	answered   bool
	waiting    bool
	expired    bool // the wait ran out: the round under way answers
	resp       *fb.FetchResponseT
	start      time.Time
	// parkedAt is when the job last parked; waited sums its time parked,
	// which the request's latency leaves out.
	parkedAt time.Time
	waited   time.Duration
}

// fetchPart is one partition of a fetch and its latest read.
type fetchPart struct {
	topic    string
	index    int32
	epoch    int32 // the caller's leader epoch, -1 when it does not know (KIP-320)
	owner    int
	offset   int64
	maxBytes int64
	result   *fb.FetchPartitionResponseT
	files    []FileSpan
	bytes    int64
	next     int64 // offset after the last frame of files
	metrics  *partitionMetrics
	// holds are the segments whose data files the spans lie in, held open
	// while the fetch may splice from them (segment_holds.go).
	holds []*segmentHold
}

// release lets the partition close the files of the part's spans. It
// may run on any shard: the counts are atomic, and the owner looks at
// them when it closes a deleted segment's file or the partition.
func (fp *fetchPart) release() {
	for _, h := range fp.holds {
		h.release()
	}
	clear(fp.holds)
	fp.holds = fp.holds[:0]
}

// fetchWait is a fetch parked on a partition until an append wakes it.
type fetchWait struct {
	job    *fetchJob
	origin *Shard
	round  int
}

func (bs *brokerShard) fetch(req *Request) {
	m, err := bs.env.FetchRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	job := &fetchJob{bs: bs, ref: req.Conn, seq: req.Seq, h: bs.header(), start: bs.reqStart,
		minBytes: int64(max(m.MinBytes(), 0)), maxBytes: int64(m.MaxBytes())}
	if job.maxBytes <= 0 {
		job.maxBytes = fetchBytesDefault
	}
	job.maxBytes = min(job.maxBytes, fetchBytesMax)
	job.deadlineMs = nowMs() + int64(min(max(m.MaxWaitMs(), 0), fetchWaitMaxMs))
	resp, parts, ok := planFetch(&m, req.Message, bs.b.image.Load(), len(bs.b.shards))
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	job.parts = parts
	job.resp = resp
	for _, fp := range job.parts {
		if fp.owner >= 0 {
			job.byOwner = append(job.byOwner, fp)
		}
	}
	slices.SortStableFunc(job.byOwner, func(a, b *fetchPart) int { return a.owner - b.owner })
	job.runRound()
}

// planFetch walks a fetch request (msg, as m reads it) against the image:
// the answer, and one part per partition in the request's order. ok is
// false when the request breaks the walk's bounds.
func planFetch(m *fb.FetchRequest, msg []byte, im *metadata.Image, shards int) (resp *fb.FetchResponseT, parts []*fetchPart, ok bool) {
	w := newRequestWalk(msg)
	resp = &fb.FetchResponseT{}
	var t fb.FetchTopic
	var p fb.FetchPartition
	for i := range m.TopicsLength() {
		m.Topics(&t, i)
		name, code, ok := w.topic(tableEntryBytes, t.Name())
		if !ok {
			return nil, nil, false
		}
		tr := &fb.FetchTopicResponseT{Name: name}
		resp.Topics = append(resp.Topics, tr)
		info, known := im.TopicByName(name)
		for j := range t.PartitionsLength() {
			if !w.partition() {
				return nil, nil, false
			}
			t.Partitions(&p, j)
			r := &fb.FetchPartitionResponseT{Partition: p.Partition(), ErrorCode: code, HighWatermark: -1, LogStartOffset: -1}
			tr.Partitions = append(tr.Partitions, r)
			fp := &fetchPart{topic: name, index: p.Partition(), epoch: p.CurrentLeaderEpoch(), offset: p.FetchOffset(), maxBytes: int64(p.PartitionMaxBytes()), result: r, owner: -1}
			if fp.maxBytes <= 0 {
				fp.maxBytes = fetchBytesDefault
			}
			switch {
			case code != fb.ErrorCodeNone:
			case !known || p.Partition() < 0 || int(p.Partition()) >= len(info.Partitions):
				r.ErrorCode = fb.ErrorCodeUnknownTopicOrPartition
			default:
				fp.owner = ownerShard(name, p.Partition(), shards)
			}
			parts = append(parts, fp)
		}
	}
	return resp, parts, true
}

// runRound asks every owner shard for its partitions' spans: one message
// there and one back per owner, whatever the number of partitions.
func (job *fetchJob) runRound() {
	bs := job.bs
	job.round++
	job.left = 0
	round := job.round
	origin := bs.sh
	shards := bs.b.srv.Shards()
	for rest := job.byOwner; len(rest) > 0; {
		owner := rest[0].owner
		n := 1
		for n < len(rest) && rest[n].owner == owner {
			n++
		}
		parts := rest[:n]
		rest = rest[n:]
		if owner == bs.id {
			for _, fp := range parts {
				bs.readPart(fp)
			}
			continue
		}
		job.left++
		err := shards[owner].PostFrom(origin, func(osh *Shard) {
			obs := bs.b.shards[osh.ID()]
			obs.sh = osh
			for _, fp := range parts {
				obs.readPart(fp)
			}
			if err := origin.PostFrom(osh, func(*Shard) { job.partRead(round) }); err != nil {
				// The job never hears back; at least the files go.
				for _, fp := range parts {
					fp.release()
				}
				bs.b.log.Error("fetch result not delivered to its shard", "err", err)
			}
		})
		if err != nil {
			for _, fp := range parts {
				fp.result.ErrorCode = fb.ErrorCodeRequestTimedOut
				fp.files, fp.bytes = fp.files[:0], 0
			}
			job.left--
		}
	}
	if job.left == 0 {
		job.roundDone()
	}
}

// partRead counts one owner's answer for the given round.
func (job *fetchJob) partRead(round int) {
	if round != job.round || job.answered {
		return
	}
	if job.left--; job.left == 0 {
		job.roundDone()
	}
}

// readPart reads one partition on its owning shard: its high watermark,
// log start, and the spans from the fetch offset.
func (bs *brokerShard) readPart(fp *fetchPart) {
	fp.release()
	fp.files, fp.bytes, fp.next = fp.files[:0], 0, fp.offset
	p := bs.leaderAt(fp.topic, fp.index)
	r := fp.result
	if p == nil {
		r.ErrorCode = bs.missingPartitionCode(fp.topic, fp.index)
		return
	}
	if p.offline() {
		r.ErrorCode = bs.storageErrorCode(p)
		return
	}
	if code := p.checkLeaderEpoch(fp.epoch); code != fb.ErrorCodeNone {
		r.ErrorCode = code
		return
	}
	fp.metrics = p.metrics
	hw, start := p.highWatermark(), p.log.LogStart()
	r.HighWatermark, r.LogStartOffset = hw, start
	if fp.offset < start || fp.offset > p.log.End() {
		r.ErrorCode = fb.ErrorCodeOffsetOutOfRange
		return
	}
	r.ErrorCode = fb.ErrorCodeNone
	if fp.offset >= hw {
		return
	}
	spans, err := p.log.Read(fp.offset, int(min(fp.maxBytes, fetchBytesMax)), hw)
	if err != nil {
		bs.b.log.Error("fetch read", "topic", fp.topic, "partition", fp.index, "err", err)
		r.ErrorCode = fb.ErrorCodeStorageError
		return
	}
	var last *segment.Segment
	for _, s := range spans {
		fd, err := p.log.Fd(s.Segment)
		if err != nil {
			r.ErrorCode = fb.ErrorCodeStorageError
			fp.files, fp.bytes = fp.files[:0], 0
			clear(fp.holds)
			fp.holds = fp.holds[:0]
			return
		}
		fp.files = append(fp.files, FileSpan{FD: fd, Pos: s.Pos, Len: s.Len})
		fp.bytes += s.Len
		fp.next = s.NextOffset
		// Spans run in log order, so one segment's spans are adjacent.
		if s.Segment != last {
			fp.holds = append(fp.holds, p.holdOf(s.Segment))
			last = s.Segment
		}
	}
	// Held only once every descriptor is known: a part that failed holds
	// nothing. Retention runs on this thread, so none of these segments
	// can be deleted between the read and the hold.
	for _, h := range fp.holds {
		h.take()
	}
}

// Release lets go of the segment files of every part's spans: the shard
// calls it once the answer's spans are sent or dropped (FileHold).
func (job *fetchJob) Release() {
	for _, fp := range job.parts {
		fp.release()
	}
}

// roundDone answers if the fetch has what it waits for, else parks it.
func (job *fetchJob) roundDone() {
	var total int64
	failed := false
	for _, fp := range job.parts {
		total += fp.bytes
		if fp.result.ErrorCode != fb.ErrorCodeNone {
			failed = true
		}
	}
	if total >= max(job.minBytes, 1) || failed || job.expired || nowMs() >= job.deadlineMs {
		job.answer()
		return
	}
	job.park()
}

// park registers the job with every partition's owner; the first append
// (or the deadline) runs another round. A parked job holds no files: the
// round that ends it reads its spans afresh.
func (job *fetchJob) park() {
	bs := job.bs
	job.Release()
	job.waiting = true
	job.parkedAt = time.Now()
	bs.parked = append(bs.parked, job)
	origin := bs.sh
	round := job.round
	for _, fp := range job.parts {
		if fp.owner < 0 {
			continue
		}
		offset := fp.offset
		register := func(osh *Shard) {
			obs := bs.b.shards[osh.ID()]
			p := obs.leaderAt(fp.topic, fp.index)
			if p == nil {
				return
			}
			w := &fetchWait{job: job, origin: origin, round: round}
			if p.highWatermark() > offset || p.offline() {
				// Data arrived between the read and now, or the
				// partition went offline: wake at once.
				w.wake(osh)
				return
			}
			p.waiters = append(p.waiters, w)
		}
		if fp.owner == bs.id {
			register(origin)
			continue
		}
		if err := bs.b.srv.Shards()[fp.owner].PostFrom(origin, register); err != nil {
			bs.b.log.Warn("fetch wait not registered", "err", err)
		}
	}
}

// wake sends a parked fetch back to its shard for another round.
func (w *fetchWait) wake(from *Shard) {
	job, round := w.job, w.round
	if err := w.origin.PostFrom(from, func(*Shard) { job.woken(round) }); err != nil {
		job.bs.b.log.Warn("fetch wake-up not delivered", "err", err)
	}
}

// woken runs another round for a parked job, once per round.
func (job *fetchJob) woken(round int) {
	if job.answered || !job.waiting || round != job.round {
		return
	}
	job.unpark()
	job.runRound()
}

func (job *fetchJob) unpark() {
	job.waiting = false
	job.waited += time.Since(job.parkedAt)
	bs := job.bs
	for i, j := range bs.parked {
		if j == job {
			bs.parked = append(bs.parked[:i], bs.parked[i+1:]...)
			break
		}
	}
}

// expireFetches ends parked fetches whose wait ran out with one more
// round, which answers with whatever it finds since the deadline passed.
func (bs *brokerShard) expireFetches(now int64) {
	for i := 0; i < len(bs.parked); {
		job := bs.parked[i]
		if now < job.deadlineMs {
			i++
			continue
		}
		job.unpark()
		job.expired = true
		job.runRound()
	}
}

// answer sends the envelope and the spans, trimmed to max_bytes (the first
// partition with data keeps at least its first frame, as Kafka does). Each
// partition's entry says where its next fetch starts, so a consumer can
// send that fetch as soon as it has read the envelope.
func (job *fetchJob) answer() {
	job.answered = true
	bs := job.bs
	var files []FileSpan
	var total int64
	for _, fp := range job.parts {
		fp.result.FramesBytes = 0
		fp.result.NextFetchOffset = -1
		if fp.result.ErrorCode != fb.ErrorCodeNone {
			continue
		}
		fp.result.NextFetchOffset = fp.offset
		if fp.bytes == 0 {
			continue
		}
		if total > 0 && total+fp.bytes > job.maxBytes {
			continue
		}
		if len(fp.holds) == 0 {
			panic("server: invariant: a fetch answers with spans of files it does not hold")
		}
		fp.result.FramesBytes = uint32(fp.bytes)
		fp.result.NextFetchOffset = fp.next
		files = append(files, fp.files...)
		total += fp.bytes
		if fp.metrics != nil {
			fp.metrics.sent(bs.id, fp.bytes)
		}
	}
	msg := bs.enc.Encode(&job.h, &fb.MessageT{Type: fb.MessageFetchResponse, Value: job.resp})
	if len(files) == 0 {
		job.Release() // parts trimmed by max_bytes may still hold files
		bs.sh.RespondFiles(job.ref, job.seq, msg, nil, nil)
	} else {
		bs.sh.RespondFiles(job.ref, job.seq, msg, files, job)
	}
	bs.b.metrics.forShard(bs.id).answeredAfterWait(fb.ApiKeyFetch, job.start, job.waited)
}

// wakeWaiters wakes every fetch parked on the partition.
func (p *partition) wakeWaiters() {
	if len(p.waiters) == 0 {
		return
	}
	from := p.shard
	for _, w := range p.waiters {
		w.wake(from)
	}
	clear(p.waiters)
	p.waiters = p.waiters[:0]
}

// failWaiters wakes the parked fetches of a partition that is going away;
// their next round finds it gone and answers with an error.
func (p *partition) failWaiters() { p.wakeWaiters() }
