package main

import "time"

// Limits and defaults shared by every workload. Sizes are bounded before any
// buffer is allocated, so a mistyped flag fails with a message instead of an
// out-of-memory kill.
const (
	// defaultRecordSizeBytes matches the record size most Kafka-class
	// benchmarks quote, so figures compare without conversion.
	defaultRecordSizeBytes = 1024
	// maxRecordSizeBytes bounds one record; a chunk holds at least one record,
	// so this also bounds the send buffer when records exceed --batch-bytes.
	maxRecordSizeBytes = 64 << 20
	// defaultDuration is how long a workload runs when --records is not given.
	defaultDuration = 10 * time.Second

	// defaultBatchBytes is the chunk one write or sendfile call carries.
	defaultBatchBytes = 1 << 20
	// maxBatchBytes bounds the chunk buffer.
	maxBatchBytes = 256 << 20

	// receiveBufferBytes is the reused buffer a receiving side reads into:
	// large enough that one read drains what loopback delivers in one go.
	receiveBufferBytes = 1 << 20
	// fileIOBufferBytes is the reused buffer that writes and warms the
	// consume-mode file.
	fileIOBufferBytes = 1 << 20

	// defaultConsumeFileBytes is the cached file consume mode sends from.
	defaultConsumeFileBytes = 1 << 30
	// freeSpaceReserveBytes is left free on the file system by every file the
	// ceiling writes, so a long run never fills the disk others are using.
	freeSpaceReserveBytes = 512 << 20

	// maxChunksInFlight bounds the send stamps queued between sender and
	// receiver; the socket buffers hold far fewer chunks than this for any
	// sensible --batch-bytes, so the sender practically never waits on it.
	maxChunksInFlight = 1 << 16

	// Latency histogram range and precision: microsecond resolution from
	// 1 µs to 60 s with 3 significant digits.
	latencyMinMicros         = 1
	latencyMaxMicros         = 60_000_000
	latencySignificantDigits = 3

	// progressRefreshInterval is how often the terminal progress bar redraws.
	progressRefreshInterval = 200 * time.Millisecond

	// bytesPerMB: throughput is reported in MB/s with MB = 10^6 bytes, the
	// unit Kafka's and the OpenMessaging benchmark's reports use.
	bytesPerMB = 1_000_000
)
