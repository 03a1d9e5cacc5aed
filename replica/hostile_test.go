package replica

import (
	"math/rand/v2"
	"testing"
)

// hostileRounds is how many random messages each machine takes.
const hostileRounds = 20_000

// TestHostilePeersCannotPanic feeds a leader and a follower messages with
// random fields, as a buggy or hostile broker might send them: fetches
// with any offsets and epochs, answers with any windows, batches and
// divergences. The machine's invariant checks run after every step; none
// may fire, and the machines keep their basic bookkeeping.
func TestHostilePeersCannotPanic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	off := func() int64 { return rng.Int64N(40) - 4 }
	epoch := func() int32 { return rng.Int32N(6) - 1 }
	im := Image{Leader: 1, LeaderEpoch: 3, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, MinInsync: 2}
	log := LogState{LogEnd: 10, DurableEnd: 8, HighWatermark: 5, Epochs: []EpochStart{{0, 0}, {2, 6}}}
	lead, _ := NewPartition(Config{ID: 1}, log)
	fol, _ := NewPartition(Config{ID: 2}, log)
	step(lead, im)
	step(fol, im)
	for i := range hostileRounds {
		var lm, fm Msg
		switch rng.IntN(3) {
		case 0:
			lm = FetchRequest{ReplicaID: rng.Int32N(5), CurrentLeaderEpoch: epoch(), Gen: rng.Uint64N(4),
				Seq: rng.Uint64N(4), LogEnd: off(), LastFetchedEpoch: epoch(), DurableEnd: off(),
				WindowStart: off(), WindowEnd: off(), MaxWaitMs: rng.Int64N(3) * 100}
		case 1:
			lm = AlterPartitionResult{Err: ErrorCode(rng.IntN(10)), LeaderEpoch: epoch(), PartitionEpoch: epoch(), ISR: []int32{1, rng.Int32N(4)}}
		default:
			lm = Produce{ID: uint64(i), Acks: int8(rng.IntN(4) - 1), Count: rng.Int64N(3)}
		}
		r := FetchResponse{From: 1, LeaderEpoch: epoch(), Gen: fol.fol.gen, Err: ErrorCode(rng.IntN(3)),
			HighWatermark: off(), LogEnd: off(), WindowStart: off(), WindowEnd: off(), Limit: off()}
		if len(fol.fol.inflight) > 0 && rng.IntN(2) == 0 {
			w := fol.fol.inflight[0]
			r.Seq, r.WindowStart, r.WindowEnd, r.Err = w.seq, w.start, w.end, ErrNone
		}
		if rng.IntN(3) == 0 {
			r.Diverging = &DivergingEpoch{Epoch: epoch(), EndOffset: off()}
		}
		base := fol.Status().LogEnd
		for range rng.IntN(3) {
			b := Batch{Base: base, Count: rng.Int64N(3), Epoch: epoch(), Payload: i}
			if rng.IntN(4) == 0 {
				b.Base = off()
			}
			r.Batches = append(r.Batches, b)
			base = b.End()
		}
		fm = r
		if rng.IntN(10) == 0 {
			fm = LogDurable{End: off()}
		}
		step(lead, lm)
		step(fol, fm)
		if i%50 == 0 {
			lead.Tick(int64(i) * 10)
			lead.Ready()
			lead.Advance()
			fol.Tick(int64(i) * 10)
			fol.Ready()
			fol.Advance()
		}
	}
	if st := fol.Status(); st.HighWatermark < 5 || st.LogEnd < st.HighWatermark {
		t.Fatalf("follower lost committed records: %+v", st)
	}
	if st := lead.Status(); st.Role != RoleLeader || st.HighWatermark < 5 {
		t.Fatalf("leader: %+v", st)
	}
}
