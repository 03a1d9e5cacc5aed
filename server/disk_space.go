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
	low                  atomic.Bool  // free < minFree at the last check
	holding              atomic.Int64 // partition logs holding for room
	alarmed              bool         // the alarm as last logged (watch's goroutine)
	stopC, doneC         chan struct{}
	stopOnce             sync.Once
}

// newDiskSpace checks the folder once, so that the alarm is right before
// the broker serves, and starts watching it.
func newDiskSpace(dir string, minFreeBytes int64, minFreeRatio float64, log *slog.Logger, reg *prometheus.Registry) *diskSpace {
	d := &diskSpace{dir: dir, minFreeBytes: minFreeBytes, minFreeRatio: minFreeRatio, log: log,
		stopC: make(chan struct{}), doneC: make(chan struct{})}
	d.check()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_log_dir_free_bytes",
		Help: "Bytes free to the broker in its data folder's file system, at the last check."},
		func() float64 { return float64(d.free.Load()) }))
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

// full reports whether the disk alarm is raised.
func (d *diskSpace) full() bool { return d.low.Load() || d.holding.Load() > 0 }

// reason says why, for a refusal's message.
func (d *diskSpace) reason() string {
	if d.holding.Load() > 0 {
		return fmt.Sprintf("disk full: no space left on device in %s (%d bytes free); retry once retention or an operator frees room",
			d.dir, d.free.Load())
	}
	return fmt.Sprintf("disk full: %s has %d bytes free, below the %d bytes kept free (--log-dir-min-free-bytes, --log-dir-min-free-ratio); retry once retention or an operator frees room",
		d.dir, d.free.Load(), d.minFree.Load())
}

// refusal is the answer to a write while the alarm is raised.
func (d *diskSpace) refusal() (fb.ErrorCode, string) { return fb.ErrorCodeStorageError, d.reason() }

// check reads the folder's room and logs a change of the alarm.
func (d *diskSpace) check() {
	var st unix.Statfs_t
	if err := unix.Statfs(d.dir, &st); err != nil {
		// Keep the last reading; an unreadable folder shows in its logs.
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
	switch full := d.full(); {
	case full && !d.alarmed:
		d.alarmed = true
		d.log.Error("disk full: producers and topic creation are refused until room returns; fetches go on",
			"dir", d.dir, "free_bytes", d.free.Load(), "min_free_bytes", d.minFree.Load(), "logs_held", d.holding.Load())
	case !full && d.alarmed:
		d.alarmed = false
		d.log.Info("disk space returned: producers are accepted again",
			"dir", d.dir, "free_bytes", d.free.Load(), "min_free_bytes", d.minFree.Load())
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
