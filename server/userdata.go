package server

// Every SQE a shard submits carries a tag in its user data that names what
// the completion is for:
//
//	 63    56 55                  32 31                              0
//	+--------+----------------------+--------------------------------+
//	|  kind  |   connection slot    |     connection generation      |
//	+--------+----------------------+--------------------------------+
//
// The generation changes every time a slot is reused, so a completion that
// arrives after its connection closed (a cancelled receive, a late send) is
// recognised and dropped instead of being applied to a newer connection in
// the same slot.
type opKind uint8

const (
	opAccept opKind = iota + 1
	opRecv
	opSend
	opShutdown // a closing connection's socket shut down (its descriptor closes once idle)
	opCancel
	opDoorbell
	opTick
	opIgnore      // completions whose result nobody needs (cancelling the listener)
	opMsgRing     // another shard's doorbell arrived
	opMsgRingSent // our doorbell to another shard failed (success is skipped)
	opSpliceOut   // a single pipe -> socket send of what a stopped splice chain left
	opDisk        // a partition log's operation: its slot, then the log's own tag
	opRecvDirect  // a large request's rest, received into its own buffer
	opSendLinked  // an answer's envelope, linked ahead of its first splice chain

	// Outbound connections (outbound.go): the slot and generation are of
	// the shard's outbound table, not its connection table.
	opOutConnect
	opOutRecv
	opOutSend
	opOutClose // a closing outbound connection's cancel or shutdown

	opKindsEnd // one past the last kind below the splice chain positions
)

// opSpliceChain+i tags the i-th SQE of a fetch answer's splice chain (even
// i: file -> pipe, odd i: pipe -> socket), so the kinds from opSpliceChain
// up are chain positions rather than kinds of their own.
const opSpliceChain opKind = 64

// The chain positions fit the kind byte above every other kind.
var _ [256 - int(opSpliceChain) - 2*spliceChainPairsMax]struct{}
var _ [int(opSpliceChain) - int(opKindsEnd)]struct{}

const (
	tagKindShift = 56
	tagSlotShift = 32
	tagSlotMask  = 1<<24 - 1
	tagGenMask   = 1<<32 - 1
)

func tag(kind opKind, slot uint32, gen uint32) uint64 {
	return uint64(kind)<<tagKindShift | uint64(slot&tagSlotMask)<<tagSlotShift | uint64(gen)
}

func tagKind(t uint64) opKind { return opKind(t >> tagKindShift) }
func tagSlot(t uint64) uint32 { return uint32(t>>tagSlotShift) & tagSlotMask }
func tagGen(t uint64) uint32  { return uint32(t & tagGenMask) }
