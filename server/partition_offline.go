package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// Fail-stop storage on the broker. When a write, fdatasync, fallocate,
// truncate or rename of a partition's log fails, the log goes offline for
// good (segment.ErrStorageFailed, ringlog.ErrFailed) and so does the
// partition on this broker, until the broker restarts (a file system out
// of room is not such a failure: the log holds and the broker refuses
// produces until room returns, disk_space.go):
//
//   - every produce, fetch (long-polling fetches included, which are woken)
//     and offset lookup of it answers STORAGE_ERROR; nothing written after
//     the failed operation, or before it and not yet synced, is
//     acknowledged;
//   - the failure is logged once and counted in
//     strata_partition_storage_failures_total;
//   - the controller hears of it (ReportOfflineReplica): the broker leaves
//     the partition's ISR unless it is the last member, and leadership moves
//     to another in-sync replica, or, with none, the partition has no
//     leader and the metadata shows it offline;
//   - the partition's object stays on its shard, holding the failed log,
//     whatever later images say, so it is not reopened (and recovered from a
//     disk that just failed) behind the operator's back. A restart recovers
//     what reached the disk and registers the broker again, which elects it
//     again where it is still the ISR.
//
// A partition whose log cannot be opened (recovery fails: an I/O error, a
// folder that cannot be made, damage in a trusted segment) is offline the
// same way: STORAGE_ERROR, logged once, counted, reported; it is not
// opened again until the broker restarts.

const (
	// offlineReportAttemptsMax bounds the attempts to tell the controller,
	// one per heartbeat interval: a controller that cannot be reached for
	// that long fences the broker anyway, which moves every partition.
	offlineReportAttemptsMax = 10
	// offlineReportTimeout bounds one attempt.
	offlineReportTimeout = 5 * time.Second
)

// newStorageFailuresCounter registers the storage failure counter.
func newStorageFailuresCounter(reg *prometheus.Registry) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_partition_storage_failures_total",
		Help: "Partitions taken offline by their storage (fail-stop until restart): a failed write, fdatasync, fallocate, truncate or rename of their log, or a log that could not be opened.",
	})
	reg.MustRegister(c)
	return c
}

// offline reports whether the partition's storage failed: it answers
// STORAGE_ERROR to everything until the broker restarts.
func (p *partition) offline() bool { return p.log.Err() != nil }

// checkStorage notices a partition's storage failure the first time it is
// seen (after any of its completions, on every tick, and before serving a
// request): it logs it, counts it, wakes the fetches parked on it (their
// next round answers STORAGE_ERROR) and reports it to the controller.
func (bs *brokerShard) checkStorage(p *partition) {
	if p.storageFailureNoticed || !p.offline() {
		return
	}
	p.storageFailureNoticed = true
	bs.b.log.Error("partition storage failed; the partition is offline on this broker until it restarts",
		"topic", p.topic, "partition", p.index, "err", p.log.Err())
	bs.b.storageFailures.Inc()
	bs.b.storageFailed.Store(true)
	p.wakeWaiters()
	bs.reportOffline(p)
}

// reportOffline tells the controller, off the shard's thread, that this
// broker's replica of p is offline.
func (bs *brokerShard) reportOffline(p *partition) {
	bs.reportOfflineAt(p.topic, p.index, &p.offlineReport)
}

// offlineReport is what was told to the controller about an offline
// replica: once per leader epoch of the partition in this broker's image
// (an image that has it lead here again, after a re-registration, hears so
// again).
type offlineReport struct {
	sent  bool
	epoch int32
}

func (bs *brokerShard) reportOfflineAt(topic string, index int32, rep *offlineReport) {
	tp := bs.topics[topic]
	if tp == nil || bs.image == nil {
		return
	}
	pi, ok := bs.image.Partition(topic, index)
	if !ok || rep.sent && rep.epoch == pi.LeaderEpoch {
		return
	}
	rep.sent, rep.epoch = true, pi.LeaderEpoch
	go bs.b.session.reportOfflineReplica(topic, tp.id, index)
}

// failedOpenKey names a partition whose log could not be opened.
type failedOpenKey struct {
	topic metadata.TopicID
	index int32
}

// failedOpen is such a partition: offline on this broker until it
// restarts.
type failedOpen struct{ report offlineReport }

// openFailedAt reports whether the partition's log failed to open on this
// broker; an image that has it lead here hears so again.
func (bs *brokerShard) openFailedAt(topic string, id metadata.TopicID, index int32) bool {
	f := bs.failedOpens[failedOpenKey{id, index}]
	if f == nil {
		return false
	}
	bs.reportOfflineAt(topic, index, &f.report)
	return true
}

// openFailed takes a partition whose log could not be opened offline: it
// is logged and counted once, reported, and not opened again.
func (bs *brokerShard) openFailed(t metadata.TopicInfo, index int32, err error) {
	if bs.failedOpens == nil {
		bs.failedOpens = make(map[failedOpenKey]*failedOpen)
	}
	f := &failedOpen{}
	bs.failedOpens[failedOpenKey{t.ID, index}] = f
	bs.b.log.Error("partition log could not be opened; the partition is offline on this broker until it restarts",
		"topic", t.Name, "partition", index, "err", err)
	bs.b.storageFailures.Inc()
	bs.b.storageFailed.Store(true)
	bs.reportOfflineAt(t.Name, index, &f.report)
}

// forgetFailedOpens drops a deleted topic's failed partitions.
func (bs *brokerShard) forgetFailedOpens(id metadata.TopicID) {
	for k := range bs.failedOpens {
		if k.topic == id {
			delete(bs.failedOpens, k)
		}
	}
}

// storageErrorCode is the answer for a request to a partition whose
// storage failed, after noticing the failure if this is the first sight.
func (bs *brokerShard) storageErrorCode(p *partition) fb.ErrorCode {
	bs.checkStorage(p)
	return fb.ErrorCodeStorageError
}

// reportOfflineReplica proposes ReportOfflineReplica until the controller
// takes it, refuses it for good, or the broker stops.
func (s *brokerSession) reportOfflineReplica(topic string, id metadata.TopicID, index int32) {
	select {
	case <-s.stopC:
		return
	default:
	}
	s.wg.Add(1)
	defer s.wg.Done()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), offlineReportTimeout)
		_, err := s.q.propose(ctx, &rpcRequest{Kind: rpcReportOffline, BrokerID: s.nodeID, Epoch: s.epoch.Load(),
			TopicID: id, Partition: index})
		cancel()
		switch metadata.CodeOf(err) {
		case metadata.ErrNone:
			s.log.Info("reported offline replica to the controller", "topic", topic, "partition", index)
			return
		case metadata.ErrUnknownTopicOrPartition, metadata.ErrIneligibleReplica:
			s.log.Warn("controller refused the offline replica report", "topic", topic, "partition", index, "err", err)
			return
		}
		if attempt == offlineReportAttemptsMax {
			s.log.Error("could not report offline replica to the controller", "topic", topic, "partition", index, "err", err)
			return
		}
		select {
		case <-s.stopC:
			return
		case <-time.After(s.interval):
		}
	}
}
