package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// fileSender moves chunks of the cached file into the sender's socket,
// from an offset it keeps.
type fileSender interface {
	send(n int) error // the next n bytes, moving the offset on
	offset() int64
	rewind() // back to the file's start
	close() error
}

// measureConsume runs the consume ceiling: a cached file sent over one
// loopback TCP stream, chunk by chunk and round and round the file, to a
// reader that discards what it reads into a reused buffer. Mode consume
// sends with sendfile(2); mode splice with io_uring SPLICE file -> pipe ->
// socket, as the broker sends fetch answers, so the two can be compared
// on the same machine.
func measureConsume(ctx context.Context, wf *workloadFlags, cfg *ceilingConfig, stderr io.Writer) (*report, error) {
	recordSize := int64(wf.recordSizeBytes)
	chunkBytes := chunkSize(int64(cfg.batchBytes), recordSize)

	space, err := usableBytes(cfg.dir, recordSize)
	if err != nil {
		return nil, err
	}
	fileBytes := int64(cfg.fileBytes) - int64(cfg.fileBytes)%recordSize
	boundedBySpace := fileBytes > space
	fileBytes = min(fileBytes, space)

	f, err := os.CreateTemp(cfg.dir, "strata-ceiling-consume-*.data")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !cfg.keep {
		defer os.Remove(f.Name())
	}
	if err := writeCachedFile(ctx, f, fileBytes, recordSize); err != nil {
		return nil, err
	}

	accepted, dialed, err := loopbackPair(ctx)
	if err != nil {
		return nil, err
	}
	defer accepted.Close()
	defer dialed.Close()

	var sf fileSender
	title := "ceiling consume: sendfile(2) from a cached file over one TCP stream on loopback"
	if cfg.mode == modeSplice {
		title = "ceiling splice: io_uring SPLICE file -> pipe -> socket from a cached file over one TCP stream on loopback"
		sf, err = newSplicer(accepted, int(f.Fd()))
	} else {
		sf, err = newSendfiler(accepted, int(f.Fd()))
	}
	if err != nil {
		return nil, err
	}
	defer sf.close()
	prog := newProgress(stderr, "ceiling consume", wf.limitBytes())
	start := time.Now()
	s := stream{
		// The accepting side, where a broker sits, sends from the file;
		// the client dials and reads.
		sender:     accepted,
		receiver:   dialed,
		chunkBytes: chunkBytes,
		budget:     newBudget(ctx, wf, start),
		progress:   prog,
		clamp: func(n int64) int64 {
			if sf.offset() == fileBytes {
				sf.rewind()
			}
			return min(n, fileBytes-sf.offset())
		},
		send: func(n int64) error { return sf.send(int(n)) },
		take: func([]byte) error { return nil },
	}
	res, err := s.run(start)
	prog.finish()
	if err != nil {
		return nil, err
	}

	r := newCeilingReport(cfg.mode, title, wf, cfg, chunkBytes, res)
	r.StartedAt = start.UTC().Format(time.RFC3339)
	r.FileBytes = fileBytes
	note := ""
	if boundedBySpace {
		note = fmt.Sprintf(" (cut from %d by free space)", cfg.fileBytes)
	}
	r.rows = append(r.rows, summaryRow{"file", fmt.Sprintf("%d bytes in %s%s, sent %.2f times over",
		fileBytes, cfg.dir, note, float64(res.receivedBytes)/float64(fileBytes))})
	if cfg.keep {
		r.FilePath = f.Name()
		r.rows = append(r.rows, summaryRow{"kept file", f.Name()})
	}
	return r, nil
}

// writeCachedFile fills f with size bytes of records, syncs it and reads it
// back once, so the pages sendfile serves are in the page cache, and clean,
// before timing starts.
// An interrupt stops it between buffers: a 1 GiB file takes a while.
func writeCachedFile(ctx context.Context, f *os.File, size, recordSizeBytes int64) error {
	// A buffer of whole records keeps the pattern aligned to record
	// boundaries across writes.
	buf := make([]byte, chunkSize(fileIOBufferBytes, recordSizeBytes))
	fillRecords(buf, recordSizeBytes)
	for written := int64(0); written < size; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("preparing %s: %w", f.Name(), err)
		}
		n := min(int64(len(buf)), size-written)
		if _, err := f.Write(buf[:n]); err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
		written += n
	}
	// Written back before timing starts: a gigabyte of dirty pages would
	// otherwise be flushed while the run, or the next one, is measured.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	for read := int64(0); read < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-read)], read)
		read += int64(n)
		if err != nil {
			return fmt.Errorf("read %s to cache it: %w", f.Name(), err)
		}
	}
	return nil
}
