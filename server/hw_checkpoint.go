package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/strata-db/strata/server/metadata"
)

// The high-watermark checkpoint (Kafka's replication-offset-checkpoint).
// A replica opens its log with the high watermark it last knew, so that
// right after a restart consumers neither see less than was committed (a
// `--from latest` consumer would start at 0) nor wait for the followers'
// first fetches. It is a hint, never a promise: the value is clamped to
// the log's end on open, and a missing or damaged file means 0, the
// replica then learning its high watermark again from the ISR.
//
// Each shard writes one file, high-watermark-<shard>.checkpoint, in the
// data folder: on its tick every hwCheckpointIntervalMs when a value
// moved, and once more when the broker stops. The shard only encodes;
// a goroutine of the broker writes (temporary file, fsync, rename), so
// the shard never blocks on it. On start every such file is read (the
// shard count may have changed) and the largest value per partition kept.
//
// Format, little-endian: a version (uint32, 1), an entry count (uint32),
// entries of topic id (16 bytes), partition (int32) and high watermark
// (int64), then the CRC32C of everything before it (uint32).

const (
	hwCheckpointPrefix     = "high-watermark-"
	hwCheckpointSuffix     = ".checkpoint"
	hwCheckpointVersion    = 1
	hwCheckpointEntryBytes = 16 + 4 + 8
	// hwCheckpointIntervalMs is how often a shard writes its file when a
	// value moved (Kafka's replica.high.watermark.checkpoint.interval.ms).
	hwCheckpointIntervalMs = 5_000
	// hwCheckpointEntriesMax bounds what a start reads from one file: a
	// shard's partition table.
	hwCheckpointEntriesMax = partitionsPerShardMax
)

var hwCRC = crc32.MakeTable(crc32.Castagnoli)

type hwKey struct {
	topic     metadata.TopicID
	partition int32
}

// hwCheckpointer writes the shards' files off their threads.
type hwCheckpointer struct {
	dir     string
	mu      sync.Mutex
	pending map[int][]byte // by shard: the latest encoding not yet written
	wake    chan struct{}
	done    chan struct{}
	stopped bool
}

func newHWCheckpointer(dir string) *hwCheckpointer {
	w := &hwCheckpointer{dir: dir, pending: map[int][]byte{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// offer hands a shard's latest encoding over; an older one not yet
// written is replaced.
func (w *hwCheckpointer) offer(shard int, b []byte) {
	w.mu.Lock()
	if !w.stopped {
		w.pending[shard] = b
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *hwCheckpointer) run() {
	defer close(w.done)
	for range w.wake {
		w.writePending()
	}
}

func (w *hwCheckpointer) writePending() {
	w.mu.Lock()
	todo := w.pending
	w.pending = map[int][]byte{}
	w.mu.Unlock()
	for shard, b := range todo {
		// A failed write leaves the previous file, an older hint.
		_ = writeHWFile(w.dir, shard, b)
	}
}

// stop writes what is pending and ends the goroutine.
func (w *hwCheckpointer) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	close(w.wake)
	<-w.done
	w.writePending()
}

func hwFileName(shard int) string {
	return hwCheckpointPrefix + strconv.Itoa(shard) + hwCheckpointSuffix
}

func writeHWFile(dir string, shard int, b []byte) error {
	final := filepath.Join(dir, hwFileName(shard))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, final)
	}
	return err
}

// encodeHW encodes a shard's high watermarks.
func encodeHW(dst []byte, entries map[hwKey]int64) []byte {
	dst = binary.LittleEndian.AppendUint32(dst[:0], hwCheckpointVersion)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(entries)))
	for k, hw := range entries {
		dst = append(dst, k.topic[:]...)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(k.partition))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(hw))
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst, hwCRC))
}

// decodeHW decodes one file into into, keeping the larger value per
// partition; a damaged file adds nothing.
func decodeHW(b []byte, into map[hwKey]int64) error {
	if len(b) < 12 {
		return fmt.Errorf("high-watermark checkpoint of %d bytes", len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, hwCRC) != sum {
		return errors.New("high-watermark checkpoint: checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(body); v != hwCheckpointVersion {
		return fmt.Errorf("high-watermark checkpoint version %d", v)
	}
	n := binary.LittleEndian.Uint32(body[4:])
	if n > hwCheckpointEntriesMax || int(n)*hwCheckpointEntryBytes != len(body)-8 {
		return fmt.Errorf("high-watermark checkpoint: %d entries in %d bytes", n, len(body))
	}
	for e := body[8:]; len(e) > 0; e = e[hwCheckpointEntryBytes:] {
		var k hwKey
		copy(k.topic[:], e[:16])
		k.partition = int32(binary.LittleEndian.Uint32(e[16:]))
		hw := int64(binary.LittleEndian.Uint64(e[20:]))
		if hw >= 0 && hw > into[k] {
			into[k] = hw
		}
	}
	return nil
}

// loadHW reads every shard's file in dir.
func loadHW(dir string) map[hwKey]int64 {
	out := map[hwKey]int64{}
	names, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range names {
		name := e.Name()
		if !strings.HasPrefix(name, hwCheckpointPrefix) || !strings.HasSuffix(name, hwCheckpointSuffix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			_ = decodeHW(b, out) // a damaged file is only a lost hint
		}
	}
	return out
}

// checkpointHW encodes this shard's high watermarks when they moved since
// the last time (or always, when final), and hands them to the writer.
func (bs *brokerShard) checkpointHW(nowMs int64, final bool) {
	if !final && nowMs < bs.nextHWCheckpointMs {
		return
	}
	bs.nextHWCheckpointMs = nowMs + hwCheckpointIntervalMs
	entries := make(map[hwKey]int64, len(bs.slots)+len(bs.closedHW))
	changed := final
	for k, hw := range bs.closedHW {
		entries[k] = hw
	}
	for _, p := range bs.slots {
		if p == nil || p.rep == nil || p.closing {
			continue
		}
		k := hwKey{p.rep.topicID, p.index}
		entries[k] = p.rep.hw
	}
	for k, hw := range entries {
		if old, ok := bs.lastHW[k]; !ok || old != hw {
			changed = true
		}
	}
	if !changed && len(entries) == len(bs.lastHW) {
		return
	}
	bs.lastHW = entries
	bs.b.hwWriter.offer(bs.id, encodeHW(nil, entries))
}
