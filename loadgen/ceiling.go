package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

const (
	workloadCeiling = "ceiling"
	modeProduce     = "produce"
	modeConsume     = "consume"
	modeSplice      = "splice"

	flagMode            = "mode"
	flagBatchBytes      = "batch-bytes"
	flagDir             = "dir"
	flagFsyncEveryBytes = "fsync-every-bytes"
	flagFileBytes       = "file-bytes"
	flagKeep            = "keep"
)

// ceilingConfig holds the flags of `loadgen ceiling` beyond the shared ones.
type ceilingConfig struct {
	mode            string
	batchBytes      byteSize
	dir             string
	fsyncEveryBytes byteSize
	fileBytes       byteSize
	keep            bool
}

// ceilingDetails are the ceiling's own fields in the JSON report.
type ceilingDetails struct {
	ChunkBytes int64  `json:"chunk_bytes"`
	Dir        string `json:"dir"`
	// FileBytes is the size of the file on disk: what produce mode wrote,
	// or the cached file consume mode sent from.
	FileBytes int64 `json:"file_bytes"`
	// FilePath names the file when --keep left it in place.
	FilePath string `json:"file_path,omitempty"`
	// Durability says whether produce mode's bytes reached the disk or only
	// the page cache; FsyncEveryBytes and Fdatasyncs give the detail.
	Durability      string `json:"durability,omitempty"`
	FsyncEveryBytes int64  `json:"fsync_every_bytes,omitempty"`
	Fdatasyncs      int64  `json:"fdatasyncs,omitempty"`
}

func newCeilingCmd(wf *workloadFlags) *cobra.Command {
	cfg := ceilingConfig{
		batchBytes: defaultBatchBytes,
		fileBytes:  defaultConsumeFileBytes,
	}
	cmd := &cobra.Command{
		Use:   "ceiling --mode produce|consume|splice",
		Short: "Measure the physical ceiling: one loopback TCP stream into a file, or out of a cached file",
		Long: `Measure the physical ceiling of this machine, which Strata's benchmarks are
reported as a ratio of.

  --mode produce  one TCP stream on loopback into a file: a sender writes
                  records in chunks of --batch-bytes; the receiver writes all
                  it reads to a file with write(2) from a reused buffer
                  (page cache only unless --fsync-every-bytes is given).
  --mode consume  a file of --file-bytes is written and read once so it is
                  cached, then sent over loopback TCP with sendfile(2) in
                  chunks of --batch-bytes, repeatedly, to a reader that
                  discards what it reads.
  --mode splice   as consume, but the file is sent the way the broker sends
                  fetch answers: io_uring SPLICE file -> pipe, linked to
                  SPLICE pipe -> socket, through a 1 MiB pipe, on a ring
                  set up as a broker shard's. Beside consume, it says what
                  the broker's way of sending costs on this machine.

Chunks are --batch-bytes rounded down to whole records. Latency is per chunk:
from the sender starting it until the receiver has handled its last byte.
Throughput is in MB/s with MB = 10^6 bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := wf.resolve(cmd.Flags()); err != nil {
				return err
			}
			if err := cfg.validate(cmd, wf); err != nil {
				return err
			}
			if err := runCeiling(cmd.Context(), wf, &cfg, cmd.OutOrStdout(), cmd.ErrOrStderr()); err != nil {
				return runError{err}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.mode, flagMode, "", "what to measure: produce (socket into a file), consume (sendfile out of a cached file) or splice (io_uring splice out of a cached file)")
	fs.Var(&cfg.batchBytes, flagBatchBytes,
		fmt.Sprintf("bytes per write or sendfile call, rounded down to whole records (1..%s)", formatByteSize(maxBatchBytes)))
	fs.StringVar(&cfg.dir, flagDir, "", "directory for the data file (default: the system temp dir)")
	fs.Var(&cfg.fsyncEveryBytes, flagFsyncEveryBytes,
		"produce: fdatasync after about this many bytes and at the end (0: never, page cache only)")
	fs.Var(&cfg.fileBytes, flagFileBytes,
		fmt.Sprintf("consume, splice: size of the cached file to send from, bounded by free space less %s", formatByteSize(freeSpaceReserveBytes)))
	fs.BoolVar(&cfg.keep, flagKeep, false, "keep the data file after the run instead of removing it")
	return cmd
}

func (c *ceilingConfig) validate(cmd *cobra.Command, wf *workloadFlags) error {
	fs := cmd.Flags()
	switch c.mode {
	case modeProduce:
		if fs.Changed(flagFileBytes) {
			return fmt.Errorf("--%s applies to --%s %s or %s only", flagFileBytes, flagMode, modeConsume, modeSplice)
		}
	case modeConsume, modeSplice:
		if fs.Changed(flagFsyncEveryBytes) {
			return fmt.Errorf("--%s applies to --%s %s only", flagFsyncEveryBytes, flagMode, modeProduce)
		}
		if int64(c.fileBytes) < int64(wf.recordSizeBytes) {
			return fmt.Errorf("--%s (%d) must hold at least one record of %d bytes",
				flagFileBytes, c.fileBytes, wf.recordSizeBytes)
		}
	case "":
		return fmt.Errorf("--%s is required: %s, %s or %s", flagMode, modeProduce, modeConsume, modeSplice)
	default:
		return fmt.Errorf("--%s must be %s, %s or %s, got %q", flagMode, modeProduce, modeConsume, modeSplice, c.mode)
	}
	if c.batchBytes < 1 || c.batchBytes > maxBatchBytes {
		return fmt.Errorf("--%s must be between 1 and %s, got %d",
			flagBatchBytes, formatByteSize(maxBatchBytes), c.batchBytes)
	}
	if c.dir == "" {
		c.dir = os.TempDir()
	}
	st, err := os.Stat(c.dir)
	if err != nil {
		return fmt.Errorf("--%s: %w", flagDir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--%s %s is not a directory", flagDir, c.dir)
	}
	return nil
}

func runCeiling(ctx context.Context, wf *workloadFlags, cfg *ceilingConfig, stdout, stderr io.Writer) error {
	var (
		r   *report
		err error
	)
	if cfg.mode == modeProduce {
		r, err = measureProduce(ctx, wf, cfg, stderr)
	} else {
		r, err = measureConsume(ctx, wf, cfg, stderr)
	}
	if err != nil {
		return err
	}
	return r.print(stdout, wf.json)
}

// newCeilingReport fills what both ceiling modes report alike.
func newCeilingReport(mode, title string, wf *workloadFlags, cfg *ceilingConfig, chunkBytes int64, res streamResult) *report {
	r := &report{
		Workload:   workloadCeiling,
		Mode:       mode,
		LatencyOf:  "chunk: sender starts it until the receiver has handled its last byte",
		StoppedBy:  string(res.stoppedBy),
		BatchBytes: int64(cfg.batchBytes),
		ceilingDetails: &ceilingDetails{
			ChunkBytes: chunkBytes,
			Dir:        cfg.dir,
		},
		machineFacts: collectMachineFacts(),
		title:        title,
	}
	r.fill(res.receivedBytes, int64(wf.recordSizeBytes), res.elapsed, res.latency)
	r.rows = append(r.rows, summaryRow{"chunk", fmt.Sprintf("%d B (--batch-bytes %d)", chunkBytes, cfg.batchBytes)})
	return r
}
