package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/client"
)

// The compression section (--compression-rounds, on by default): one
// broker takes JSON-like 1 KiB records (loadgen --values json: events of
// their own each, as compressible as real payloads) from a producer with
// --compression none and then lz4, each into a topic of its own, and a
// consumer reads each topic back from its start. The codecs alternate
// within each round, so that both see the same machine; the figures are
// the medians over the rounds. For each case: the payload rate (the
// records' uncompressed bytes a second, loadgen's MB/s), the stored bytes
// (the partitions' segment bytes from DescribeLogDirs, which are also the
// frames the wire carried) and their rate, and the CPU seconds of the
// producer, the broker and the consumer per payload GB. The broker stores
// and serves frames as they came, so its CPU shows what compression saves
// it; the client's shows what it costs.
const (
	compressionRecordBytes = 1024
	compressionPartitions  = 4
	compressionFlushPolicy = "never"
	// compressionQuickRecords is each quick case's produce.
	compressionQuickRecords  = 20_000
	defaultCompressionRounds = 3
)

// compressionCodecs are the producer's --compression values measured.
var compressionCodecs = []string{"none", "lz4"}

// compressionResult is the section's figures.
type compressionResult struct {
	RecordBytes int                 `json:"record_bytes"`
	Values      string              `json:"values"`
	FlushPolicy string              `json:"flush_policy"`
	Partitions  int                 `json:"partitions"`
	Rounds      []compressionRound  `json:"rounds"`
	Medians     []compressionMedian `json:"medians"`
	// LoadBefore is the machine's load average as the section began
	// (/proc/loadavg): other work shares the CPUs.
	LoadBefore string `json:"load_before"`
}

// compressionRound is one round: one case per codec.
type compressionRound struct {
	Cases []compressionCase `json:"cases"`
}

// compressionCase is one codec's produce and consume.
type compressionCase struct {
	Codec       string  `json:"codec"`
	Produce     figures `json:"produce"`
	Consume     figures `json:"consume"`
	StoredBytes int64   `json:"stored_bytes"`
	// CPU seconds spent while producing (producer process, broker) and
	// while consuming (consumer process, broker).
	ProducerCPU         float64 `json:"producer_cpu_seconds"`
	BrokerProduceCPU    float64 `json:"broker_produce_cpu_seconds"`
	ConsumerCPU         float64 `json:"consumer_cpu_seconds"`
	BrokerConsumeCPU    float64 `json:"broker_consume_cpu_seconds"`
	CompressionRatio    float64 `json:"compression_ratio"`
	StoredProduceMBPerS float64 `json:"stored_produce_mb_per_sec"`
	StoredConsumeMBPerS float64 `json:"stored_consume_mb_per_sec"`
}

// compressionMedian is a codec's medians over the rounds; CPU figures
// are seconds per GB of payload.
type compressionMedian struct {
	Codec                 string  `json:"codec"`
	ProduceMBPerSec       float64 `json:"produce_mb_per_sec"`
	StoredProduceMBPerS   float64 `json:"stored_produce_mb_per_sec"`
	ConsumeMBPerSec       float64 `json:"consume_mb_per_sec"`
	StoredConsumeMBPerS   float64 `json:"stored_consume_mb_per_sec"`
	CompressionRatio      float64 `json:"compression_ratio"`
	ProduceP99Ms          float64 `json:"produce_p99_ms"`
	ProducerCPUPerGB      float64 `json:"producer_cpu_s_per_gb"`
	BrokerProduceCPUPerGB float64 `json:"broker_produce_cpu_s_per_gb"`
	ConsumerCPUPerGB      float64 `json:"consumer_cpu_s_per_gb"`
	BrokerConsumeCPUPerGB float64 `json:"broker_consume_cpu_s_per_gb"`
}

