package server

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-db/strata/schema/fb"
	"golang.org/x/sys/unix"
)

// A full disk is an answer, not a storm (docs/storage.md, "A full disk in
// the broker"). The broker raises a disk alarm while its data folder's
// file system has less room than it keeps free (BrokerConfig's
// LogDirMinFreeBytes and LogDirMinFreeRatio), or while any partition log
// holds appends for lack of room (the kernel refused a FALLOCATE or WRITE
// with ENOSPC: segment/ringlog/nospace.go). While it is raised:
//
//   - produce answers STORAGE_ERROR with a message that says the disk is
//     full, before anything is appended or given an offset;
//   - CreateTopics answers STORAGE_ERROR the same way: a topic whose logs
//     could not grow is not "created";
//   - fetches, offset lookups, metadata, deletions and retention go on:
//     retention and deleted topics are how room comes back;
//   - strata_log_dir_free_bytes and strata_log_dir_disk_alarm say so.
//
// Between two statfs readings the shards count the bytes their logs
// allocated (each completed growth step: a segment's files take room by
// fallocate, and appends only fill what was allocated), a slot per shard.
// Once the last reading less that count falls below the bound, the next
// question of whether the disk is full reads the folder again at once
// (on the asking goroutine) instead of waiting for the interval: a
// producer faster than the check interval cannot write past the room kept
// free and into the kernel's ENOSPC before the next reading, and the
// alarm still rests on readings only. (The count errs high, never low: a
// step that completed between a check's taking the count and its reading
// is in both; the early reading corrects it.)
//
// The alarm is logged once when it is raised and once when it clears; it
// clears, with no restart, once the folder has the room it keeps free and
// no log holds (a held log retries every few hundred ms and stops holding
// once its held writes go in).

const (
	// LogDirMinFreeBytesDefault is the room the broker keeps free in its
	// data folder's file system by default (Redpanda keeps 5 GiB,
	// storage_min_free_bytes; a smaller file system is covered by the
	// ratio, below).
	LogDirMinFreeBytesDefault = 1 << 30
	// LogDirMinFreeRatioDefault is the share of the file system kept free
	// by default. The alarm uses the smaller of the two bounds, so a small
	// file system is not refused outright by a bound sized for a large one.
	LogDirMinFreeRatioDefault = 0.05
	// diskCheckInterval is how often the broker reads its data folder's
	// free room (statfs): writes are accepted again within about this
	// much of room coming back.
	diskCheckInterval = 250 * time.Millisecond
)

// diskSpace is the broker's view of its data folder's room.
type diskSpace struct {
	dir string
	// minFree is the room kept free from the last check: the smaller of
	// the byte and ratio bounds that are on.
	minFreeBytes int64   // < 0: off
	minFreeRatio float64 // < 0: off
	log          *slog.Logger

	free, total, minFree atomic.Int64
	low                  atomic.Bool // free < minFree at the last check
	// allocated are the bytes each shard's logs allocated since the last
	// check (a slot per shard).
	allocated    []paddedCounter
	holding      atomic.Int64 // partition logs holding for room
	checkMu      sync.Mutex   // one check at a time: the watch's and early ones
	alarmed      bool         // the alarm as last logged (under checkMu)
	stopC, doneC chan struct{}
	stopOnce     sync.Once
}

// newDiskSpace checks the folder once, so that the alarm is right before
// the broker serves, and starts watching it.
func newDiskSpace(dir string, shards int, minFreeBytes int64, minFreeRatio float64, log *slog.Logger, reg *prometheus.Registry) *diskSpace {
	d := &diskSpace{dir: dir, minFreeBytes: minFreeBytes, minFreeRatio: minFreeRatio, log: log,
		allocated: make([]paddedCounter, shards),
		stopC:     make(chan struct{}), doneC: make(chan struct{})}
	d.check()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_log_dir_free_bytes",
		Help: "Bytes free to the broker in its data folder's file system: the last check's reading less what the logs allocated since."},
		func() float64 { return float64(d.freeBytes()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_log_dir_min_free_bytes",
		Help: "Bytes the broker keeps free in its data folder's file system (--log-dir-min-free-bytes, --log-dir-min-free-ratio)."},
		func() float64 { return float64(d.minFree.Load()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_log_dir_disk_alarm",
		Help: "1 while the disk is full: free room below the bound, or a partition log held for lack of room; producers are refused."},
		func() float64 {
			if d.full() {
				return 1
			}
			return 0
		}))
	go d.watch()
	return d
}

// resolveMinFree applies the defaults: 0 is the default, a negative
// value turns that bound off.
func resolveMinFree(bytes int64, ratio float64) (int64, float64, error) {
	if bytes == 0 {
		bytes = LogDirMinFreeBytesDefault
	}
	if ratio == 0 {
		ratio = LogDirMinFreeRatioDefault
	}
	if ratio >= 1 {
		return 0, 0, fmt.Errorf("server: log dir min free ratio %v: want below 1 (negative: off)", ratio)
	}
	return bytes, ratio, nil
}

