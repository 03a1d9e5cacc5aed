// Command loadgen is Strata's load generator, in the spirit of Kafka's
// kafka-producer-perf-test and the OpenMessaging benchmark. It drives the
// throughput and latency benchmarks in benchmarks/ and measures the physical
// ceiling that they are reported as a ratio of.
//
// # Commands
//
//	loadgen ceiling --mode produce   one TCP stream on loopback into a file
//	loadgen ceiling --mode consume   sendfile(2) from a cached file to a socket
//	loadgen produce                  producers send records to a broker
//	loadgen consume [--fill]         consumers read a topic from its start
//	loadgen e2e                      end-to-end latency at a target --rate
//	loadgen suite [--quick]          the 2014 Kafka benchmark's cases beside
//	                                 the ceiling measured in the same run
//
// produce, consume, e2e and suite use the client library (client/) against
// the brokers of --brokers, on --topic (created with --partitions and
// --flush-policy when it does not exist). They take --producers, --acks,
// --batch-bytes (the producer's batch), --linger, --compression, --values
// (fill or JSON-like; values.go),
// --consumers and --rate (records per second across the producers) where
// they apply; each producer and consumer has a connection of its own.
// produce's latency is per record, from Send to its acknowledgement
// callback; consume's is per Poll call; e2e's is from the send time the
// producer stamps in the first 8 bytes of each value (this process's
// monotonic clock) to the consumer holding the record. The suite prints a
// table and, with --json, one object holding the ceiling and every case
// with its ratio to the ceiling.
//
// Produce mode: a sender writes records of --record-size bytes, in chunks of
// --batch-bytes (default 1MiB, rounded down to whole records), over a loopback
// TCP connection; the receiver writes everything it reads to a file in --dir
// (default the system temp dir) with write(2) from a reused buffer. The bytes
// stay in the page cache unless --fsync-every-bytes N asks for an fdatasync
// after about every N bytes and at the end; the report says which.
//
// Consume mode: a file of --file-bytes (default 1GiB, cut to the free space of
// --dir less a reserve) is written and read once so that it is cached, then
// sent with sendfile(2), chunk by chunk and round and round the file, over a
// loopback TCP connection to a reader that discards what it reads.
//
// The file is removed after the run unless --keep is given. Both modes refuse
// to report a figure unless the sender, the receiver and (produce) the file
// size agree on the bytes moved.
//
// # Flags shared by every workload
//
//	--record-size  bytes per record (default 1024); sizes take KiB/MiB/GiB
//	--records      stop after this many records
//	--duration     stop after this long (default 10s; with --records alone,
//	               the run lasts until the records are moved)
//	--json         print the results as one JSON object on the last line
//
// Given both --records and --duration, a run stops at whichever comes first.
//
// # Output
//
// A summary table goes to stdout; with --json it is followed by one JSON
// object on the last line. A progress bar is drawn on stderr only when stderr
// is a terminal. The exit status is 0 on success, 1 when a run failed and 2
// for a bad command line. The JSON fields:
//
//	workload, mode          "ceiling" and "produce" or "consume"; or the
//	                        client workload's name in both
//	records, bytes          what the receiving side got (whole records)
//	seconds                 from the first chunk sent to the last byte handled
//	records_per_sec         records / seconds
//	mb_per_sec              bytes / seconds / 10^6 (MB = 10^6 bytes)
//	p50_ms, p99_ms, p999_ms, max_ms, mean_ms
//	                        latency percentiles in milliseconds, from an
//	                        HdrHistogram (1 µs..60 s, 3 significant digits)
//	latency_samples         how many latencies were recorded
//	latency_of              what one latency measures; for the ceiling, a
//	                        chunk from the sender starting it until the
//	                        receiver has handled (read, or written) its last byte
//	record_size_bytes       --record-size
//	stopped_by              "duration", "records", "disk space" or "interrupted"
//	started_at              start time, RFC 3339, UTC
//	batch_bytes, chunk_bytes
//	                        --batch-bytes, and the whole-record chunk it gives
//	dir, file_bytes         the data file's directory and size on disk
//	file_path               the data file, when --keep left it in place
//	durability, fsync_every_bytes, fdatasyncs
//	                        produce: page cache only, or fdatasync policy and
//	                        how many calls were made
//	hostname, nproc, cpu_model, kernel_release, go_version
//	                        the machine the figures belong to
//	brokers, topic, partitions, topic_created, flush_policy, producers,
//	consumers, acks, linger_ms, compression, values, rate_records_per_sec
//	                        the client workloads' settings
//	produced, produce_p50_ms, produce_p99_ms
//	                        e2e and consume --fill: what the producers had
//	                        acknowledged, and (e2e) their latency
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// An interrupt ends the run early; the partial result is still reported,
	// marked stopped_by "interrupted".
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
