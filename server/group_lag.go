package server

// The time-based lag estimate (docs/consumer-groups.md, "Metrics"): each
// scrape samples the high watermark of every partition some group here has
// committed on, and the seconds a group is behind are read off that
// history, as Kafka's lag exporters do: the time the high watermark passed
// the committed offset, the moment the first record the group has not
// committed became readable, interpolated between the two samples around
// it. It costs no read of any log and nothing on any shard.

// Bounds of the high-watermark history.
const (
	// groupLagSamplesMax bounds the samples kept per partition; when full,
	// every other sample of the older half goes, so the history reaches
	// back ever further at a coarser grain.
	groupLagSamplesMax = 64
	// groupLagHistoryIdleMs is how long a partition no group commits on
	// any more keeps its history.
	groupLagHistoryIdleMs = 10 * 60 * 1000
)

// hwSample is a high watermark the collector saw, from the first scrape
// that saw it to the last.
type hwSample struct {
	offset          int64
	firstMs, lastMs int64
}

// hwHistory is one partition's high watermarks, oldest first, offsets
// increasing.
type hwHistory struct {
	samples []hwSample
	seenMs  int64
}

// observe adds the high watermark seen at nowMs. A watermark below the
// last (a truncation, a new leader's) starts the history again.
func (h *hwHistory) observe(hw, nowMs int64) {
	h.seenMs = nowMs
	n := len(h.samples)
	switch {
	case n > 0 && h.samples[n-1].offset == hw:
		h.samples[n-1].lastMs = nowMs
		return
	case n > 0 && h.samples[n-1].offset > hw:
		h.samples = h.samples[:0]
	}
	if len(h.samples) == groupLagSamplesMax {
		h.thin()
	}
	h.samples = append(h.samples, hwSample{offset: hw, firstMs: nowMs, lastMs: nowMs})
}

// thin drops every other sample of the older half, keeping the oldest.
func (h *hwHistory) thin() {
	half := len(h.samples) / 2
	kept := h.samples[:1]
	for i := 2; i < half; i += 2 {
		kept = append(kept, h.samples[i])
	}
	kept = append(kept, h.samples[half:]...)
	h.samples = kept
}

// lagMs estimates how long ago the record at committed became committed
// (the high watermark passed it): 0 when the high watermark is not past
// it. When the history starts above committed (the collector has not
// watched the partition that long) the answer is a lower bound: the time
// since the oldest sample. exact reports which.
func (h *hwHistory) lagMs(committed, nowMs int64) (ms int64, exact bool) {
	n := len(h.samples)
	if n == 0 || h.samples[n-1].offset <= committed {
		return 0, true
	}
	// b is the first sample past committed; a the one before it, if any.
	b := 0
	for b < n && h.samples[b].offset <= committed {
		b++
	}
	if b == 0 {
		return max(nowMs-h.samples[0].firstMs, 0), false
	}
	sa, sb := h.samples[b-1], h.samples[b]
	// At sa.lastMs the watermark was sa.offset <= committed; at
	// sb.firstMs it was sb.offset > committed. Spread the records evenly
	// over the gap.
	passedMs := sa.lastMs + (sb.firstMs-sa.lastMs)*(committed+1-sa.offset)/(sb.offset-sa.offset)
	return max(nowMs-passedMs, 0), true
}