// full reports whether the disk alarm is raised, reading the folder
// again first when the logs allocated enough since the last reading to
// take it below the bound.
func (d *diskSpace) full() bool {
	if d.low.Load() || d.holding.Load() > 0 {
		return true
	}
	if min := d.minFree.Load(); min > 0 && d.freeBytes() < min {
		d.check()
	}
	return d.low.Load() || d.holding.Load() > 0
}

// freeBytes is the room free: the last reading less what the logs
// allocated since.
func (d *diskSpace) freeBytes() int64 { return max(d.free.Load()-d.allocatedSince(), 0) }

// noteAllocated counts bytes shard's logs allocated (on that shard).
func (d *diskSpace) noteAllocated(shard int, bytes int64) {
	d.allocated[shard].n.Add(uint64(bytes))
}

// allocatedSince is what the shards' logs allocated since the last check.
func (d *diskSpace) allocatedSince() int64 {
	var n int64
	for i := range d.allocated {
		n += int64(d.allocated[i].n.Load())
	}
	return n
}

// reason says why, for a refusal's message.
func (d *diskSpace) reason() string {
	if d.holding.Load() > 0 {
		return fmt.Sprintf("disk full: no space left on device in %s (%d bytes free); retry once retention or an operator frees room",
			d.dir, d.free.Load())
	}
	return fmt.Sprintf("disk full: %s has %d bytes free, below the %d bytes kept free (--log-dir-min-free-bytes, --log-dir-min-free-ratio); retry once retention or an operator frees room",
		d.dir, d.freeBytes(), d.minFree.Load())
}

// refusal is the answer to a write while the alarm is raised.
func (d *diskSpace) refusal() (fb.ErrorCode, string) { return fb.ErrorCodeStorageError, d.reason() }

// check reads the folder's room and logs a change of the alarm.
func (d *diskSpace) check() {
	d.checkMu.Lock()
	defer d.checkMu.Unlock()
	// Take the shards' counts before reading, so what is allocated from
	// here on is counted against this reading.
	for i := range d.allocated {
		d.allocated[i].n.Store(0)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.dir, &st); err != nil {
		// Keep the last reading; an unreadable folder shows in its logs.
		// The count is dropped all the same: kept, it would ask every
		// produce for a reading that fails again.
		d.log.Warn("disk space check", "dir", d.dir, "err", err)
	} else {
		free, total := int64(st.Bavail)*st.Bsize, int64(st.Blocks)*st.Bsize
		min := int64(-1)
		if d.minFreeBytes >= 0 {
			min = d.minFreeBytes
		}
		if d.minFreeRatio >= 0 {
			if r := int64(d.minFreeRatio * float64(total)); min < 0 || r < min {
				min = r
			}
		}
		min = max(min, 0)
		d.free.Store(free)
		d.total.Store(total)
		d.minFree.Store(min)
		d.low.Store(free < min)
	}
	switch full := d.low.Load() || d.holding.Load() > 0; {
	case full && !d.alarmed:
		d.alarmed = true
		d.log.Error("disk full: producers and topic creation are refused until room returns; fetches go on",
			"dir", d.dir, "free_bytes", d.freeBytes(), "min_free_bytes", d.minFree.Load(), "logs_held", d.holding.Load())
	case !full && d.alarmed:
		d.alarmed = false
		d.log.Info("disk space returned: producers are accepted again",
			"dir", d.dir, "free_bytes", d.freeBytes(), "min_free_bytes", d.minFree.Load())
	}
}

func (d *diskSpace) watch() {
	defer close(d.doneC)
	t := time.NewTicker(diskCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stopC:
			return
		case <-t.C:
			d.check()
		}
	}
}

func (d *diskSpace) stop() {
	d.stopOnce.Do(func() { close(d.stopC) })
	<-d.doneC
}

// noteSpace follows whether a partition's log holds for lack of room,
// after each of its completions and ticks.
func (bs *brokerShard) noteSpace(p *partition) {
	if grown := p.log.Stats().GrownBytes; grown != p.grownNoted {
		bs.b.disk.noteAllocated(bs.id, grown-p.grownNoted)
		p.grownNoted = grown
	}
	held, _ := p.log.NoSpace()
	held = held && p.log.Err() == nil
	if held == p.heldForSpace {
		return
	}
	p.heldForSpace = held
	if held {
		bs.b.disk.holding.Add(1)
		_, cause := p.log.NoSpace()
		bs.b.log.Debug("partition log holds for room", "topic", p.topic, "partition", p.index, "err", cause)
		return
	}
	bs.b.disk.holding.Add(-1)
}

// giveUpSpace fails a log that holds for lack of room when it must close
// (its topic deleted, its leadership moved, the broker stopping): its held
// appends fail, unacknowledged, and the next open recovers what is on
// disk, cutting a torn frame. It is not a storage failure of the disk.
func (bs *brokerShard) giveUpSpace(p *partition, why string) {
	if held, _ := p.log.NoSpace(); !held || p.offline() {
		return
	}
	p.storageFailureNoticed = true // not logged, counted or reported as one
	bs.b.logsGivenUp.Store(true)
	p.log.Fail(fmt.Errorf("server: %s-%d closed while it held appends for lack of room (%s)", p.topic, p.index, why))
	bs.noteSpace(p)
}
