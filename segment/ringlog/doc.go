// Package ringlog drives one partition's log through a shard's io_uring.
//
// The shard is one goroutine locked to one OS thread that owns a ring.Ring
// set up with ring.ShardFlags (SINGLE_ISSUER, DEFER_TASKRUN): every SQE is
// submitted from that thread and completions only arrive when it enters the
// kernel. A Log lives on that thread. It never waits for the kernel on the
// data path: an append is one WRITE SQE at the position segment.Core chose,
// a sync is one FSYNC (datasync) SQE, and the results reach the shard
// through a Sink when the shard hands the Log its completions (Complete).
//
// The bookkeeping stays in segment.Core (sans-IO): where a frame goes, what
// its offsets are, what readers may see, what is durable. Log only executes
// it. File management that is rare and off the per-request path (recovery on
// Open, creating the next segment's files on a roll, the recovery-point
// checkpoint, the leader-epoch file when an append begins a newer epoch,
// truncation, retention, close, and reads of data older than the
// in-memory frame table) is done by the synchronous segment.Log underneath,
// and blocks the shard while it runs; docs/storage.md lists each case.
//
// User data: the shard routes every CQE whose user data's high 32 bits equal
// the Log's prefix to Complete. The low 32 bits are the Log's own: a 4-bit
// kind (write or sync) and a slot index.
package ringlog
