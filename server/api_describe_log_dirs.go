package server

import (
	"github.com/strata-db/strata/schema/fb"
	"golang.org/x/sys/unix"
	"slices"

	"github.com/strata-db/strata/server/metadata"
)

// DescribeLogDirs: this broker's data folder, its file system's size and
// free space, and the partitions of the asked topics (absent: every topic)
// that this broker keeps, with their bytes of segment data and, where it
// leads them, their produce rates (partition_rate.go). Each partition
// is read on its owning shard; the file system is asked off the shards
// (statfs is a blocking call, and a shard never blocks).
func (bs *brokerShard) describeLogDirs(req *Request) {
	m, err := bs.env.DescribeLogDirsRequest()
	if err != nil {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	resp, works, ok := planDescribeLogDirs(&m, req.Message, bs.b.image.Load(), bs.b.cfg.NodeID, len(bs.b.shards))
	if !ok {
		bs.respondError(req, fb.ErrorCodeInvalidRequest)
		return
	}
	resp.LogDir = bs.b.cfg.DataDir
	h, ref, seq, start := bs.header(), req.Conn, req.Seq, bs.reqStart
	dir := bs.b.cfg.DataDir
	answer := func() {
		sh := bs.sh
		go func() {
			var st unix.Statfs_t
			if err := unix.Statfs(dir, &st); err == nil {
				resp.TotalBytes = int64(st.Blocks) * st.Bsize
				resp.UsableBytes = int64(st.Bavail) * st.Bsize
			} else {
				resp.ErrorCode = fb.ErrorCodeStorageError
			}
			if err := sh.Post(func(sh *Shard) {
				bs.sh = sh
				sh.Respond(ref, seq, bs.enc.Encode(&h, &fb.MessageT{Type: fb.MessageDescribeLogDirsResponse, Value: resp}))
				bs.observeAnswer(h.ApiKey, start)
			}); err != nil {
				bs.b.log.Warn("describe log dirs answer not delivered", "err", err)
			}
		}()
	}
	left := len(works)
	if left == 0 {
		answer()
		return
	}
	for _, w := range works {
		bs.onOwner(w.owner, func(obs *brokerShard) {
			obs.logDirPartition(w.topic, w.index, w.result)
		}, func() {
			if left--; left == 0 {
				answer()
			}
		})
	}
}

// logDirPartition fills one partition's entry on its owning shard.
func (bs *brokerShard) logDirPartition(topic string, index int32, r *fb.LogDirPartitionT) {
	p := bs.partitionAt(topic, index)
	switch {
	case p == nil:
		r.ErrorCode = bs.missingPartitionCode(topic, index)
	case p.offline():
		r.ErrorCode = bs.storageErrorCode(p)
	default:
		r.SizeBytes = p.log.Size()
		if rate, ok := p.inRates(nowMs()); ok {
			r.BytesInRate, r.RecordsInRate = rate.BytesPerSec, rate.RecordsPerSec
		}
	}
}

// logDirWork is one partition to read on its owner.
type logDirWork struct {
	owner  int
	topic  string
	index  int32
	result *fb.LogDirPartitionT
}

// planDescribeLogDirs walks the request against the image: the answer's
// topics, in the request's order (a name asked twice once), and the
// partitions to read. ok is false when the request breaks the walk's bounds.
func planDescribeLogDirs(m *fb.DescribeLogDirsRequest, msg []byte, im *metadata.Image, self int32, shards int) (resp *fb.DescribeLogDirsResponseT, works []logDirWork, ok bool) {
	resp = &fb.DescribeLogDirsResponseT{TotalBytes: -1, UsableBytes: -1}
	// keep answers for one topic: the partitions of it this broker is a
	// replica of, leader or follower (the partitions it keeps a log of).
	keep := func(t metadata.TopicInfo) {
		tr := &fb.LogDirTopicT{Name: t.Name, Partitions: []*fb.LogDirPartitionT{}}
		resp.Topics = append(resp.Topics, tr)
		for _, p := range t.Partitions {
			if !slices.Contains(p.Replicas, self) {
				continue
			}
			r := &fb.LogDirPartitionT{Partition: p.Partition, SizeBytes: -1, BytesInRate: -1, RecordsInRate: -1}
			tr.Partitions = append(tr.Partitions, r)
			works = append(works, logDirWork{owner: ownerShard(t.Name, p.Partition, shards), topic: t.Name, index: p.Partition, result: r})
		}
	}
	if !hasLogDirTopicList(m) {
		for _, t := range im.Topics() {
			keep(t)
		}
		return resp, works, true
	}
	w := newRequestWalk(msg)
	for i := range m.TopicsLength() {
		name, code, ok := w.topic(vectorSlotBytes, m.Topics(i))
		if !ok {
			return nil, nil, false
		}
		if code != fb.ErrorCodeNone {
			resp.Topics = append(resp.Topics, &fb.LogDirTopicT{Name: name, ErrorCode: code})
			continue
		}
		if !w.claimTopic(name) {
			continue // asked twice: answered once
		}
		t, known := im.TopicByName(name)
		if !known {
			resp.Topics = append(resp.Topics, &fb.LogDirTopicT{Name: name, ErrorCode: fb.ErrorCodeUnknownTopicOrPartition})
			continue
		}
		keep(t)
	}
	return resp, works, true
}

// hasLogDirTopicList tells an absent topic list (every topic) from an
// empty one (none).
func hasLogDirTopicList(m *fb.DescribeLogDirsRequest) bool {
	t := m.Table()
	return t.Offset(4) != 0
}
