package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/strata-db/strata/ring"
)

// probeOps are the operations a Strata shard depends on.
var probeOps = []struct {
	op   uint8
	name string
}{
	{ring.OpNop, "NOP"}, {ring.OpAccept, "ACCEPT"}, {ring.OpConnect, "CONNECT"},
	{ring.OpRecv, "RECV"}, {ring.OpSend, "SEND"}, {ring.OpSendZC, "SEND_ZC"},
	{ring.OpRead, "READ"}, {ring.OpWrite, "WRITE"}, {ring.OpReadv, "READV"},
	{ring.OpWritev, "WRITEV"}, {ring.OpReadFixed, "READ_FIXED"}, {ring.OpWriteFixed, "WRITE_FIXED"},
	{ring.OpFsync, "FSYNC"}, {ring.OpFallocate, "FALLOCATE"}, {ring.OpSplice, "SPLICE"},
	{ring.OpMsgRing, "MSG_RING"}, {ring.OpTimeout, "TIMEOUT"}, {ring.OpLinkTimeout, "LINK_TIMEOUT"},
	{ring.OpAsyncCancel, "ASYNC_CANCEL"}, {ring.OpClose, "CLOSE"}, {ring.OpShutdown, "SHUTDOWN"},
}

// probe sets up a ring the way a shard does and reports what the kernel
// grants: queue sizes, features, and the opcodes Strata uses.
func probe(w io.Writer) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := ring.New(256, ring.Options{Flags: ring.ShardFlags, CQEntries: 4096})
	if err != nil {
		return fmt.Errorf("io_uring setup with shard flags: %w", err)
	}
	defer r.Close()
	p, err := r.Probe()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "io_uring: sq %d entries, cq %d entries, flags %#x, features %#x, last opcode %d\n",
		r.SQEntries(), r.CQEntries(), r.Flags(), r.Features(), p.LastOp())
	missing := 0
	for _, o := range probeOps {
		state := "supported"
		if !p.Supported(o.op) {
			state = "MISSING"
			missing++
		}
		fmt.Fprintf(w, "  %-13s %s\n", o.name, state)
	}
	if missing > 0 {
		return fmt.Errorf("%d operations a shard needs are missing from this kernel", missing)
	}
	fmt.Fprintln(w, "every operation a shard needs is supported")
	return nil
}
