package replica

import "testing"

// BenchmarkReplicateBatch is one acks=all batch through a leader and two
// followers: the produce, each follower's fetch answer, append, sync and
// next fetch, and the acknowledgement. Messages go straight from one
// machine to the other; the figure is the machines' own cost.
func BenchmarkReplicateBatch(b *testing.B) {
	im := Image{Leader: 1, LeaderEpoch: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, MinInsync: 2}
	ps := make([]*Partition, 3)
	for i := range ps {
		ps[i], _ = NewPartition(Config{ID: int32(i + 1)}, LogState{})
	}
	var queue []Msg
	var drain func(p *Partition)
	drain = func(p *Partition) {
		rd := p.Ready()
		p.Advance()
		for _, f := range rd.Fetches {
			queue = append(queue, f)
		}
		for _, r := range rd.Responses {
			r.Batches = nil
			for off := r.WindowStart; off < r.Limit; off++ {
				r.Batches = append(r.Batches, Batch{Base: off, Count: 1, Epoch: 0})
			}
			queue = append(queue, r)
		}
		if len(rd.Appends) > 0 {
			p.Step(LogDurable{End: rd.Appends[len(rd.Appends)-1].End()})
			drain(p)
		}
	}
	for _, p := range ps {
		p.Step(im)
		drain(p)
	}
	run := func() {
		for len(queue) > 0 {
			m := queue[0]
			queue = queue[1:]
			to := int32(0)
			switch m := m.(type) {
			case FetchRequest:
				to = m.To
			case FetchResponse:
				to = m.To
			}
			ps[to-1].Step(m)
			drain(ps[to-1])
		}
	}
	run()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ps[0].Step(Produce{ID: uint64(i), Acks: AcksAll, Count: 1})
		drain(ps[0])
		run()
	}
	if st := ps[0].Status(); st.HighWatermark < int64(b.N) {
		b.Fatalf("high watermark %d after %d batches", st.HighWatermark, b.N)
	}
}
