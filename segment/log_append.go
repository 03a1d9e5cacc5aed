package segment

import (
	"fmt"

	"github.com/strata-db/strata/schema"
)

// Append checks one whole frame, assigns its offsets (patching the base
// offset and the leader epoch set by SetLeaderEpoch into frame in place),
// writes it, and returns its base offset once the flush policy allows it
// to be acknowledged. It refuses with ErrEpochRegress while the leader
// epoch is below the latest in the log (replicated frames of a newer
// epoch came after SetLeaderEpoch).
func (l *Log) Append(frame []byte) (int64, error) {
	h, err := schema.CheckFrame(frame)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.append(frame, &h, true)
}

// AppendReplicated appends a frame as the leader wrote it, its base offset
// and leader epoch already set: a follower's append. It is refused, with
// nothing changed, with ErrOffsetMismatch unless the frame's base offset
// is the log end, and with ErrEpochRegress if its epoch is below the
// latest in the log. Otherwise it is Append without the patching.
func (l *Log) AppendReplicated(frame []byte) (int64, error) {
	h, err := schema.CheckFrame(frame)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.append(frame, &h, false)
}

// append is Append (stamp) and AppendReplicated (!stamp), with the lock
// held.
func (l *Log) append(frame []byte, h *schema.FrameHeader, stamp bool) (int64, error) {
	if int(h.Length) != len(frame) {
		return 0, fmt.Errorf("%w: %d bytes hold a frame of %d", schema.ErrFrameLength, len(frame), h.Length)
	}
	if err := l.usable(); err != nil {
		return 0, err
	}
	if stamp {
		h.LeaderEpoch = l.leaderEpoch
	} else if h.BaseOffset != l.core.End() {
		return 0, fmt.Errorf("%w: frame at %d, log end %d", ErrOffsetMismatch, h.BaseOffset, l.core.End())
	}
	if latest := l.latestEpoch(); h.LeaderEpoch < max(latest, 0) {
		return 0, fmt.Errorf("%w: frame of epoch %d, latest %d", ErrEpochRegress, h.LeaderEpoch, latest)
	}
	// The settings Reconfigure changes are read from the core (under
	// l.mu); l.cfg is the open-time config the cleaner's goroutine reads.
	// A replicated frame may be larger than today's segment size
	// (frameBytesMax); the core bounds it.
	if segBytes := l.core.cfg.SegmentBytes; stamp && int64(h.Length) > segBytes {
		return 0, fmt.Errorf("%w: %d bytes, segment %d", ErrFrameTooLarge, h.Length, segBytes)
	}
	now := l.cfg.NowMs()
	if l.core.ShouldRoll(int64(h.Length), h.RecordCount, now) {
		if err := l.roll(); err != nil {
			return 0, err
		}
	}
	if g, ok := l.core.NeedGrowth(int64(h.Length)); ok {
		if err := l.grow(&g); err != nil {
			return 0, l.fail(err)
		}
	}
	plan, err := l.core.PrepareAppend(h, now)
	if err != nil {
		return 0, err
	}
	// The epoch file first: it must hold the frame's epoch before the
	// frame can be durable.
	if err := l.assignEpoch(h.LeaderEpoch, plan.BaseOffset); err != nil {
		l.core.AbortAppends()
		return 0, err
	}
	if stamp {
		schema.PatchBaseOffset(frame, plan.BaseOffset)
		schema.PatchLeaderEpoch(frame, h.LeaderEpoch)
	}
	if _, err := plan.Segment.Handle.(*segFiles).data.WriteAt(frame, plan.Pos); err != nil {
		l.core.AbortAppends()
		return 0, l.fail(fmt.Errorf("segment: write segment %d at %d: %w", plan.Segment.base, plan.Pos, err))
	}
	if err := l.core.CommitAppend(&plan); err != nil {
		return 0, err
	}
	switch flush := l.core.cfg.Flush; flush.kind {
	case flushEveryAck:
		err = l.syncTo(plan.NextOffset)
	case flushInterval:
		if now-l.lastFlushMs >= flush.intervalMs {
			l.lastFlushMs = now
			err = l.syncTo(plan.NextOffset)
		}
	}
	if err != nil {
		return 0, err
	}
	return plan.BaseOffset, nil
}
