package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// measureProduce runs the produce ceiling: one loopback TCP stream whose
// receiver writes everything it reads to a file with write(2) from a reused
// buffer, the most a single stream can do without tricks such as splice.
func measureProduce(ctx context.Context, wf *workloadFlags, cfg *ceilingConfig, stderr io.Writer) (*report, error) {
	recordSize := int64(wf.recordSizeBytes)
	chunkBytes := chunkSize(int64(cfg.batchBytes), recordSize)
	fsyncEvery := int64(cfg.fsyncEveryBytes)

	space, err := usableBytes(cfg.dir, recordSize)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(cfg.dir, "strata-ceiling-produce-*.data")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !cfg.keep {
		defer os.Remove(f.Name())
	}
	fd := int(f.Fd())

	accepted, dialed, err := loopbackPair(ctx)
	if err != nil {
		return nil, err
	}
	defer accepted.Close()
	defer dialed.Close()

	sendBuf := make([]byte, chunkBytes)
	fillRecords(sendBuf, recordSize)

	var sinceSync, syncs int64
	fdatasync := func() error {
		if err := unix.Fdatasync(fd); err != nil {
			return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
		}
		syncs++
		sinceSync = 0
		return nil
	}

	prog := newProgress(stderr, "ceiling produce", wf.limitBytes())
	start := time.Now()
	s := stream{
		// The client dials and sends; the accepting side, where a broker
		// sits, receives and writes.
		sender:     dialed,
		receiver:   accepted,
		chunkBytes: chunkBytes,
		budget:     newBudget(ctx, wf, start),
		progress:   prog,
		send: func(n int64) error {
			if _, err := dialed.Write(sendBuf[:n]); err != nil {
				return fmt.Errorf("send: %w", err)
			}
			return nil
		},
		take: func(p []byte) error {
			if _, err := f.Write(p); err != nil {
				return fmt.Errorf("write %s: %w", f.Name(), err)
			}
			if fsyncEvery > 0 {
				sinceSync += int64(len(p))
				if sinceSync >= fsyncEvery {
					return fdatasync()
				}
			}
			return nil
		},
		drain: func() error {
			if fsyncEvery > 0 && sinceSync > 0 {
				return fdatasync()
			}
			return nil
		},
	}
	s.budget.capBytes(space, stopDiskSpace)
	res, err := s.run(start)
	prog.finish()
	if err != nil {
		return nil, err
	}

	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() != res.receivedBytes {
		return nil, fmt.Errorf("%w: received %d, file holds %d", errShortStream, res.receivedBytes, st.Size())
	}

	durability := "page cache only (no fdatasync)"
	if fsyncEvery > 0 {
		durability = fmt.Sprintf("fdatasync every %d bytes and at the end", fsyncEvery)
	}
	r := newCeilingReport(modeProduce,
		"ceiling produce: one TCP stream on loopback into a file, write(2) from a reused buffer",
		wf, cfg, chunkBytes, res)
	r.StartedAt = start.UTC().Format(time.RFC3339)
	r.FileBytes = st.Size()
	r.Durability = durability
	r.FsyncEveryBytes = fsyncEvery
	r.Fdatasyncs = syncs
	r.rows = append(r.rows, summaryRow{"durability", fmt.Sprintf("%s, %d fdatasync calls", durability, syncs)})
	r.rows = append(r.rows, summaryRow{"file", fmt.Sprintf("%d bytes in %s", st.Size(), cfg.dir)})
	if cfg.keep {
		r.FilePath = f.Name()
		r.rows = append(r.rows, summaryRow{"kept file", f.Name()})
	}
	return r, nil
}