// runCompression runs cfg.compressionRounds rounds on one broker.
func runCompression(ctx context.Context, cfg *config, strata, loadgen string) (*compressionResult, error) {
	dataDir := filepath.Join(cfg.work, "compression")
	if err := os.RemoveAll(dataDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	b, err := startBroker(ctx, strata, dataDir, cfg.cores, cfg.serverCPUs)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	load, _ := os.ReadFile("/proc/loadavg")
	res := &compressionResult{RecordBytes: compressionRecordBytes, Values: "json", FlushPolicy: compressionFlushPolicy,
		Partitions: compressionPartitions, LoadBefore: strings.TrimSpace(string(load))}
	for r := range cfg.compressionRounds {
		var round compressionRound
		for _, codec := range compressionCodecs {
			logf("compression: round %d, %s", r+1, codec)
			c, err := runCompressionCase(ctx, cfg, b, loadgen, codec, fmt.Sprintf("compression-%s-%d", codec, r))
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r+1, codec, err)
			}
			round.Cases = append(round.Cases, *c)
		}
		res.Rounds = append(res.Rounds, round)
	}
	res.medians()
	return res, nil
}

func runCompressionCase(ctx context.Context, cfg *config, b *server, loadgen, codec, topic string) (*compressionCase, error) {
	c := &compressionCase{Codec: codec}
	common := []string{"--brokers", b.addr, "--topic", topic, "--json", "--record-size", strconv.Itoa(compressionRecordBytes)}
	if cfg.clientCPUs != nil {
		common = append(common, "--procs", strconv.Itoa(len(cfg.clientCPUs)))
	}
	bound := []string{"--duration", cfg.duration.String()}
	if cfg.quick {
		bound = []string{"--records", strconv.Itoa(compressionQuickRecords)}
	}
	produce := append([]string{"produce", "--partitions", strconv.Itoa(compressionPartitions), "--acks", "1",
		"--flush-policy", compressionFlushPolicy, "--values", "json", "--compression", codec}, common...)
	brokerBefore, err := procCPUSeconds(b.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	if c.ProducerCPU, err = runLoadgenCPU(ctx, loadgen, cfg.clientCPUs, append(produce, bound...), &c.Produce); err != nil {
		return nil, err
	}
	brokerMid, err := procCPUSeconds(b.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	c.BrokerProduceCPU = brokerMid - brokerBefore
	if c.StoredBytes, err = topicBytes(ctx, b.addr, topic); err != nil {
		return nil, err
	}
	// As in the scaling sweep: the consumer reads the page cache, with
	// the producer's dirty pages written back first.
	unix.Sync()
	consume := append([]string{"consume", "--records", strconv.FormatInt(c.Produce.Records, 10)}, common...)
	brokerMid, err = procCPUSeconds(b.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	if c.ConsumerCPU, err = runLoadgenCPU(ctx, loadgen, cfg.clientCPUs, consume, &c.Consume); err != nil {
		return nil, err
	}
	brokerAfter, err := procCPUSeconds(b.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	c.BrokerConsumeCPU = brokerAfter - brokerMid
	if c.Consume.Records < c.Produce.Records {
		return nil, fmt.Errorf("the consumer read %d of the %d records produced", c.Consume.Records, c.Produce.Records)
	}
	if c.StoredBytes > 0 {
		c.CompressionRatio = float64(c.Produce.Bytes) / float64(c.StoredBytes)
	}
	if c.Produce.Seconds > 0 {
		c.StoredProduceMBPerS = float64(c.StoredBytes) / c.Produce.Seconds / 1e6
	}
	if c.Consume.Seconds > 0 {
		c.StoredConsumeMBPerS = float64(c.StoredBytes) / c.Consume.Seconds / 1e6
	}
	return c, nil
}

// runLoadgenCPU is runLoadgen that also returns the CPU seconds (user and
// system) the loadgen process spent.
func runLoadgenCPU(ctx context.Context, loadgen string, cpus []int, args []string, f *figures) (float64, error) {
	cmd := exec.CommandContext(ctx, loadgen, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := startOn(cmd, cpus); err != nil {
		return 0, err
	}
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("loadgen %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(lastLine(stdout.Bytes()), f); err != nil {
		return 0, fmt.Errorf("loadgen %s: report: %w", strings.Join(args, " "), err)
	}
	st := cmd.ProcessState
	return (st.UserTime() + st.SystemTime()).Seconds(), nil
}

// topicBytes is the segment bytes of topic's partitions on the broker at
// addr.
func topicBytes(ctx context.Context, addr, topic string) (int64, error) {
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := client.Dial(actx, client.Config{Brokers: []string{addr}, ClientID: "bench-compression"})
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	info, err := client.NewAdmin(cl).DescribeLogDirs(actx, addr, topic)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, t := range info.Topics {
		for _, p := range t.Partitions {
			if p.Err != nil {
				return 0, fmt.Errorf("%s partition %d: %w", topic, p.Partition, p.Err)
			}
			total += p.SizeBytes
		}
	}
	return total, nil
}

// medians fills Medians, one per codec.
func (r *compressionResult) medians() {
	perGB := func(cpu float64, payload int64) float64 {
		if payload == 0 {
			return 0
		}
		return cpu / (float64(payload) / 1e9)
	}
	r.Medians = nil
	for i, codec := range compressionCodecs {
		col := func(f func(c *compressionCase) float64) float64 {
			var v []float64
			for _, round := range r.Rounds {
				if i < len(round.Cases) {
					v = append(v, f(&round.Cases[i]))
				}
			}
			return median(v)
		}
		r.Medians = append(r.Medians, compressionMedian{
			Codec:                 codec,
			ProduceMBPerSec:       col(func(c *compressionCase) float64 { return c.Produce.MBPerSec }),
			StoredProduceMBPerS:   col(func(c *compressionCase) float64 { return c.StoredProduceMBPerS }),
			ConsumeMBPerSec:       col(func(c *compressionCase) float64 { return c.Consume.MBPerSec }),
			StoredConsumeMBPerS:   col(func(c *compressionCase) float64 { return c.StoredConsumeMBPerS }),
			CompressionRatio:      col(func(c *compressionCase) float64 { return c.CompressionRatio }),
			ProduceP99Ms:          col(func(c *compressionCase) float64 { return c.Produce.P99Ms }),
			ProducerCPUPerGB:      col(func(c *compressionCase) float64 { return perGB(c.ProducerCPU, c.Produce.Bytes) }),
			BrokerProduceCPUPerGB: col(func(c *compressionCase) float64 { return perGB(c.BrokerProduceCPU, c.Produce.Bytes) }),
			ConsumerCPUPerGB:      col(func(c *compressionCase) float64 { return perGB(c.ConsumerCPU, c.Consume.Bytes) }),
			BrokerConsumeCPUPerGB: col(func(c *compressionCase) float64 { return perGB(c.BrokerConsumeCPU, c.Consume.Bytes) }),
		})
	}
}

// markdown writes the section's table.
func (r *compressionResult) markdown(w func(string, ...any)) {
	w("## Compression\n\n")
	w("One broker; per round a producer writes %d B JSON-like records (`loadgen --values json`) to a topic of its own "+
		"(%d partitions, flush policy `%s`, acks 1) with `--compression none` and then `lz4`, and a consumer reads each "+
		"topic back. Medians of %d rounds. Payload MB/s counts the records' uncompressed bytes; stored MB/s the bytes "+
		"on disk, which are the frames the wire carried. CPU is seconds per payload GB. Load average at the start: %s.\n\n",
		r.RecordBytes, r.Partitions, r.FlushPolicy, len(r.Rounds), r.LoadBefore)
	w("| codec | ratio | produce payload MB/s | produce stored MB/s | produce p99 ms | consume payload MB/s | consume stored MB/s | producer CPU s/GB | broker CPU s/GB (produce) | consumer CPU s/GB | broker CPU s/GB (consume) |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, m := range r.Medians {
		w("| %s | %.2f | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |\n", m.Codec, m.CompressionRatio,
			m.ProduceMBPerSec, m.StoredProduceMBPerS, m.ProduceP99Ms, m.ConsumeMBPerSec, m.StoredConsumeMBPerS,
			m.ProducerCPUPerGB, m.BrokerProduceCPUPerGB, m.ConsumerCPUPerGB, m.BrokerConsumeCPUPerGB)
	}
	w("\n")
}
